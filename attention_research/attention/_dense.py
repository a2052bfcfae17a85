"""Dense helpers shared by every variant that materialises a score matrix: scores, masking + normalising,
weighted values, and the plain reference attention they add up to.

Kept apart from `dot_product` (the public dispatcher) so that `flash`, `local` and the other kernels can use
the reference without importing the dispatcher that imports them.
"""

from __future__ import annotations

import jax.numpy as jnp

from attention_research.attention import _checks
from attention_research.attention.normalizers import get_normalizer


def scores_bnts(q, k, d: _checks.Dims, scale, bias=None):
  """Scaled float32 scores [B, N, T, S] for q [..., T, N, H], k [..., S, K, H] (grouped heads kept together)."""
  q_btkgh = _checks.flatten_batch(q, d).reshape(d.B, d.T, d.K, d.G, d.H)
  k_bskh = _checks.flatten_batch(k, d)
  s = jnp.einsum('BTKGH,BSKH->BKGTS', q_btkgh, k_bskh, preferred_element_type=jnp.float32)
  s = s.reshape(d.B, d.N, d.T, d.S) * jnp.float32(scale)
  if bias is not None:
    s = s + _checks.to_bnts(bias, d).astype(jnp.float32)
  return s


def weighted_values(w_bnts, v, d: _checks.Dims):
  """sum_s w[b, n, t, s] v[b, s, n // G, :] -> [..., T, N, V] in v's dtype."""
  w = w_bnts.reshape(d.B, d.K, d.G, d.T, d.S).astype(v.dtype)
  out = jnp.einsum('BKGTS,BSKV->BTKGV', w, _checks.flatten_batch(v, d), preferred_element_type=jnp.float32)
  return _checks.unflatten_batch(out.reshape(d.B, d.T, d.N, d.V).astype(v.dtype), d)


def attend(s_bnts, v, d: _checks.Dims, *, mask, is_causal, normalizer, return_weights):
  """Scores [B, N, T, S] -> normalised weights -> output; shared by every variant that materialises scores."""
  w = get_normalizer(normalizer)(s_bnts, _checks.merged_mask(mask, is_causal, d))
  out = weighted_values(w, v, d)
  if return_weights:
    return out, _checks.unflatten_batch(w, d)
  return out


def reference(q, k, v, *, mask=None, bias=None, is_causal=False, scale=None, return_weights=False,
              normalizer='softmax'):
  """Materialises the full [B, N, T, S] score matrix. Validated inputs are assumed; use `dot_product`."""
  d = _checks.check_qkv(q, k, v)
  s = scores_bnts(q, k, d, _checks.default_scale(scale, d.H), bias)
  return attend(s, v, d, mask=mask, is_causal=is_causal, normalizer=normalizer, return_weights=return_weights)
