"""Multiplicative attention (Luong et al. 2015): 'general' score(q, k) = q W k, or 'dot' q . k without W."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from attention_research.attention import _checks
from attention_research.attention._dense import attend, scores_bnts


def init_params(key, q_size: int, k_size: int, dtype=jnp.float32):
  return {'w': jax.random.normal(key, (q_size, k_size), dtype) / jnp.sqrt(q_size).astype(dtype)}


def init_layer_params(key, *, head_dim: int, dtype, **_):
  """Layer hook (see registry): W starts as the identity, so a new layer begins as scaled dot-product attention."""
  del key
  return {'w': jnp.eye(head_dim, dtype=dtype)}


def call_kwargs(params, *, q, options, **_):
  """Layer hook: inside a layer the default scale is 1/sqrt(H), as for dot_product, not the paper's 1.0."""
  return {'params': dict(params), 'scale': options.get('scale', 1.0 / math.sqrt(q.shape[-1]))}


def multiplicative(q, k, v, *, params=None, mask=None, bias=None, is_causal=False, scale=None,
                   return_weights=False, normalizer='softmax'):
  """Luong attention. With params={'w': [H_q, H_k]} the 'general' score q W k^T, without params the 'dot' score.

  Unlike `dot_product`, the default scale is 1.0, as in the paper.
  """
  d = _checks.check_qkv(q, k, v, same_head_size=params is None)
  mask, bias = _checks.check_mask_bias(mask, bias, d)
  if params is not None:
    w = jnp.asarray(params.get('w')) if 'w' in params else None
    if w is None or w.shape != (q.shape[-1], k.shape[-1]):
      raise ValueError(f"multiplicative params must be {{'w': [{q.shape[-1]}, {k.shape[-1]}]}} for q {q.shape}, "
                       f"k {k.shape}; got {({n: jnp.shape(p) for n, p in params.items()})}.")
    q = jnp.einsum('...TNH,HJ->...TNJ', q, w.astype(q.dtype))
    d = _checks.check_qkv(q, k, v)
  s = scores_bnts(q, k, d, 1.0 if scale is None else scale, bias)
  return attend(s, v, d, mask=mask, is_causal=is_causal, normalizer=normalizer, return_weights=return_weights)
