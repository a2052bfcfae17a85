"""Input validation and the small shape helpers every variant shares.

Dimension letters used throughout the package:
  B  batch (all leading dimensions flattened)    T  query length    S  key length
  N  query heads    K  key/value heads    G = N // K  query heads per kv head
  H  head size of queries and keys    V  head size of values
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator

import jax.numpy as jnp

# Large finite negative for masked scores: -inf would turn fully masked rows into NaN.
MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


@dataclasses.dataclass(frozen=True)
class Dims:
  batch_shape: tuple[int, ...]
  T: int
  S: int
  N: int
  K: int
  H: int
  V: int

  @property
  def G(self) -> int:
    return self.N // self.K

  @property
  def B(self) -> int:
    return math.prod(self.batch_shape)


def check_qkv(q, k, v, *, same_head_size: bool = True) -> Dims:
  """Checks q [..., T, N, H], k [..., S, K, H], v [..., S, K, V] and returns their dimensions."""
  for name, x in (('q', q), ('k', k), ('v', v)):
    if x.ndim < 3:
      raise ValueError(f'{name} must have rank >= 3 ([..., length, heads, head_size]); got shape {x.shape}.')
  if not (q.ndim == k.ndim == v.ndim):
    raise ValueError(f'q, k and v must have the same rank; got q {q.shape}, k {k.shape}, v {v.shape}.')
  if q.shape[:-3] != k.shape[:-3] or k.shape[:-3] != v.shape[:-3]:
    raise ValueError(
        f'q, k and v must share their leading (batch) dimensions; got q {q.shape}, k {k.shape}, v {v.shape}.')
  if k.shape[-3:-1] != v.shape[-3:-1]:
    raise ValueError(f'k and v must have the same length and number of heads; got k {k.shape}, v {v.shape}.')
  T, N, H = q.shape[-3:]
  S, K, Hk = k.shape[-3:]
  if same_head_size and H != Hk:
    raise ValueError(f'q and k must have the same head size; got q {q.shape} (H={H}), k {k.shape} (H={Hk}).')
  if K == 0 or N % K != 0:
    raise ValueError(
        f'the number of query heads N={N} must be a multiple of the number of key/value heads K={K} '
        f'(q {q.shape}, k {k.shape}).')
  return Dims(tuple(q.shape[:-3]), T, S, N, K, H, v.shape[-1])


def _check_broadcast(name, x, d: Dims):
  target = d.batch_shape + (d.N, d.T, d.S)
  if x.ndim > len(target):
    raise ValueError(f'{name} of shape {x.shape} has more dimensions than [..., N, T, S] = {target}.')
  for have, want in zip(reversed(x.shape), reversed(target)):
    if have not in (1, want):
      raise ValueError(f'{name} of shape {x.shape} does not broadcast to [..., N, T, S] = {target}.')


def check_mask_bias(mask, bias, d: Dims):
  """Validates mask (bool, True = may attend) and bias (additive float), both broadcastable to [..., N, T, S]."""
  if mask is not None:
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
      raise ValueError(f'mask must be boolean (True = may attend); got dtype {mask.dtype}.')
    _check_broadcast('mask', mask, d)
  if bias is not None:
    bias = jnp.asarray(bias)
    _check_broadcast('bias', bias, d)
  return mask, bias


def to_bnts(x, d: Dims):
  """Reshapes a mask/bias broadcastable to [..., N, T, S] into [B|1, N|1, T|1, S|1] (no materialisation of N, T, S)."""
  if x is None:
    return None
  x = x.reshape((1,) * (len(d.batch_shape) + 3 - x.ndim) + x.shape)
  lead = x.shape[:-3]
  if all(s == 1 for s in lead):
    return x.reshape((1,) + x.shape[-3:])
  x = jnp.broadcast_to(x, d.batch_shape + x.shape[-3:])
  return x.reshape((d.B,) + x.shape[-3:])


def check_int(name: str, value, minimum: int = 1) -> int:
  """value as an int >= minimum, for static sizes (windows, block sizes, feature counts).

  Floats are refused, not truncated (2.5 would silently become 2), and so are bools and traced values.
  """
  if not isinstance(value, bool):
    try:
      value_int = operator.index(value)
    except TypeError:
      value_int = None
    if value_int is not None and value_int >= minimum:
      return value_int
  raise ValueError(f'{name} must be an integer >= {minimum} (a Python int, fixed when tracing); got {value!r}.')


def is_empty(d: Dims) -> bool:
  return d.T == 0 or d.S == 0


def empty_result(d: Dims, v, return_weights: bool):
  """What every variant returns when T = 0 or S = 0 (`is_empty`), the same in every variant.

  T = 0: an empty output [..., 0, N, V]. S = 0: zeros [..., T, N, V], the rule for rows with no visible key.
  Weights (return_weights=True) are float32 zeros [..., N, T, S], empty as well.
  """
  out = jnp.zeros(d.batch_shape + (d.T, d.N, d.V), v.dtype)
  if not return_weights:
    return out
  return out, jnp.zeros(d.batch_shape + (d.N, d.T, d.S), jnp.float32)


def default_scale(scale, H: int) -> float:
  return 1.0 / math.sqrt(H) if scale is None else scale


def causal_mask_ts(T: int, S: int, offset: int | None = None):
  """Bool [T, S]: query t may see key s when s <= t + offset; offset defaults to S - T (queries are the last T keys)."""
  offset = S - T if offset is None else offset
  return jnp.arange(S)[None, :] <= jnp.arange(T)[:, None] + offset


def merged_mask(mask, is_causal: bool, d: Dims):
  """The mask as [B|1, N|1, T|1, S|1] with the causal constraint folded in (None when nothing is masked)."""
  m = to_bnts(mask, d)
  if is_causal:
    c = causal_mask_ts(d.T, d.S)[None, None]
    m = c if m is None else jnp.logical_and(m, c)
  return m


def flatten_batch(x, d: Dims):
  """[..., L, heads, size] -> [B, L, heads, size]."""
  return x.reshape((d.B,) + x.shape[-3:])


def unflatten_batch(x, d: Dims):
  return x.reshape(d.batch_shape + x.shape[1:])


def check_key_padding_only(mask, d: Dims, variant: str):
  """Linear-time variants handle masks over keys only ([..., 1, 1, S]), not arbitrary [T, S] patterns."""
  if mask is not None and (mask.shape[-2] if mask.ndim >= 2 else 1) != 1:
    raise ValueError(
        f'{variant} attention supports key-padding masks broadcastable to [..., 1, 1, S] (plus is_causal); '
        f'got a mask of shape {mask.shape} that varies over queries (T={d.T}).')


def check_soft_cap(soft_cap):
  """The logit soft-cap as a float > 0, or None; a Python number, fixed when tracing (the kernel's plan holds it)."""
  if soft_cap is None:
    return None
  if isinstance(soft_cap, bool) or not isinstance(soft_cap, numbers.Real) or not 0 < soft_cap < math.inf:
    raise ValueError(f'logit_soft_cap must be a finite number > 0 (a Python float, fixed when tracing); '
                     f'got {soft_cap!r}.')
  return float(soft_cap)


def check_sinks(sinks, d: Dims):
  """Sink logits of shape [N] (one per query head), as a float array, or None."""
  if sinks is None:
    return None
  sinks = jnp.asarray(sinks)
  if sinks.shape != (d.N,) or not jnp.issubdtype(sinks.dtype, jnp.floating):
    raise ValueError(f'sinks must be a float array of shape [N] = ({d.N},), one logit per query head; '
                     f'got shape {sinks.shape} and dtype {sinks.dtype}.')
  return sinks
