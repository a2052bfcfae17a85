"""Sliding-window (local) attention: each query sees the keys within `window` of its own position.

Query t sits at key position t + S - T (the causal convention of the package) and sees keys
t + S - T - left ... t + S - T + right. The blocked kernel of `flash` visits only the key blocks that cover
each query block's window, so the cost is O(T * (left + right + block)) rather than O(T * S).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from attention_research.attention import _blocked, _checks, _heads_major, _pallas_gpu, masks
from attention_research.attention._dense import reference

# Blocks a little larger than typical windows: a query block then touches about three key blocks.
DEFAULT_BLOCK_SIZE = 256


def _parse_window(window) -> tuple[int, int]:
  """An int w means (w, w); both sides must be ints >= 0."""
  pair = window if isinstance(window, (tuple, list)) else (window, window)
  if len(pair) != 2:
    raise ValueError(f'window must be an int or a (left, right) pair of ints; got {window!r}.')
  left, right = (_checks.check_int(f'window {side} (of window={window!r})', w, minimum=0)
                 for side, w in zip(('left', 'right'), pair))
  return left, right


def check_window(window, T: int, S: int) -> tuple[int, int]:
  """An int w means (w, w). Sides must be >= 0 and no larger than the sequence."""
  left, right = _parse_window(window)
  length = max(T, S)
  if length and (left > length or right > length):  # empty sequences take any window
    raise ValueError(f'window={(left, right)} is larger than the sequence (query length T={T}, key length S={S}); '
                     f'use at most ({length}, {length}), which already covers every key.')
  return left, right


# Hooks for layers and tables (see registry).
EXAMPLE_OPTIONS = {'window': (2, 1)}


def decode_step(fn, q, k, v, *, index, mask, window, **kwargs):
  """One cached step: q [B, T, N, H] at absolute positions index + t over the whole cache k, v [B, L, K, H|V].

  The kernel places its window by the cache's length, not by the step's absolute position, so the window
  becomes part of the mask and the kernel's own window is opened to the whole cache. `mask` already hides
  keys after each query, so only the left side of the window matters.
  """
  T, L = q.shape[-3], k.shape[-3]
  left, _ = check_window(window, L, L)
  return fn(q, k, v, mask=masks.combine(mask, _window_of_step(index, T, L, left)), window=(L, L),
            is_causal=False, **kwargs)


def decode_heads_major(fn, q, k, v, *, index, mask, window, bias=None, return_weights=False, **kwargs):
  """decode_step over a cache the layer keeps head-major, k, v [B, K, L, H|V] (registry decode_heads_major).

  The window joins the mask, and only the left + T cached keys that can fall in it are read (a slice at the
  step's position): a step costs O(left + T), not O(L). Weights, when asked for, cover the whole cache."""
  T, L = q.shape[-3], k.shape[-2]
  left, _ = check_window(window, L, L)
  mask = masks.combine(mask, _window_of_step(index, T, L, left))
  size = left + T
  if size < L and not return_weights:
    # Keys index - left ... index + T - 1 hold every visible one; the start is clamped into the cache.
    start = jnp.clip(index - left, 0, L - size)
    k, v = (lax.dynamic_slice_in_dim(x, start, size, axis=-2) for x in (k, v))
    mask, bias = (x if x is None or x.shape[-1] == 1 else lax.dynamic_slice_in_dim(x, start, size, axis=-1)
                  for x in (mask, bias))
  if bias is not None:
    kwargs['bias'] = bias
  return _heads_major.decode_step(fn, q, k, v, index=index, mask=mask, return_weights=return_weights, **kwargs)


def _window_of_step(index, T: int, L: int, left: int):
  """Bool [T, L]: the keys at most `left` before the queries at positions index ... index + T - 1."""
  return jnp.arange(L)[None, :] >= (index + jnp.arange(T))[:, None] - left


def state_size(*, num_kv_heads: int, head_dim: int, value_dim: int, length: int, window, **_) -> int:
  """Decoding keeps the last left + 1 keys and values (the query's own position and `left` before it)."""
  left, _ = _parse_window(window)
  return num_kv_heads * (head_dim + value_dim) * min(length, left + 1)


def local(q, k, v, *, window, mask=None, bias=None, is_causal=False, scale=None, return_weights=False,
          block_size=None):
  """Softmax attention restricted to a sliding window, equal to dot_product with masks.local(T, S, window).

  Args:
    q: [..., T, N, H], k: [..., S, K, H], v: [..., S, K, V]; N % K == 0.
    window: (left, right) keys visible before and after the query's position; an int w means (w, w).
    mask, bias: as in dot_product (broadcastable to [..., N, T, S]), combined with the window.
    is_causal: forces right = 0.
    return_weights: also return [..., N, T, S] weights (zeros outside the window; materialises T x S).
    block_size: query and key block size of the kernel (default 256).

  Returns:
    out [..., T, N, V], or (out, weights) with return_weights=True.
  """
  d = _checks.check_qkv(q, k, v)
  mask, bias = _checks.check_mask_bias(mask, bias, d)
  left, right = check_window(window, d.T, d.S)
  if block_size is not None:
    _checks.check_int('block_size', block_size)
  if is_causal:
    right = 0
  if return_weights:
    band = masks.local(d.T, d.S, (left, right))
    return reference(q, k, v, mask=masks.combine(mask, band), bias=bias, scale=scale, return_weights=True)
  if block_size is None and _pallas_gpu.fits(q, k, v, d, bias, mask):  # on a GPU: the fused forward
    return _pallas_gpu.attention(q, k, v, d, mask=mask, scale=scale, left=left, right=right)
  block = DEFAULT_BLOCK_SIZE if block_size is None else block_size
  return _blocked.blocked_attention(q, k, v, d, mask=mask, bias=bias, scale=scale, is_causal=False, left=left,
                                    right=right, block_q=block, block_k=block)
