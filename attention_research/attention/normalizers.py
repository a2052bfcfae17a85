"""Normalisers that turn masked scores into attention weights along the key axis.

softmax saturates: with sharp scores it still gives every key some weight and its gradient vanishes.
sparsemax (Martins and Astudillo 2016) and 1.5-entmax (Peters et al. 2019) give exact zeros instead.
sigmoid (Ramapuram et al. 2024) weighs every key on its own, sigmoid(s + b), without normalising the row.
All run in float32 and return zeros for rows whose keys are all masked.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from attention_research.attention._checks import MASK_VALUE


def _zero_dead_rows(w, mask):
  if mask is None:
    return w
  return jnp.where(jnp.any(mask, axis=-1, keepdims=True), w, 0.0)


def softmax(scores, mask=None):
  s = scores.astype(jnp.float32)
  if mask is not None:
    s = jnp.where(mask, s, MASK_VALUE)
  return _zero_dead_rows(jax.nn.softmax(s, axis=-1), mask)


def _sparsemax_threshold(z):
  """tau such that sum(max(z - tau, 0)) = 1, by sorting (exact)."""
  zs = jnp.flip(jnp.sort(z, axis=-1), axis=-1)
  k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
  cums = jnp.cumsum(zs, axis=-1)
  support = 1 + k * zs > cums
  k_z = jnp.sum(support, axis=-1, keepdims=True)
  cum_at_k = jnp.take_along_axis(cums, k_z.astype(jnp.int32) - 1, axis=-1)
  return (cum_at_k - 1) / k_z


@jax.custom_jvp
def _sparsemax(z):
  return jnp.maximum(z - _sparsemax_threshold(z), 0.0)


@_sparsemax.defjvp
def _sparsemax_jvp(primals, tangents):
  (z,), (dz,) = primals, tangents
  p = _sparsemax(z)
  support = (p > 0).astype(z.dtype)
  # Jacobian of sparsemax: diag(s) - s s^T / |s| on the support s.
  mean_dz = jnp.sum(dz * support, -1, keepdims=True) / jnp.maximum(jnp.sum(support, -1, keepdims=True), 1.0)
  return p, support * (dz - mean_dz)


def sparsemax(scores, mask=None):
  s = scores.astype(jnp.float32)
  if mask is not None:
    s = jnp.where(mask, s, MASK_VALUE)
  # Shift by the row max so that masked entries (MASK_VALUE) never overflow.
  s = s - jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))
  return _zero_dead_rows(_sparsemax(s), mask)


def _entmax15_threshold(z):
  """Exact 1.5-entmax threshold by sorting (Peters et al. 2019, Algorithm 2), z already halved."""
  zs = jnp.flip(jnp.sort(z, axis=-1), axis=-1)
  k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
  mean = jnp.cumsum(zs, -1) / k
  mean_sq = jnp.cumsum(zs**2, -1) / k
  ss = k * (mean_sq - mean**2)
  delta = jnp.maximum((1 - ss) / k, 0.0)
  tau = mean - jnp.sqrt(delta)
  support = jnp.sum(tau <= zs, axis=-1, keepdims=True)
  return jnp.take_along_axis(tau, support.astype(jnp.int32) - 1, axis=-1)


@jax.custom_jvp
def _entmax15(z):
  z = z / 2
  return jnp.maximum(z - _entmax15_threshold(z), 0.0) ** 2


@_entmax15.defjvp
def _entmax15_jvp(primals, tangents):
  (z,), (dz,) = primals, tangents
  p = _entmax15(z)
  # p_i = (z_i/2 - tau)^2 gives dp = g dz - g sum(g dz) / sum(g), with g = sqrt(p).
  g = jnp.sqrt(p)
  gdz = g * dz
  return p, gdz - g * jnp.sum(gdz, -1, keepdims=True) / jnp.maximum(jnp.sum(g, -1, keepdims=True), 1e-30)


def entmax15(scores, mask=None):
  s = scores.astype(jnp.float32)
  if mask is not None:
    s = jnp.where(mask, s, MASK_VALUE)
  s = s - jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))
  return _zero_dead_rows(_entmax15(s), mask)


def sigmoid(scores, mask=None, *, bias=None):
  """sigmoid(s + b) per key, masked entries 0 (Ramapuram et al. 2024, "Theory, Analysis, and Best Practices for
  Sigmoid Self-Attention"). b defaults to -log(S), S the number of keys (the last axis), so that the weights of
  a row start near a total of 1, as softmax's do; without it early training is unstable (their Section 3)."""
  s = scores.astype(jnp.float32)
  b = -math.log(max(s.shape[-1], 1)) if bias is None else bias
  if mask is not None:
    # Masked before the sigmoid, not after: a non-finite masked score then reaches neither value nor gradient.
    s = jnp.where(mask, s, MASK_VALUE)
  return jax.nn.sigmoid(s + jnp.asarray(b, jnp.float32))


NORMALIZERS = {'softmax': softmax, 'sparsemax': sparsemax, 'entmax15': entmax15, 'sigmoid': sigmoid}
# Normalisers whose weights sum to 1 over the keys; a sink logit (a key without value) only makes sense for them.
NORMALIZING = ('softmax', 'sparsemax', 'entmax15')


def get_normalizer(name: str):
  if name not in NORMALIZERS:
    raise ValueError(f'unknown normalizer {name!r}; known normalizers: {sorted(NORMALIZERS)}.')
  return NORMALIZERS[name]
