"""Boolean mask builders (True = may attend), shaped to broadcast against [..., N, T, S]."""

from __future__ import annotations

import jax.numpy as jnp


def causal(T: int, S: int | None = None, offset: int | None = None):
  """[T, S]: query t sees key s when s <= t + offset; offset defaults to S - T (queries are the last T keys)."""
  S = T if S is None else S
  offset = S - T if offset is None else offset
  return jnp.arange(S)[None, :] <= jnp.arange(T)[:, None] + offset


def padding(lengths, S: int):
  """Key padding from lengths [B] -> [B, 1, 1, S]: key s is valid when s < length."""
  lengths = jnp.asarray(lengths)
  return (jnp.arange(S)[None, :] < lengths[:, None])[:, None, None, :]


def key_padding(lengths_or_valid, max_length: int | None = None):
  """Key padding [B, 1, 1, S] from a validity mask [B, S] (True = real key), one already [B, 1, 1, S], or
  integer lengths [B] (then max_length gives S). None stays None (nothing masked)."""
  if lengths_or_valid is None:
    return None
  x = jnp.asarray(lengths_or_valid)
  if x.ndim == 1:
    if not jnp.issubdtype(x.dtype, jnp.integer):
      raise ValueError(f'a rank-1 key padding argument must be integer lengths [B]; got dtype {x.dtype}, shape '
                       f'{x.shape} (a validity mask needs its batch axis: [B, S]).')
    if max_length is None:
      raise ValueError(f'key padding from lengths {x.shape} needs max_length (the key length S); got None.')
    return padding(x, max_length)
  if x.ndim == 2:
    valid = x.astype(bool)[:, None, None, :]
  elif x.ndim == 4 and x.shape[1:3] == (1, 1):
    valid = x.astype(bool)
  else:
    raise ValueError(f'expected a key-padding mask [B, S] or [B, 1, 1, S], or lengths [B]; got shape {x.shape}.')
  if max_length is not None and valid.shape[-1] != max_length:
    raise ValueError(f'key padding mask {x.shape} has {valid.shape[-1]} keys, but max_length={max_length}.')
  return valid


def from_ids(ids, pad_id: int = 0):
  """Key padding from token ids [B, S] -> [B, 1, 1, S]."""
  return (jnp.asarray(ids) != pad_id)[:, None, None, :]


def local(T: int, S: int, window: tuple[int, int], offset: int | None = None):
  """[T, S] sliding window: query t sees keys t + offset - left ... t + offset + right."""
  left, right = window
  if left < 0 or right < 0:
    raise ValueError(f'window sizes must be >= 0; got window={window}.')
  offset = S - T if offset is None else offset
  rel = jnp.arange(S)[None, :] - (jnp.arange(T)[:, None] + offset)
  return (rel >= -left) & (rel <= right)


def segments(q_segment_ids, kv_segment_ids=None):
  """Packed sequences: [B, T] (and [B, S]) segment ids -> [B, 1, T, S], attending only within a segment."""
  q = jnp.asarray(q_segment_ids)
  kv = q if kv_segment_ids is None else jnp.asarray(kv_segment_ids)
  return (q[:, :, None] == kv[:, None, :])[:, None]


def combine(*masks):
  """Logical AND of the masks that are not None (None when all are)."""
  out = None
  for m in masks:
    if m is not None:
      out = m if out is None else jnp.logical_and(out, m)
  return out
