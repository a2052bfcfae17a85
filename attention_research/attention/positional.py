"""Positional schemes as pure functions: absolute (sinusoidal), rotary (RoPE), and score biases (ALiBi, T5)."""

from __future__ import annotations

import math

import jax.numpy as jnp


def sinusoidal(length: int, dim: int, *, max_timescale: float = 10_000.0, offset: int = 0):
  """[length, dim] sin/cos table of Vaswani et al. 2017 (sin on the first half of the channels, cos on the second)."""
  if dim % 2:
    raise ValueError(f'sinusoidal embeddings need an even dimension; got dim={dim}.')
  pos = jnp.arange(offset, offset + length, dtype=jnp.float32)[:, None]
  inv = jnp.exp(-math.log(max_timescale) * jnp.arange(dim // 2, dtype=jnp.float32) / (dim // 2))
  ang = pos * inv[None, :]
  return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], axis=-1)


def rope(x, positions=None, *, base: float = 10_000.0):
  """Rotary position embedding (Su et al. 2021) on x [..., L, N, H], rotating channel pairs (i, i + H/2).

  positions: int [..., L] (broadcastable); default 0..L-1. Apply to queries and keys before attention, so that
  their dot product depends only on the relative position.
  """
  H = x.shape[-1]
  if H % 2:
    raise ValueError(f'rope needs an even head size; got x of shape {x.shape}.')
  if positions is None:
    positions = jnp.arange(x.shape[-3])
  positions = jnp.asarray(positions, jnp.float32)
  inv = base ** (-jnp.arange(H // 2, dtype=jnp.float32) / (H // 2))
  ang = positions[..., None, None] * inv  # [..., L, 1, H/2]
  sin, cos = jnp.sin(ang), jnp.cos(ang)
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def alibi_slopes(num_heads: int):
  """Head slopes of Press et al. 2022: a geometric sequence, interleaved when num_heads is not a power of 2."""
  def pow2(n):
    start = 2.0 ** (-8.0 / n)
    return [start ** (i + 1) for i in range(n)]
  if num_heads & (num_heads - 1) == 0:
    return jnp.asarray(pow2(num_heads), jnp.float32)
  closest = 2 ** math.floor(math.log2(num_heads))
  extra = pow2(2 * closest)[0::2][: num_heads - closest]
  return jnp.asarray(pow2(closest) + extra, jnp.float32)


def alibi_bias(num_heads: int, T: int, S: int | None = None, *, offset: int | None = None):
  """[N, T, S] ALiBi bias -slope * |distance|; offset places query t at key position t + offset (default S - T)."""
  S = T if S is None else S
  offset = S - T if offset is None else offset
  dist = jnp.abs(jnp.arange(S)[None, :] - (jnp.arange(T)[:, None] + offset)).astype(jnp.float32)
  return -alibi_slopes(num_heads)[:, None, None] * dist[None]


def relative_position_bucket(relative_position, *, bidirectional: bool = True, num_buckets: int = 32,
                             max_distance: int = 128):
  """T5 buckets: exact for small distances, logarithmic up to max_distance (Raffel et al. 2020)."""
  n = -jnp.asarray(relative_position)
  ret = 0
  if bidirectional:
    num_buckets //= 2
    ret = (n < 0).astype(jnp.int32) * num_buckets
    n = jnp.abs(n)
  else:
    n = jnp.maximum(n, 0)
  max_exact = num_buckets // 2
  is_small = n < max_exact
  val_if_large = max_exact + (
      jnp.log(jnp.maximum(n, 1).astype(jnp.float32) / max_exact) / math.log(max_distance / max_exact)
      * (num_buckets - max_exact)).astype(jnp.int32)
  val_if_large = jnp.minimum(val_if_large, num_buckets - 1)
  return ret + jnp.where(is_small, n, val_if_large)


def t5_relative_bias(table, T: int, S: int | None = None, *, bidirectional: bool = True,
                     max_distance: int = 128, offset: int | None = None):
  """[N, T, S] bias looked up from a learned table [num_buckets, N] by the bucket of (key - query) position."""
  S = T if S is None else S
  offset = S - T if offset is None else offset
  rel = jnp.arange(S)[None, :] - (jnp.arange(T)[:, None] + offset)
  buckets = relative_position_bucket(rel, bidirectional=bidirectional, num_buckets=table.shape[0],
                                     max_distance=max_distance)
  return jnp.transpose(table[buckets], (2, 0, 1))
