"""Exact attention over a key/value cache stored head-major, k [..., K, S, H] and v [..., K, S, V].

The attention functions take keys as [..., S, K, H], the layout of `jax.nn.dot_product_attention`. A decoding step
with K = N heads over such a cache is slow on a CPU: products batched over the heads make XLA copy the whole cache
head-major first, and the copy-free decoding form of `_dense` spends K times the flops (docs/kernels.md). A layer
that owns its cache can store it head-major instead, as PyTorch does; the products then batch over the heads as the
arrays lie. `decode_step` is the registry hook (`Variant.decode_heads_major`) that `layers.MultiHeadAttention`
calls with such a cache for the softmax variants.
"""

from __future__ import annotations

import jax.numpy as jnp

from attention_research.attention import _checks
from attention_research.attention._dense import finish_scores, normalize

# Call options that choose how a variant computes, not what: the head-major form computes the same thing.
_HOW_OPTIONS = ('implementation', 'block_q', 'block_k', 'block_size')


def attention(q, k, v, *, mask=None, bias=None, scale=None, return_weights=False, normalizer='softmax', sinks=None,
              logit_soft_cap=None, sigmoid_bias=None):
  """`dot_product` (non-causal) of q [..., T, N, H] over k [..., K, S, H], v [..., K, S, V]; out [..., T, N, V]."""
  d = _checks.check_qkv(q, jnp.swapaxes(k, -3, -2), jnp.swapaxes(v, -3, -2))
  mask, bias = _checks.check_mask_bias(mask, bias, d)
  sinks = _checks.check_sinks(sinks, d)
  logit_soft_cap = _checks.check_soft_cap(logit_soft_cap)
  q_btkgh = _checks.flatten_batch(q, d).reshape(d.B, d.T, d.K, d.G, d.H)
  s = jnp.einsum('BTKGH,BKSH->BKGTS', q_btkgh, k.reshape((d.B,) + k.shape[-3:]), preferred_element_type=jnp.float32)
  s = finish_scores(s, d, _checks.default_scale(scale, d.H), bias, logit_soft_cap)
  w = normalize(s, _checks.merged_mask(mask, False, d), d, normalizer=normalizer, sinks=sinks,
                sigmoid_bias=sigmoid_bias)
  w_bkgts = w.reshape(d.B, d.K, d.G, d.T, d.S).astype(v.dtype)
  # The product keeps the heads in front and the small output is transposed after it: asked for [B, T, K, G, V]
  # directly, XLA computes v^T w instead, copying v into [B, K, V, S] first.
  out = jnp.einsum('BKGTS,BKSV->BKGTV', w_bkgts, v.reshape((d.B,) + v.shape[-3:]), preferred_element_type=jnp.float32)
  out = _checks.unflatten_batch(jnp.einsum('BKGTV->BTKGV', out).reshape(d.B, d.T, d.N, d.V).astype(v.dtype), d)
  if return_weights:
    return out, _checks.unflatten_batch(w, d)
  return out


def decode_step(fn, q, k, v, *, index, mask, **kwargs):
  """The registry's decoding hook over a head-major cache: attend over all of it (`mask` hides future and unwritten
  keys), as `registry.attend_cache` does over a [B, L, K, H] cache."""
  del fn, index
  for name in _HOW_OPTIONS:
    kwargs.pop(name, None)
  return attention(q, k, v, mask=mask, **kwargs)
