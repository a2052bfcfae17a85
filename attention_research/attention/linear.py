"""Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"): softmax(q k^T) becomes phi(q) phi(k)^T.

    out_t = phi(q_t)^T sum_s phi(k_s) v_s^T / (phi(q_t)^T sum_s phi(k_s) + eps),   phi(x) = elu(x) + 1

Non-causal: the key sums are formed once, O((T + S) M V) time and O(M V) memory per head.
Causal: prefix sums in chunks of C positions. Inside a chunk the quadratic form is a [C, C] matrix; across
chunks an exclusive cumulative sum of the per-chunk summaries phi(k)^T v carries the past. Time
O(T (C + M) V), memory O(T / C * M V + T C) per head, with no sequential loop. A per-position cumulative sum
would need O(T M V) memory; a lax.scan over chunks is sequential and was slower on both CPU and GPU.

The kernel machinery here (`key_padding`, `kernel_sums`, `kernel_scores`) is shared with `performer`.
Extra dimension letters: M feature size, C chunk size, c chunk index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attention_research.attention import _checks
from attention_research.attention._dense import weighted_values

FEATURE_MAPS = {
    'elu': lambda x: jax.nn.elu(x) + 1.0,
    'relu': jax.nn.relu,
}

DEFAULT_CHUNK_SIZE = 128


def _feature_fn(feature_map):
  if callable(feature_map):
    return feature_map
  if feature_map not in FEATURE_MAPS:
    raise ValueError(f'unknown feature_map {feature_map!r}; known: {sorted(FEATURE_MAPS)} or a callable.')
  return FEATURE_MAPS[feature_map]


def check_chunk_size(chunk_size):
  return _checks.check_int('chunk_size', chunk_size)


def key_padding(mask, d: _checks.Dims, variant: str):
  """A key-padding mask broadcastable to [..., N|1, 1, S] -> bool [B|1, S, N|1], or None."""
  _checks.check_key_padding_only(mask, d, variant)
  m = _checks.to_bnts(mask, d)  # [B|1, N|1, 1, S|1]
  if m is None:
    return None
  m = jnp.broadcast_to(m[:, :, 0, :], m.shape[:2] + (d.S,))
  return jnp.swapaxes(m, 1, 2)


def expand_kv_heads(x_bskh, key_mask, d: _checks.Dims):
  """Repeats kv heads to the N query heads when the key mask differs per query head (the kv summaries then do)."""
  if key_mask is not None and key_mask.shape[-1] == d.N and d.G > 1:
    return jnp.repeat(x_bskh, d.G, axis=2)
  return x_bskh


def _chunked_causal_sums(fq, fk, v, chunk_size, kv0, z0):
  """Query i sees keys j <= i. fq [B, L, K, G, M], fk [B, L, K, M], v [B, L, K, V]; kv0, z0: state before key 0."""
  B, L, K, G, M = fq.shape
  C = min(chunk_size, L)
  nc = -(-L // C)
  pad = nc * C - L
  if pad:
    fq, fk, v = (jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2)) for x in (fq, fk, v))
  fq = fq.reshape(B, nc, C, K, G, M)
  fk = fk.reshape(B, nc, C, K, M)
  v = v.reshape(B, nc, C, K, -1)

  kv = jnp.einsum('BcCKM,BcCKV->BcKMV', fk, v)
  z = jnp.sum(fk, axis=2)
  # Exclusive prefix over chunks: what every query of chunk c sees from chunks before it.
  kv_prev = jnp.concatenate([jnp.zeros_like(kv[:, :1]), jnp.cumsum(kv[:, :-1], axis=1)], axis=1) + kv0[:, None]
  z_prev = jnp.concatenate([jnp.zeros_like(z[:, :1]), jnp.cumsum(z[:, :-1], axis=1)], axis=1) + z0[:, None]

  a = jnp.einsum('BcCKGM,BcDKM->BcKGCD', fq, fk) * jnp.tri(C, dtype=fq.dtype)
  num = jnp.einsum('BcCKGM,BcKMV->BcCKGV', fq, kv_prev) + jnp.einsum('BcKGCD,BcDKV->BcCKGV', a, v)
  den = jnp.einsum('BcCKGM,BcKM->BcCKG', fq, z_prev) + jnp.einsum('BcKGCD->BcCKG', a)
  return num.reshape(B, nc * C, K, G, -1)[:, :L], den.reshape(B, nc * C, K, G)[:, :L]


def kernel_sums(fq, fk, v, d: _checks.Dims, *, is_causal: bool, chunk_size: int = DEFAULT_CHUNK_SIZE):
  """Numerator [B, T, N, V] and denominator [B, T, N] of kernel attention, in float32.

  fq [B, T, N, M] and fk [B, S, K', M] are non-negative features (masked keys already zero), v [B, S, K', V],
  with K' = K or N (see `expand_kv_heads`). Causal uses the convention of _checks: query t sees s <= t + S - T.
  """
  B, T, N, M = fq.shape
  S, kh = fk.shape[1], fk.shape[2]
  fq = fq.reshape(B, T, kh, N // kh, M)
  v = v.astype(jnp.float32)
  if not is_causal:
    kv = jnp.einsum('BSKM,BSKV->BKMV', fk, v)
    num = jnp.einsum('BTKGM,BKMV->BTKGV', fq, kv)
    den = jnp.einsum('BTKGM,BKM->BTKG', fq, jnp.sum(fk, axis=1))
  else:
    offset = S - T
    if offset >= 0:
      # Keys before the first query are visible to every query: they start the running state.
      kv0 = jnp.einsum('BSKM,BSKV->BKMV', fk[:, :offset], v[:, :offset])
      z0 = jnp.sum(fk[:, :offset], axis=1)
      num, den = _chunked_causal_sums(fq, fk[:, offset:], v[:, offset:], chunk_size, kv0, z0)
    else:
      # The first -offset queries see no key at all.
      kv0 = jnp.zeros((B, kh, M, v.shape[-1]), jnp.float32)
      z0 = jnp.zeros((B, kh, M), jnp.float32)
      num, den = _chunked_causal_sums(fq[:, -offset:], fk, v, chunk_size, kv0, z0)
      num = jnp.pad(num, [(0, 0), (-offset, 0), (0, 0), (0, 0), (0, 0)])
      den = jnp.pad(den, [(0, 0), (-offset, 0), (0, 0), (0, 0)])
  return num.reshape(B, T, N, -1), den.reshape(B, T, N)


def kernel_scores(fq, fk, d: _checks.Dims, *, is_causal: bool):
  """The implied unnormalised attention matrix phi(q) phi(k)^T as [B, N, T, S] (the quadratic form)."""
  B, T, N, M = fq.shape
  kh = fk.shape[2]
  a = jnp.einsum('BTKGM,BSKM->BKGTS', fq.reshape(B, T, kh, N // kh, M), fk).reshape(B, N, T, -1)
  if is_causal:
    a = a * _checks.causal_mask_ts(d.T, d.S)
  return a


def _features(q, k, v, d, *, mask, scale, feature_map, variant='linear'):
  phi = _feature_fn(feature_map)
  key_mask = key_padding(mask, d, variant)
  k, v = (expand_kv_heads(_checks.flatten_batch(x, d), key_mask, d) for x in (k, v))
  s = jnp.float32(1.0 if scale is None else scale)
  fq = phi(_checks.flatten_batch(q, d).astype(jnp.float32) * s)
  fk = phi(k.astype(jnp.float32))
  if key_mask is not None:
    fk = jnp.where(key_mask[..., None], fk, 0.0)
  return fq, fk, v


def state_size(*, num_kv_heads: int, head_dim: int, value_dim: int, **_) -> int:
  """Recurrent state per kv head: sum_s phi(k_s) v_s^T [H, V] and the normaliser sum_s phi(k_s) [H]."""
  return num_kv_heads * head_dim * (value_dim + 1)


def _check_eps(eps):
  if not eps > 0:
    raise ValueError(f'eps must be > 0 (it guards the denominator of rows whose keys are all masked); got {eps}.')


def linear(q, k, v, *, mask=None, is_causal=False, scale=None, return_weights=False, feature_map='elu', eps=1e-6,
           chunk_size=DEFAULT_CHUNK_SIZE):
  """Linear attention with feature map phi (default elu + 1).

  Args:
    q: [..., T, N, H].  k: [..., S, K, H].  v: [..., S, K, V]; N % K == 0.
    mask: key padding only, bool broadcastable to [..., N, 1, S] (True = may attend); masked keys contribute
      nothing. Masks that vary over queries raise ValueError: they have no linear-time form.
    is_causal: query t sees keys s <= t + S - T, computed with chunked prefix sums in linear time.
    scale: multiplies q before the feature map. None means 1.0, as in the paper (elu + 1 is not scale
      invariant, so the softmax default 1/sqrt(H) is not applied).
    return_weights: also return the implied attention matrix [..., N, T, S],
      w_ts = phi(q_t).phi(k_s) / (sum_s' phi(q_t).phi(k_s') + eps) over the visible keys; out equals w @ v.
    feature_map: 'elu' (elu + 1), 'relu', or a callable applied elementwise in float32.
    eps: added to the denominator, as in the reference implementation; rows whose keys are all masked get 0.
    chunk_size: chunk length of the causal prefix sums (a speed/memory knob; results do not depend on it).

  Returns:
    out [..., T, N, V] in v's dtype, or (out, weights). Features and sums are computed in float32.
  """
  d = _checks.check_qkv(q, k, v)
  mask, _ = _checks.check_mask_bias(mask, None, d)
  _check_eps(eps)
  check_chunk_size(chunk_size)
  _feature_fn(feature_map)
  _checks.check_key_padding_only(mask, d, 'linear')
  if _checks.is_empty(d):
    return _checks.empty_result(d, v, return_weights)
  fq, fk, vv = _features(q, k, v, d, mask=mask, scale=scale, feature_map=feature_map)
  num, den = kernel_sums(fq, fk, vv, d, is_causal=is_causal, chunk_size=chunk_size)
  out = _checks.unflatten_batch((num / (den + eps)[..., None]).astype(v.dtype), d)
  if not return_weights:
    return out
  a = kernel_scores(fq, fk, d, is_causal=is_causal)
  w = a / (jnp.sum(a, axis=-1, keepdims=True) + eps)
  return out, _checks.unflatten_batch(w, d)


def quadratic(q, k, v, *, mask=None, is_causal=False, scale=None, return_weights=False, feature_map='elu',
              eps=1e-6):
  """The same attention through the explicit [T, S] matrix: the plain reference `linear` is tested against."""
  d = _checks.check_qkv(q, k, v)
  mask, _ = _checks.check_mask_bias(mask, None, d)
  _check_eps(eps)
  fq, fk, _ = _features(q, k, v, d, mask=mask, scale=scale, feature_map=feature_map)
  a = kernel_scores(fq, fk, d, is_causal=is_causal)
  w = a / (jnp.sum(a, axis=-1, keepdims=True) + eps)
  out = weighted_values(w, v, d)
  return (out, _checks.unflatten_batch(w, d)) if return_weights else out
