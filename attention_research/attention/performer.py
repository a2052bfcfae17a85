"""Performer attention, FAVOR+ (Choromanski et al. 2021): softmax attention through positive random features.

    exp(x . y) = E_w[phi(x) . phi(y)],   phi(x) = exp(W x - |x|^2 / 2) / sqrt(M),   rows of W ~ N(0, I)

with x, y the queries and keys scaled by scale**0.5 (default H**-0.25 each, so x . y = q . k / sqrt(H)).
The M rows of W are drawn in orthogonal blocks of H and rescaled to Gaussian norms, which lowers the
variance of the estimate. The attention itself is kernel attention (see `linear`): linear in T and S,
causal through the same chunked prefix sums.

Numerical stabilisation, in float32: a query's features are divided by their own max (a per-query constant,
which cancels in the ratio); the keys' features by the max over all visible keys and features of a head (a
per-head constant, which also cancels). No constant is added to the features (the reference implementation
adds 1e-6, which biases the estimate when features are small). A row whose denominator is zero, because all
its keys are masked or, in extreme inputs, every product underflowed, returns zeros; a tiny floor on positive
denominators keeps gradients finite when products underflow.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from attention_research.attention import _checks
from attention_research.attention._dense import weighted_values
from attention_research.attention.linear import (DEFAULT_CHUNK_SIZE, check_chunk_size, expand_kv_heads,
                                                 kernel_scores, kernel_sums, key_padding)


def _check_num_features(num_features):
  return _checks.check_int('num_features', num_features)


def draw_features(key, num_features: int, head_size: int):
  """Positive orthogonal random features [num_features, head_size] (float32) for FAVOR+.

  Blocks of head_size orthonormal rows (QR of a Gaussian matrix, signs fixed so the block is Haar
  distributed), stacked and cut to num_features rows; each row is then scaled to the norm of an independent
  Gaussian vector, so that every row is marginally N(0, I) while rows within a block stay orthogonal.
  """
  num_features = _check_num_features(num_features)
  head_size = _checks.check_int('head_size', head_size)
  num_blocks = -(-num_features // head_size)
  block_key, norm_key = jax.random.split(key)

  def block(k):
    g = jax.random.normal(k, (head_size, head_size), jnp.float32)
    qm, r = jnp.linalg.qr(g)
    return (qm * jnp.sign(jnp.diagonal(r))[None, :]).T

  w = jax.vmap(block)(jax.random.split(block_key, num_blocks)).reshape(num_blocks * head_size, head_size)
  w = w[:num_features]
  norms = jnp.linalg.norm(jax.random.normal(norm_key, (num_features, head_size), jnp.float32), axis=-1)
  return w * norms[:, None]


# Hooks for layers (see registry): the features are state, not trained parameters; layers redraw them.
LAYER_OPTIONS = ('num_features',)
NON_TRAINABLE = ('features',)
DEFAULT_LAYER_FEATURES = 64
EXAMPLE_OPTIONS = {'num_features': 32}


def init_layer_params(key, *, head_dim: int, num_features: int = DEFAULT_LAYER_FEATURES, **_):
  return {'features': draw_features(key, num_features, head_dim)}


def call_kwargs(params, **_):
  return {'features': params['features']}


def state_size(*, num_kv_heads: int, value_dim: int, num_features: int = DEFAULT_LAYER_FEATURES, **_) -> int:
  """Recurrent state per kv head: sum_s phi(k_s) v_s^T [M, V] and the normaliser sum_s phi(k_s) [M]."""
  return num_kv_heads * num_features * (value_dim + 1)


def _favor(x, w, valid=None):
  """phi(x) [B, L, heads, M] for x [B, L, heads, H] (already scaled). valid [B|1, L, heads|1] marks keys.

  Queries (valid None) are stabilised per row; keys per (batch, head) over the visible keys, and masked keys
  get exactly zero without ever exponentiating their logits (no inf, no NaN in the gradient).
  """
  logits = jnp.einsum('BLhH,MH->BLhM', x, w) - 0.5 * jnp.sum(x * x, axis=-1, keepdims=True)
  ratio = 1.0 / math.sqrt(w.shape[0])
  if valid is None:
    stab = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    return ratio * jnp.exp(logits - stab)
  valid = valid[..., None]
  stab = jax.lax.stop_gradient(jnp.max(jnp.where(valid, logits, _checks.MASK_VALUE), axis=(1, 3), keepdims=True))
  u = jnp.where(valid, logits - stab, _checks.MASK_VALUE)
  return jnp.where(valid, ratio * jnp.exp(u), 0.0)


# Added to positive denominators: irrelevant at normal scales (a stabilised denominator is rarely below 1e-10)
# but it bounds the gradient, |d out / d den| <= max|v| / (4 * DEN_FLOOR), when products underflow. Its square
# must stay a normal float32 (> 1.2e-38): CPUs flush subnormals to zero.
DEN_FLOOR = 1e-18


def _safe_divide(num, den):
  # Only a zero denominator means "no visible key"; a NaN one (NaN or inf inputs) must stay NaN, as in softmax.
  ok = ~(den <= 0)
  return jnp.where(ok, num / (jnp.where(ok, den, 1.0) + DEN_FLOOR), 0.0)


def _resolve_features(features, key, num_features, d: _checks.Dims):
  if features is not None:
    features = jnp.asarray(features, jnp.float32)
    if features.ndim != 2 or features.shape[1] != d.H or features.shape[0] < 1:
      raise ValueError(f'features must have shape [num_features, H={d.H}]; got {features.shape}.')
    return features
  _check_num_features(num_features)
  return draw_features(jax.random.PRNGKey(0) if key is None else key, num_features, d.H)


def _features(q, k, v, d, *, mask, scale, num_features, key, features):
  w = _resolve_features(features, key, num_features, d)
  scale = _checks.default_scale(scale, d.H)
  if isinstance(scale, (int, float)) and scale <= 0:
    raise ValueError(f'performer needs scale > 0 (q and k are each scaled by scale**0.5); got {scale}.')
  root = jnp.sqrt(jnp.float32(scale))
  key_mask = key_padding(mask, d, 'performer')
  k, v = (expand_kv_heads(_checks.flatten_batch(x, d), key_mask, d) for x in (k, v))
  fq = _favor(_checks.flatten_batch(q, d).astype(jnp.float32) * root, w)
  valid = jnp.ones(k.shape[:3], bool) if key_mask is None else key_mask
  fk = _favor(k.astype(jnp.float32) * root, w, valid)
  return fq, fk, v


def performer(q, k, v, *, mask=None, is_causal=False, scale=None, return_weights=False, num_features=256, key=None,
              features=None, chunk_size=DEFAULT_CHUNK_SIZE):
  """FAVOR+ approximation of softmax(q k^T * scale) v.

  Args:
    q: [..., T, N, H].  k: [..., S, K, H].  v: [..., S, K, V]; N % K == 0.
    mask: key padding only, bool broadcastable to [..., N, 1, S]; masked keys contribute nothing.
    is_causal: query t sees keys s <= t + S - T (chunked prefix sums, linear time).
    scale: the softmax scale being approximated, default 1/sqrt(H); q and k are each multiplied by scale**0.5.
    return_weights: also return the implied attention matrix [..., N, T, S] of the same random features,
      phi(q_t).phi(k_s) normalised over the visible keys; out equals weights @ v.
    num_features: M, the number of random features (ignored when `features` is given).
    key: PRNG key for drawing the features; default jax.random.PRNGKey(0), so calls are deterministic.
    features: explicit [M, H] projection (e.g. from `draw_features`, owned and redrawn by a layer).
    chunk_size: chunk length of the causal prefix sums (results do not depend on it).

  Returns:
    out [..., T, N, V] in v's dtype, or (out, weights). Rows whose keys are all masked give zeros.
  """
  d = _checks.check_qkv(q, k, v)
  mask, _ = _checks.check_mask_bias(mask, None, d)
  check_chunk_size(chunk_size)
  if _checks.is_empty(d):
    _resolve_features(features, key, num_features, d)  # validated all the same
    _checks.check_key_padding_only(mask, d, 'performer')
    return _checks.empty_result(d, v, return_weights)
  fq, fk, vv = _features(q, k, v, d, mask=mask, scale=scale, num_features=num_features, key=key,
                         features=features)
  num, den = kernel_sums(fq, fk, vv, d, is_causal=is_causal, chunk_size=chunk_size)
  out = _checks.unflatten_batch(_safe_divide(num, den[..., None]).astype(v.dtype), d)
  if not return_weights:
    return out
  a = kernel_scores(fq, fk, d, is_causal=is_causal)
  return out, _checks.unflatten_batch(_safe_divide(a, jnp.sum(a, axis=-1, keepdims=True)), d)


def quadratic(q, k, v, *, mask=None, is_causal=False, scale=None, return_weights=False, num_features=256, key=None,
              features=None):
  """The same estimate through the explicit [T, S] matrix of feature products: the reference for `performer`."""
  d = _checks.check_qkv(q, k, v)
  mask, _ = _checks.check_mask_bias(mask, None, d)
  fq, fk, _ = _features(q, k, v, d, mask=mask, scale=scale, num_features=num_features, key=key,
                        features=features)
  a = kernel_scores(fq, fk, d, is_causal=is_causal)
  w = _safe_divide(a, jnp.sum(a, axis=-1, keepdims=True))
  out = weighted_values(w, v, d)
  return (out, _checks.unflatten_batch(w, d)) if return_weights else out
