"""A decoder state attending over encoder outputs: Bahdanau (additive) and Luong (dot, general, concat).

Calling a module returns the context [B, Dv] (and sows the weights [B, S] inside an nnx.capture, see
layers.capture); `context_and_weights` returns both, for a decoder whose output depends on the weights or that
runs the attention inside a scan (where sowing would leak tracers out of the scan body).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from attention_research import attention
from attention_research.layers.attention import _param
from attention_research.layers.capture import NAME, sow_if_capturing

LUONG_SCORES = ('dot', 'general', 'concat')


def _as_heads(query, keys, values, mask):
  """[B, Dq], [B, S, Dk], [B, S, Dv], [B, S] -> the single-head layout of the attention functions."""
  if query.ndim != 2 or keys.ndim != 3 or values.ndim != 3 or keys.shape[:2] != values.shape[:2] \
      or query.shape[0] != keys.shape[0]:
    raise ValueError(f'expected query [B, Dq], keys [B, S, Dk], values [B, S, Dv]; got query {query.shape}, '
                     f'keys {keys.shape}, values {values.shape}.')
  if mask is not None:
    mask = jnp.asarray(mask)
    if mask.shape != keys.shape[:2]:
      raise ValueError(f'mask must be [B, S] = {keys.shape[:2]}; got {mask.shape}.')
    mask = mask[:, None, None, :]
  return query[:, None, None, :], keys[:, :, None, :], values[:, :, None, :], mask


def _squeeze(result):
  out, w = result
  return out[:, 0, 0, :], w[:, 0, 0, :]


class _ContextAttention(nnx.Module):
  def context_and_weights(self, query, keys, values=None, *, mask=None):
    raise NotImplementedError

  def __call__(self, query, keys, values=None, *, mask=None):
    context, weights = self.context_and_weights(query, keys, values, mask=mask)
    sow_if_capturing(self, NAME, weights)
    return context


class AdditiveAttention(_ContextAttention):
  """Bahdanau et al. 2015: e_s = v . tanh(W_q h + W_k m_s). context_and_weights: (context [B, Dv], weights
  [B, S])."""

  def __init__(self, query_features: int, key_features: int, hidden_features: int, *, rngs: nnx.Rngs):
    self.w_q = _param(rngs, (query_features, hidden_features), query_features, jnp.float32)
    self.w_k = _param(rngs, (key_features, hidden_features), key_features, jnp.float32)
    self.v = _param(rngs, (hidden_features,), hidden_features, jnp.float32)

  def context_and_weights(self, query, keys, values=None, *, mask=None):
    q, k, v, m = _as_heads(query, keys, keys if values is None else values, mask)
    params = {'w_q': self.w_q[...], 'w_k': self.w_k[...], 'v': self.v[...]}
    return _squeeze(attention.additive(q, k, v, params=params, mask=m, return_weights=True))


class LuongAttention(_ContextAttention):
  """Luong et al. 2015 scores: 'dot' h.m, 'general' h W m, 'concat' v . tanh(W [h; m]).

  context_and_weights: (context [B, Dv], weights [B, S]).
  """

  def __init__(self, query_features: int, key_features: int, *, score: str = 'general',
               hidden_features: int | None = None, rngs: nnx.Rngs):
    if score not in LUONG_SCORES:
      raise ValueError(f'unknown Luong score {score!r}; known: {LUONG_SCORES}.')
    if score == 'dot' and query_features != key_features:
      raise ValueError(f"Luong 'dot' needs equal sizes; got query {query_features}, keys {key_features}.")
    self.score = score
    if score == 'general':
      self.w = _param(rngs, (query_features, key_features), query_features, jnp.float32)
    elif score == 'concat':
      A = hidden_features or key_features
      # W [h; m] splits into W_q h + W_k m, so 'concat' is the additive score with Luong's naming.
      self.w_q = _param(rngs, (query_features, A), query_features + key_features, jnp.float32)
      self.w_k = _param(rngs, (key_features, A), query_features + key_features, jnp.float32)
      self.v = _param(rngs, (A,), A, jnp.float32)

  def context_and_weights(self, query, keys, values=None, *, mask=None):
    q, k, v, m = _as_heads(query, keys, keys if values is None else values, mask)
    if self.score == 'concat':
      params = {'w_q': self.w_q[...], 'w_k': self.w_k[...], 'v': self.v[...]}
      return _squeeze(attention.additive(q, k, v, params=params, mask=m, return_weights=True))
    params = {'w': self.w[...]} if self.score == 'general' else None
    return _squeeze(attention.multiplicative(q, k, v, params=params, mask=m, return_weights=True))
