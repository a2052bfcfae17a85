"""Linformer (Wang et al. 2020): softmax attention over r learned projections of the keys and values along length.

    k' = E^T k,  v' = F^T v   (E, F: [S, r]),   out = softmax(q k'^T * scale) v'

Time O(T r H + S r (H + V)), memory O(T r) per head. The projection mixes every position into every projected
key, so the mechanism is not causal: is_causal=True raises. Key padding masks zero the masked keys and values
before projecting, so they contribute nothing to k' and v'. That is the whole of the mask semantics: the r
projected positions are not masked (a projected key is a mix of visible keys), so with E = F = I a masked key
becomes a zero key with a zero value, which still takes softmax mass exp(0) but adds nothing to the output;
linformer then equals dot_product on the zeroed keys, not dot_product with the mask.

Implied weights (return_weights=True): out_t = sum_r p_tr sum_s F_sr v_s = sum_s (p F^T)_ts v_s, so the
attention matrix seen by the values is W = p F^T over the visible keys (zero on masked keys), with p the
[T, r] softmax. out equals W @ v. W is signed and its rows need not sum to one; with E = F = I it is softmax.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from attention_research.attention import _checks
from attention_research.attention.linear import expand_kv_heads, key_padding
from attention_research.attention.normalizers import softmax


def init_params(key, length: int, rank: int, dtype=jnp.float32):
  """E, F [length, rank] ~ N(0, 1/length): a projected key is a random mix of keys of the originals' scale."""
  length, rank = _checks.check_int('length', length), _checks.check_int('rank', rank)
  ke, kf = jax.random.split(key)
  std = 1.0 / math.sqrt(length)
  return {'e': (std * jax.random.normal(ke, (length, rank), jnp.float32)).astype(dtype),
          'f': (std * jax.random.normal(kf, (length, rank), jnp.float32)).astype(dtype)}


# Hooks for layers (see registry): E, F are [max_length, rank], cut to the key length at each call.
LAYER_OPTIONS = ('rank',)
DEFAULT_RANK = 64
EXAMPLE_OPTIONS = {'rank': 4}


def init_layer_params(key, *, max_length: int | None, dtype, rank: int = DEFAULT_RANK, **_):
  if max_length is None:
    raise ValueError(f'linformer needs max_length (its projections are [max_length, rank={rank}]); got None.')
  return init_params(key, max_length, rank, dtype)


def call_kwargs(params, *, k, **_):
  S, max_length = k.shape[-3], params['e'].shape[0]
  if S > max_length:
    raise ValueError(f'linformer key length {S} (k {k.shape}) exceeds max_length={max_length}.')
  return {'params': {'e': params['e'][:S], 'f': params['f'][:S]}}


def state_size(*, num_kv_heads: int, head_dim: int, value_dim: int, length: int, rank: int = DEFAULT_RANK,
               **_) -> int:
  """The r projected keys and values (the mechanism is not causal, so it has no step-by-step decoding)."""
  return num_kv_heads * (head_dim + value_dim) * min(rank, length)


def _check_params(params, d: _checks.Dims):
  if not isinstance(params, dict) or not {'e', 'f'} <= set(params):
    got = sorted(params) if isinstance(params, dict) else type(params).__name__
    raise ValueError(f"linformer needs params={{'e': [S, r], 'f': [S, r]}}; got {got}.")
  e, f = jnp.asarray(params['e']), jnp.asarray(params['f'])
  if e.ndim != 2 or f.ndim != 2 or e.shape != f.shape or e.shape[0] != d.S or e.shape[1] < 1:
    raise ValueError(f"linformer params must both have shape [S, r] with S={d.S} the key length; got "
                     f"e {e.shape}, f {f.shape}.")
  return e.astype(jnp.float32), f.astype(jnp.float32)


def linformer(q, k, v, *, params, mask=None, is_causal=False, scale=None, return_weights=False):
  """Linformer attention.

  Args:
    q: [..., T, N, H].  k: [..., S, K, H].  v: [..., S, K, V]; N % K == 0.
    params: {'e': [S, r], 'f': [S, r]} projecting keys (e) and values (f) along the length S.
    mask: key padding only, bool broadcastable to [..., N, 1, S]; masked keys are zeroed before projecting.
    is_causal: must be False (ValueError otherwise).
    scale: score scale, default 1/sqrt(H).
    return_weights: also return W = softmax(q k'^T) F^T [..., N, T, S] restricted to visible keys.

  Returns:
    out [..., T, N, V] in v's dtype, or (out, weights). Rows whose keys are all masked give zeros.
  """
  d = _checks.check_qkv(q, k, v)
  mask, _ = _checks.check_mask_bias(mask, None, d)
  if is_causal:
    raise ValueError('linformer is not causal: the length projection mixes every key, future ones included, into '
                     'each projected key; use linear, performer or block_sparse for causal attention.')
  e, f = _check_params(params, d)
  key_mask = key_padding(mask, d, 'linformer')
  k, v32 = (expand_kv_heads(_checks.flatten_batch(x, d), key_mask, d).astype(jnp.float32) for x in (k, v))
  if key_mask is not None:
    k = jnp.where(key_mask[..., None], k, 0.0)
    v32 = jnp.where(key_mask[..., None], v32, 0.0)
  kh = k.shape[2]
  k_brkh = jnp.einsum('BSKH,Sr->BrKH', k, e)
  v_brkv = jnp.einsum('BSKV,Sr->BrKV', v32, f)
  q_btkgh = _checks.flatten_batch(q, d).astype(jnp.float32).reshape(d.B, d.T, kh, d.N // kh, d.H)
  s = jnp.einsum('BTKGH,BrKH->BKGTr', q_btkgh, k_brkh) * jnp.float32(_checks.default_scale(scale, d.H))
  p = softmax(s)
  out = jnp.einsum('BKGTr,BrKV->BTKGV', p, v_brkv).reshape(d.B, d.T, d.N, d.V)
  out = _checks.unflatten_batch(out.astype(v.dtype), d)
  if not return_weights:
    return out
  w = jnp.einsum('BKGTr,Sr->BKGTS', p, f).reshape(d.B, d.N, d.T, d.S)
  if key_mask is not None:
    w = w * jnp.swapaxes(key_mask, 1, 2)[:, :, None, :]
  return out, _checks.unflatten_batch(w, d)
