"""Attention as pure functions: one per variant, all with the layout of jax.nn.dot_product_attention.

    out = attention.<variant>(q, k, v, *, mask=None, bias=None, is_causal=False, scale=None,
                              return_weights=False, **variant_options)
    q [..., T, N, H], k [..., S, K, H], v [..., S, K, V], N % K == 0, mask bool True = may attend.

`VARIANTS` (see `registry`) maps each name to its function, facts and hooks; `get(name)` looks one up.
`ring` (ring attention over a mesh axis, for use inside `jax.shard_map`) is exact softmax attention split over
devices rather than a variant of its own, so it is not in `VARIANTS`.
"""

from __future__ import annotations

from attention_research.attention import masks, normalizers, positional, registry
from attention_research.attention._dense import reference
from attention_research.attention.additive import additive
from attention_research.attention.block_sparse import block_sparse
from attention_research.attention.delta import delta
from attention_research.attention.dot_product import dot_product
from attention_research.attention.flash import flash
from attention_research.attention.flax_adapter import as_flax_attention_fn
from attention_research.attention.gated_delta import gated_delta
from attention_research.attention.gla import gla
from attention_research.attention.linear import linear
from attention_research.attention.linformer import linformer
from attention_research.attention.local import local
from attention_research.attention.multiplicative import multiplicative
from attention_research.attention.performer import performer
from attention_research.attention.registry import DEFAULT_VARIANT, VARIANTS, Variant, check_cross, get
from attention_research.attention.retention import retention
from attention_research.attention.ring import ring
from attention_research.attention.ring import zigzag_order as ring_zigzag_order
from attention_research.attention.ssd import ssd

__all__ = ['VARIANTS', 'DEFAULT_VARIANT', 'Variant', 'get', 'check_cross', 'as_flax_attention_fn', 'masks',
           'normalizers', 'positional', 'registry', 'reference', 'ring', 'ring_zigzag_order'] + list(VARIANTS)
