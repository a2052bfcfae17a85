"""Scaled dot-product attention: the reference every other variant is tested against."""

from __future__ import annotations

import jax.numpy as jnp

from attention_research.attention import _checks
from attention_research.attention.normalizers import get_normalizer

IMPLEMENTATIONS = ('auto', 'reference', 'flash')

# Below this many scores per head the blocked kernel's loop overhead outweighs the memory it saves.
AUTO_FLASH_MIN_SCORES = 256 * 256


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


def dot_product(q, k, v, *, mask=None, bias=None, is_causal=False, scale=None, return_weights=False,
                normalizer='softmax', implementation='auto'):
  """Scaled dot-product attention, softmax(q k^T * scale + bias) v, with the layout of jax.nn.dot_product_attention.

  Args:
    q: [..., T, N, H] queries.  k: [..., S, K, H] keys.  v: [..., S, K, V] values; N % K == 0
      (K < N is grouped-query attention, K == 1 multi-query).
    mask: bool broadcastable to [..., N, T, S]; True = may attend.
    bias: float broadcastable to [..., N, T, S], added to the scores.
    is_causal: query t sees keys s <= t + S - T.
    scale: score scale; defaults to 1/sqrt(H).
    return_weights: also return the weights [..., N, T, S] (always computed by the reference path).
    normalizer: 'softmax', 'sparsemax' or 'entmax15'.
    implementation: 'reference' materialises the score matrix; 'flash' runs the blocked exact kernel;
      'auto' takes the blocked kernel for softmax without weights on long inputs, the reference otherwise.

  Returns:
    out [..., T, N, V], or (out, weights) with return_weights=True. Rows with every key masked give zeros.
  """
  d = _checks.check_qkv(q, k, v)
  mask, bias = _checks.check_mask_bias(mask, bias, d)
  get_normalizer(normalizer)
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f'unknown implementation {implementation!r}; known: {IMPLEMENTATIONS}.')
  wants_flash = implementation == 'flash' or (
      implementation == 'auto' and d.T * d.S >= AUTO_FLASH_MIN_SCORES)
  if wants_flash and not return_weights and normalizer == 'softmax':
    from attention_research.attention.flash import flash  # pylint: disable=g-import-not-at-top
    return flash(q, k, v, mask=mask, bias=bias, is_causal=is_causal, scale=scale)
  return reference(q, k, v, mask=mask, bias=bias, is_causal=is_causal, scale=scale,
                   return_weights=return_weights, normalizer=normalizer)
