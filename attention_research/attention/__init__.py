"""Attention as pure functions: one per variant, all with the layout of jax.nn.dot_product_attention.

    out = attention.<variant>(q, k, v, *, mask=None, bias=None, is_causal=False, scale=None,
                              return_weights=False, **variant_options)
    q [..., T, N, H], k [..., S, K, H], v [..., S, K, V], N % K == 0, mask bool True = may attend.

`VARIANTS` maps each name to its function and facts; `get(name)` looks one up.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from attention_research.attention import masks, normalizers, positional
from attention_research.attention.additive import additive
from attention_research.attention.block_sparse import block_sparse
from attention_research.attention.dot_product import dot_product, reference
from attention_research.attention.flash import flash
from attention_research.attention.linear import linear
from attention_research.attention.linformer import linformer
from attention_research.attention.local import local
from attention_research.attention.multiplicative import multiplicative
from attention_research.attention.performer import performer


@dataclasses.dataclass(frozen=True)
class Variant:
  """What a runner or test needs to know about a variant without calling it."""
  name: str
  fn: Callable
  exact: bool  # equals softmax attention under the variant's own mask/sparsity pattern
  causal: bool  # supports is_causal=True
  masks: str  # 'full': any [..., N, T, S] mask; 'key_padding': masks over keys only ([..., 1, 1, S])
  params: tuple[str, ...]  # names of learned parameters the caller passes as params={...}
  time: str
  memory: str
  family: str
  cross: bool = True  # defined between two different sequences (cross-attention), not only within one


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant('dot_product', dot_product, True, True, 'full', (), 'O(T S H)', 'O(T S)', 'softmax'),
    Variant('flash', flash, True, True, 'full', (), 'O(T S H)', 'O(T + S)', 'softmax'),
    Variant('additive', additive, True, True, 'full', ('w_q', 'w_k', 'v'), 'O(T S A)', 'O(T S A)', 'additive'),
    Variant('multiplicative', multiplicative, True, True, 'full', ('w',), 'O(T S H)', 'O(T S)', 'softmax'),
    Variant('local', local, True, True, 'full', (), 'O(T W H)', 'O(T W)', 'sparse', cross=False),
    Variant('block_sparse', block_sparse, True, True, 'full', (), 'O(T (w+g+r) b H)', 'O(T (w+g+r) b)', 'sparse'),
    Variant('linear', linear, False, True, 'key_padding', (), 'O((T + S) H V)', 'O(H V)', 'kernel'),
    Variant('performer', performer, False, True, 'key_padding', (), 'O((T + S) M H)', 'O(M V)', 'kernel'),
    Variant('linformer', linformer, False, False, 'key_padding', ('e', 'f'), 'O(T r H)', 'O(T r)', 'low_rank'),
)}


def get(name: str) -> Variant:
  if name not in VARIANTS:
    raise ValueError(f'unknown attention variant {name!r}; known variants: {sorted(VARIANTS)}.')
  return VARIANTS[name]


def check_cross(name: str) -> Variant:
  """The variant, or a ValueError when it relates positions of one sequence and so has no cross-attention."""
  variant = get(name)
  if not variant.cross:
    raise ValueError(f'attention variant {name!r} places its window by query and key positions of one sequence, '
                     f'so it cannot be a cross-attention; use one of '
                     f'{sorted(n for n, v in VARIANTS.items() if v.cross)}.')
  return variant


from attention_research.attention.flax_adapter import as_flax_attention_fn  # pylint: disable=g-import-not-at-top,wrong-import-position

__all__ = ['VARIANTS', 'Variant', 'get', 'check_cross', 'as_flax_attention_fn', 'masks', 'normalizers', 'positional',
           'reference'] + list(VARIANTS)
