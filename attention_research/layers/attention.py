"""NNX multi-head attention over any registered variant, with grouped-query heads, RoPE and a key/value cache."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict

from attention_research import attention
from attention_research.attention import positional
from attention_research.layers.capture import NAME, capturing


class RandomFeatures(nnx.Variable):
  """Performer's random projection: state, not a trained parameter (redraw with `redraw_features`)."""


def _param(rngs, shape, fan_in, dtype):
  return nnx.Param(jax.random.normal(rngs.params(), shape, dtype) / jnp.sqrt(jnp.asarray(fan_in, dtype)))


class MultiHeadAttention(nnx.Module):
  """Self or cross attention: projections, the chosen variant, output projection.

  Args:
    num_heads: query heads N.
    in_features: width of the query input.
    kv_features: width of the key/value input for cross attention (default in_features).
    qkv_features: total projected width N * H (default in_features).
    out_features: output width (default in_features).
    num_kv_heads: K key/value heads; K < N is grouped-query, K = 1 multi-query (default N).
    variant: a name in attention.VARIANTS.
    variant_options: keyword options of the variant (window=..., normalizer=..., block_size=...).
    use_rope: rotate queries and keys by position (Su et al. 2021).
    max_length: longest key length; required by 'linformer' (its projections are [max_length, rank]).
    rank: linformer rank. hidden: additive attention's hidden size A. num_features: performer features.
    dropout_rate: dropout on the attended values (before the output projection), which every variant supports
      at its own cost, unlike dropout on a weight matrix that fast variants never form.
  """

  def __init__(self, num_heads: int, in_features: int, *, kv_features: int | None = None,
               qkv_features: int | None = None, out_features: int | None = None,
               num_kv_heads: int | None = None, variant: str = 'dot_product',
               variant_options: dict | None = None, use_rope: bool = False, rope_base: float = 10_000.0,
               max_length: int | None = None, rank: int = 64, hidden: int | None = None,
               num_features: int = 64, dropout_rate: float = 0.0, use_bias: bool = False,
               dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
    qkv_features = in_features if qkv_features is None else qkv_features
    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if num_heads < 1 or qkv_features % num_heads:
      raise ValueError(f'qkv_features={qkv_features} must be divisible by num_heads={num_heads}.')
    if num_kv_heads < 1 or num_heads % num_kv_heads:
      raise ValueError(f'num_heads={num_heads} must be a multiple of num_kv_heads={num_kv_heads}.')
    self.info = attention.get(variant)
    self.variant = variant
    # Hashable: the options are static in the graph definition, which jit caches key on.
    self.variant_options = FrozenDict(variant_options or {})
    self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
    self.head_dim = H = qkv_features // num_heads
    self.use_rope, self.rope_base = use_rope, rope_base
    self.dtype = dtype
    kv_features = in_features if kv_features is None else kv_features
    out_features = in_features if out_features is None else out_features
    lin = dict(use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.query = nnx.Linear(in_features, num_heads * H, **lin)
    self.key = nnx.Linear(kv_features, num_kv_heads * H, **lin)
    self.value = nnx.Linear(kv_features, num_kv_heads * H, **lin)
    self.out = nnx.Linear(num_heads * H, out_features, **lin)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs if dropout_rate > 0 else None)
    self.max_length = max_length
    if variant == 'additive':
      A = hidden or H
      self.w_q, self.w_k, self.v = (_param(rngs, (H, A), H, param_dtype), _param(rngs, (H, A), H, param_dtype),
                                    _param(rngs, (A,), A, param_dtype))
    elif variant == 'multiplicative':
      self.w = nnx.Param(jnp.eye(H, dtype=param_dtype))
    elif variant == 'linformer':
      if max_length is None:
        raise ValueError("variant 'linformer' needs max_length (its projections are [max_length, rank]).")
      self.e, self.f = _param(rngs, (max_length, rank), max_length, param_dtype), _param(
          rngs, (max_length, rank), max_length, param_dtype)
    elif variant == 'performer':
      from attention_research.attention.performer import draw_features  # pylint: disable=g-import-not-at-top
      self.features = RandomFeatures(draw_features(rngs.params(), num_features, H))
    self.cached_key = self.cached_value = self.cache_index = nnx.data(None)

  def redraw_features(self, key):
    """Performer: draw a fresh random projection (call every few hundred steps, as in the paper)."""
    from attention_research.attention.performer import draw_features  # pylint: disable=g-import-not-at-top
    self.features[...] = draw_features(key, self.features.shape[0], self.head_dim)

  def _variant_kwargs(self, S: int):
    kw = dict(self.variant_options)
    if self.variant == 'additive':
      kw['params'] = {'w_q': self.w_q[...], 'w_k': self.w_k[...], 'v': self.v[...]}
    elif self.variant == 'multiplicative':
      kw['params'] = {'w': self.w[...]}
      kw.setdefault('scale', 1.0 / jnp.sqrt(self.head_dim))
    elif self.variant == 'linformer':
      if S > self.max_length:
        raise ValueError(f'linformer key length {S} exceeds max_length={self.max_length}.')
      kw['params'] = {'e': self.e[...][:S], 'f': self.f[...][:S]}
    elif self.variant == 'performer':
      kw['features'] = self.features[...]
    return kw

  def init_cache(self, batch_size: int, max_length: int, dtype=jnp.float32):
    """Allocates the key/value cache for incremental decoding of up to max_length positions."""
    shape = (batch_size, max_length, self.num_kv_heads, self.head_dim)
    self.cached_key = nnx.Cache(jnp.zeros(shape, dtype))
    self.cached_value = nnx.Cache(jnp.zeros(shape, dtype))
    self.cache_index = nnx.Cache(jnp.array(0, jnp.int32))

  def _split_heads(self, x, heads):
    return x.reshape(x.shape[:-1] + (heads, self.head_dim))

  def __call__(self, inputs_q, inputs_kv=None, *, mask=None, bias=None, is_causal: bool = False,
               positions=None, kv_positions=None, decode: bool = False, deterministic: bool | None = None):
    """inputs_q [B, T, D]; inputs_kv [B, S, D_kv] (default inputs_q). mask broadcastable to [B, N, T, S].

    decode=True appends this step's keys/values to the cache (see init_cache) and attends over everything
    cached so far; positions then default to the cache index. Returns [B, T, D_out]. Inside an
    nnx.capture of nnx.Intermediate the weights [B, N, T, S] are sown as 'attention_weights' (layers.capture).
    """
    self_attention = inputs_kv is None
    inputs_kv = inputs_q if self_attention else inputs_kv
    q = self._split_heads(self.query(inputs_q), self.num_heads)
    k = self._split_heads(self.key(inputs_kv), self.num_kv_heads)
    v = self._split_heads(self.value(inputs_kv), self.num_kv_heads)
    if decode:
      if self.cache_index is None:
        raise ValueError('decode=True needs init_cache(batch_size, max_length) first.')
      index = self.cache_index[...]
      T, L = q.shape[-3], self.cached_key.shape[1]
      if positions is None:
        positions = index + jnp.arange(T)
      kv_positions = positions
    if self.use_rope:
      q = positional.rope(q, positions, base=self.rope_base)
      k = positional.rope(k, kv_positions if kv_positions is not None else positions, base=self.rope_base)
    if decode:
      start = (0, index, 0, 0)
      self.cached_key[...] = jax.lax.dynamic_update_slice(self.cached_key[...], k.astype(self.cached_key.dtype),
                                                          start)
      self.cached_value[...] = jax.lax.dynamic_update_slice(self.cached_value[...],
                                                            v.astype(self.cached_value.dtype), start)
      self.cache_index[...] = index + T
      k, v = self.cached_key[...], self.cached_value[...]
      # Query t sits at absolute position index + t and sees every cached key up to it.
      seen = jnp.arange(L)[None, :] <= (index + jnp.arange(T))[:, None]
      mask = seen if mask is None else jnp.logical_and(mask, seen)
      is_causal = False
    kw = self._variant_kwargs(k.shape[-3])
    if decode and self.variant == 'local':
      # The kernel places the window by the cache's length, not by the step's absolute position, so the
      # window becomes part of the mask and the kernel's own window is opened to the whole cache.
      from attention_research.attention.local import check_window  # pylint: disable=g-import-not-at-top
      left, _ = check_window(kw['window'], L, L)
      mask = jnp.logical_and(mask, jnp.arange(L)[None, :] >= (index + jnp.arange(T))[:, None] - left)
      kw['window'] = (L, L)
    if bias is not None:
      kw['bias'] = bias
    if capturing(self):
      out, weights = self.info.fn(q, k, v, mask=mask, is_causal=is_causal, return_weights=True, **kw)
      self.sow(nnx.Intermediate, NAME, weights)
    else:
      out = self.info.fn(q, k, v, mask=mask, is_causal=is_causal, **kw)
    out = self.dropout(out, deterministic=deterministic)
    return self.out(out.reshape(out.shape[:-2] + (-1,)))
