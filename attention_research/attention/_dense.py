"""Dense helpers shared by every variant that materialises a score matrix: scores, masking + normalising,
weighted values, and the plain reference attention they add up to.

Kept apart from `dot_product` (the public dispatcher) so that `flash`, `local` and the other kernels can use
the reference without importing the dispatcher that imports them.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from attention_research.attention import _checks
from attention_research.attention.normalizers import get_normalizer


def soft_cap(s, cap):
  """cap * tanh(s / cap) (Gemma 2's logit soft-capping); the identity for cap None."""
  return s if cap is None else jnp.float32(cap) * jnp.tanh(s / jnp.float32(cap))


def scores_bnts(q, k, d: _checks.Dims, scale, bias=None, logit_soft_cap=None):
  """Scaled float32 scores [B, N, T, S] for q [..., T, N, H], k [..., S, K, H] (grouped heads kept together).

  The soft-cap applies to the scaled logits q.k * scale, as in Gemma 2, and the bias is added after it: a bias
  that acts as a soft mask (-inf entries, ALiBi slopes) would lose its effect under the cap."""
  if few_queries(d):
    s = _few_query_scores(q, k, d)
  else:
    q_btkgh = _checks.flatten_batch(q, d).reshape(d.B, d.T, d.K, d.G, d.H)
    k_bskh = _checks.flatten_batch(k, d)
    s = jnp.einsum('BTKGH,BSKH->BKGTS', q_btkgh, k_bskh, preferred_element_type=jnp.float32)
  return finish_scores(s, d, scale, bias, logit_soft_cap)


def finish_scores(s, d: _checks.Dims, scale, bias=None, logit_soft_cap=None):
  """Unscaled float32 products q.k (any shape holding [B, N, T, S]) -> scaled, soft-capped, biased [B, N, T, S]."""
  s = soft_cap(s.reshape(d.B, d.N, d.T, d.S) * jnp.float32(scale), logit_soft_cap)
  if bias is not None:
    s = s + _checks.to_bnts(bias, d).astype(jnp.float32)
  return s


def weighted_values(w_bnts, v, d: _checks.Dims):
  """sum_s w[b, n, t, s] v[b, s, n // G, :] -> [..., T, N, V] in v's dtype."""
  w = w_bnts.reshape(d.B, d.K, d.G, d.T, d.S).astype(v.dtype)
  if few_queries(d):
    out = _few_query_values(w, v, d)
  else:
    out = jnp.einsum('BKGTS,BSKV->BTKGV', w, _checks.flatten_batch(v, d), preferred_element_type=jnp.float32)
  return _checks.unflatten_batch(out.reshape(d.B, d.T, d.N, d.V).astype(v.dtype), d)


# Decoding: a few query rows against a long key/value cache. The einsums above put the key/value heads in
# front as the batch of the products, which makes XLA copy the whole cache into [B, K, S, H] on every step: a
# memory-bound step then costs twice the cache's traffic (2.5 ms of a 16 MB cache at S = 4096 on a 2-core CPU,
# against PyTorch's 2.2 ms). With few query rows it is cheaper to multiply them with every key head through the
# cache as it lies, [B, S * K, H], and keep the diagonal (query head n with key head n // G): K times the
# flops of a product that is bound by reading the cache anyway, and no copy.
FEW_QUERY_ROWS = 64


def few_queries(d: _checks.Dims) -> bool:
  """True when the T * N query rows are few enough for the copy-free decoding products (and K > 1 heads)."""
  return d.K > 1 and d.T * d.N <= FEW_QUERY_ROWS


def _few_query_scores(q, k, d: _checks.Dims):
  """Unscaled float32 scores [B, N, T, S] from q [..., T, N, H] and k [..., S, K, H], reading k in place."""
  q_bqh = _checks.flatten_batch(q, d).reshape(d.B, d.T * d.N, d.H)
  k_bmh = _checks.flatten_batch(k, d).reshape(d.B, d.S * d.K, d.H)
  s = jnp.einsum('BQH,BMH->BQM', q_bqh, k_bmh, preferred_element_type=jnp.float32)
  s = jnp.diagonal(s.reshape(d.B, d.T, d.K, d.G, d.S, d.K), axis1=2, axis2=5)  # [B, T, G, S, K]
  return jnp.einsum('BTGSK->BKGTS', s)


def _few_query_values(w_bkgts, v, d: _checks.Dims):
  """sum_s w[b, k, g, t, s] v[b, s, k, :] -> float32 [B, T, K, G, V], reading v in place."""
  w_bqs = jnp.einsum('BKGTS->BTKGS', w_bkgts).reshape(d.B, d.T * d.N, d.S)
  v_bsm = _checks.flatten_batch(v, d).reshape(d.B, d.S, d.K * d.V)
  out = jnp.einsum('BQS,BSM->BQM', w_bqs, v_bsm, preferred_element_type=jnp.float32)
  out = jnp.diagonal(out.reshape(d.B, d.T, d.K, d.G, d.K, d.V), axis1=2, axis2=4)  # [B, T, G, V, K]
  return jnp.einsum('BTGVK->BTKGV', out)


def normalize(s_bnts, mask_bnts, d: _checks.Dims, *, normalizer, sinks=None, sigmoid_bias=None):
  """Weights [B, N, T, S] of float32 scores. Sinks [N] are logits of one extra key per head that has no value:
  it joins the normalisation as a last column, which is then dropped, so the weights sum to less than 1 and a
  row whose keys are all masked gives all its weight to the sink (zeros, as without sinks)."""
  fn = get_normalizer(normalizer)
  if sigmoid_bias is not None:
    fn = functools.partial(fn, bias=sigmoid_bias)
  if sinks is None:
    return fn(s_bnts, mask_bnts)
  sink = jnp.broadcast_to(sinks.astype(jnp.float32)[None, :, None, None], s_bnts.shape[:-1] + (1,))
  if mask_bnts is None:
    return fn(jnp.concatenate([s_bnts, sink], axis=-1))[..., :d.S]
  mask_s1 = jnp.concatenate([jnp.broadcast_to(mask_bnts, s_bnts.shape), jnp.ones(sink.shape, bool)], axis=-1)
  w = fn(jnp.concatenate([s_bnts, sink], axis=-1), mask_s1)[..., :d.S]
  # Already zero for a finite sink; a sink of -inf (no sink) must not spread an empty row over masked keys.
  return jnp.where(jnp.any(mask_bnts, axis=-1, keepdims=True), w, 0.0)


def attend(s_bnts, v, d: _checks.Dims, *, mask, is_causal, normalizer, return_weights, sinks=None,
           sigmoid_bias=None):
  """Scores [B, N, T, S] -> normalised weights -> output; shared by every variant that materialises scores."""
  w = normalize(s_bnts, _checks.merged_mask(mask, is_causal, d), d, normalizer=normalizer, sinks=sinks,
                sigmoid_bias=sigmoid_bias)
  out = weighted_values(w, v, d)
  if return_weights:
    return out, _checks.unflatten_batch(w, d)
  return out


def reference(q, k, v, *, mask=None, bias=None, is_causal=False, scale=None, return_weights=False,
              normalizer='softmax', sinks=None, logit_soft_cap=None, sigmoid_bias=None):
  """Materialises the full [B, N, T, S] score matrix. Validated inputs are assumed; use `dot_product`."""
  d = _checks.check_qkv(q, k, v)
  s = scores_bnts(q, k, d, _checks.default_scale(scale, d.H), bias, logit_soft_cap)
  return attend(s, v, d, mask=mask, is_causal=is_causal, normalizer=normalizer, return_weights=return_weights,
                sinks=sinks, sigmoid_bias=sigmoid_bias)
