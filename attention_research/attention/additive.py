"""Additive attention (Bahdanau et al. 2015): score(q, k) = v . tanh(q W_q + k W_k)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attention_research.attention import _checks
from attention_research.attention._dense import attend


def init_params(key, q_size: int, k_size: int, hidden: int, dtype=jnp.float32):
  kq, kk, kv = jax.random.split(key, 3)
  return {
      'w_q': jax.random.normal(kq, (q_size, hidden), dtype) / jnp.sqrt(q_size).astype(dtype),
      'w_k': jax.random.normal(kk, (k_size, hidden), dtype) / jnp.sqrt(k_size).astype(dtype),
      'v': jax.random.normal(kv, (hidden,), dtype) / jnp.sqrt(hidden).astype(dtype),
  }


# Hooks for layers (see registry): one score network shared by all heads, on head-sized queries and keys.
LAYER_OPTIONS = ('hidden',)  # A, default the head size
EXAMPLE_OPTIONS = {'hidden': 8}


def init_layer_params(key, *, head_dim: int, dtype, hidden: int | None = None, **_):
  return init_params(key, head_dim, head_dim, hidden or head_dim, dtype)


def call_kwargs(params, **_):
  return {'params': dict(params)}


def _check_params(params, d: _checks.Dims, q, k):
  if params is None or not {'w_q', 'w_k', 'v'} <= set(params):
    raise ValueError("additive attention needs params={'w_q': [H_q, A], 'w_k': [H_k, A], 'v': [A]}; "
                     f"got {None if params is None else sorted(params)}.")
  wq, wk, vv = (jnp.asarray(params[n]) for n in ('w_q', 'w_k', 'v'))
  if wq.ndim != 2 or wk.ndim != 2 or vv.ndim != 1 or wq.shape[0] != q.shape[-1] or wk.shape[0] != k.shape[-1] \
      or not wq.shape[1] == wk.shape[1] == vv.shape[0]:
    raise ValueError(f'additive params do not fit q {q.shape} and k {k.shape}: w_q {wq.shape}, w_k {wk.shape}, '
                     f'v {vv.shape}; expected w_q [{q.shape[-1]}, A], w_k [{k.shape[-1]}, A], v [A].')
  return wq, wk, vv


def additive(q, k, v, *, params, mask=None, bias=None, is_causal=False, scale=None, return_weights=False,
             normalizer='softmax'):
  """Bahdanau attention. q [..., T, N, H_q], k [..., S, K, H_k] (head sizes may differ), v [..., S, K, V].

  params: {'w_q': [H_q, A], 'w_k': [H_k, A], 'v': [A]}, shared by all heads. scale multiplies the score
  (default 1.0). The [B, T, S, N, A] tanh tensor is materialised: memory O(T S A), as in the original.
  """
  d = _checks.check_qkv(q, k, v, same_head_size=False)
  mask, bias = _checks.check_mask_bias(mask, bias, d)
  wq, wk, vv = _check_params(params, d, q, k)
  if _checks.is_empty(d):
    return _checks.empty_result(d, v, return_weights)
  qa = jnp.einsum('BTNH,HA->BTNA', _checks.flatten_batch(q, d), wq, preferred_element_type=jnp.float32)
  ka = jnp.einsum('BSKH,HA->BSKA', _checks.flatten_batch(k, d), wk, preferred_element_type=jnp.float32)
  qa = qa.reshape(d.B, d.T, d.K, d.G, -1)
  e = jnp.tanh(qa[:, :, None] + ka[:, None, :, :, None])  # [B, T, S, K, G, A]
  s = jnp.einsum('BTSKGA,A->BKGTS', e, vv.astype(jnp.float32)).reshape(d.B, d.N, d.T, d.S)
  s = s * jnp.float32(1.0 if scale is None else scale)
  if bias is not None:
    s = s + _checks.to_bnts(bias, d).astype(jnp.float32)
  return attend(s, v, d, mask=mask, is_causal=is_causal, normalizer=normalizer, return_weights=return_weights)
