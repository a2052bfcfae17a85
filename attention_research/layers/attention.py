"""NNX multi-head attention over any registered variant, with grouped-query heads, RoPE and a key/value cache."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research import attention
from attention_research.attention import positional
from attention_research.layers import context_parallel
from attention_research.layers.capture import NAME, capturing
from attention_research.layers.options import freeze_options
from attention_research.layers.short_conv import ShortConvolution, check_kernel_size


class RandomFeatures(nnx.Variable):
  """A variant's non-trained entry (e.g. a random projection): state, not a trained parameter.

  Redrawn with `MultiHeadAttention.redraw_features`; the registry's `non_trainable` names these entries.
  """


def _param(rngs, shape, fan_in, dtype):
  return nnx.Param(jax.random.normal(rngs.params(), shape, dtype) / jnp.sqrt(jnp.asarray(fan_in, dtype)))


class MultiHeadAttention(nnx.Module):
  """Self or cross attention: projections, the chosen variant, output projection.

  The variant's own parameters, extra call arguments and cached decoding step come from its registry hooks
  (attention.registry), so this layer works the same way for every registered variant. A variant that only runs
  causally (registry fact bidirectional=False, e.g. a recurrence) runs causally even when is_causal is False, and
  decodes with its O(1) recurrent state instead of a key/value cache. Under a mesh with a 'sequence' axis
  (jax.set_mesh; training's config.train.sequence), attention over the split sequence runs as attention.ring
  (layers.context_parallel).

  Args:
    num_heads: query heads N.
    in_features: width of the query input.
    kv_features: width of the key/value input for cross attention (default in_features).
    qkv_features: total projected width N * H (default in_features).
    out_features: output width (default in_features).
    num_kv_heads: K key/value heads; K < N is grouped-query, K = 1 multi-query (default N).
    variant: a name in attention.VARIANTS.
    variant_options: keyword options of the variant (window=..., normalizer=..., block_size=...). Options the
      variant lists in its `layer_options` (e.g. rank, hidden, num_features) build its parameters instead of
      going to its function; they may also be given as keyword arguments of this constructor.
    use_rope: rotate queries and keys by position (Su et al. 2021).
    max_length: longest key length; variants whose parameters span the length require it.
    dropout_rate: dropout on the attended values (before the output projection), which every variant supports
      at its own cost, unlike dropout on a weight matrix that fast variants never form.
    output_gate: None, 'headwise' or 'elementwise': the attention output is multiplied by sigmoid(x W_g) before
      the output projection, x the query input, W_g [D, N] (one gate per head) or [D, N * H] (Qiu et al. 2025,
      "Gated Attention for Large Language Models").
    qk_norm: RMS-normalise queries and keys per head with a learned scale [H], before RoPE.
    sinks: a learned sink logit per head, [N], passed as `sinks=` to the variant (which must take it).
    short_conv: kernel size of a depthwise causal convolution + SiLU on the query, key and value projections
      (layers.short_conv, as in Gated DeltaNet), 0 = none; self-attention only. Decoding keeps the last
      short_conv - 1 projected inputs (init_cache) so that it equals the full pass. Padded positions are
      convolved like any other.
    **layer_options: the variant's layer options (see variant_options); others raise ValueError.
  """

  def __init__(self, num_heads: int, in_features: int, *, kv_features: int | None = None,
               qkv_features: int | None = None, out_features: int | None = None,
               num_kv_heads: int | None = None, variant: str = attention.DEFAULT_VARIANT,
               variant_options: dict | None = None, use_rope: bool = False, rope_base: float = 10_000.0,
               max_length: int | None = None, dropout_rate: float = 0.0, use_bias: bool = False,
               output_gate: str | None = None, qk_norm: bool = False, sinks: bool = False, short_conv: int = 0,
               dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs, **layer_options):
    qkv_features = in_features if qkv_features is None else qkv_features
    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if num_heads < 1 or qkv_features % num_heads:
      raise ValueError(f'qkv_features={qkv_features} must be divisible by num_heads={num_heads}.')
    if num_kv_heads < 1 or num_heads % num_kv_heads:
      raise ValueError(f'num_heads={num_heads} must be a multiple of num_kv_heads={num_kv_heads}.')
    self.info = attention.get(variant)
    self.variant = variant
    unknown = sorted(set(layer_options) - set(self.info.layer_options))
    if unknown:
      raise ValueError(f'MultiHeadAttention got unexpected keyword arguments {unknown}: variant {variant!r} takes '
                       f'the layer options {self.info.layer_options}; pass its function options in '
                       f'variant_options.')
    moved, fn_options = self.info.split_options(variant_options)
    # Hashable: the options are static in the graph definition, which jit caches key on.
    self.variant_options = freeze_options(fn_options, 'variant_options')
    self.layer_options = freeze_options({**moved, **layer_options}, 'layer_options')
    self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
    self.head_dim = H = qkv_features // num_heads
    self.in_features = in_features
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
    self.variant_param_names = ()
    if self.info.init_params is not None:
      values = self._init_variant_params(rngs.params(), param_dtype)
      for name, value in values.items():
        if hasattr(self, name):
          raise ValueError(f'variant {variant!r} names a parameter {name!r}, which MultiHeadAttention already uses '
                           f'for something else; rename it in the variant\'s init_params.')
        kind = RandomFeatures if name in self.info.non_trainable else nnx.Param
        setattr(self, name, kind(value))
      self.variant_param_names = tuple(values)
    self.cached_key = self.cached_value = self.cache_index = self.decode_state = self.conv_cache = nnx.data(None)
    self._init_refinements(output_gate, qk_norm, sinks, short_conv, lin, rngs)

  def _init_refinements(self, output_gate, qk_norm, sinks, short_conv, lin, rngs):
    """Output gate, query/key norm, sink logits and short convolution, made after every other parameter so that
    they leave the initial values of the others unchanged."""
    gate_widths = {None: None, 'headwise': self.num_heads, 'elementwise': self.num_heads * self.head_dim}
    if output_gate not in gate_widths:
      raise ValueError(f'output_gate must be one of {list(gate_widths)}; got {output_gate!r}.')
    self.gate = None if output_gate is None else nnx.Linear(self.in_features, gate_widths[output_gate], **lin)
    norm = dict(epsilon=1e-6, dtype=self.dtype, param_dtype=lin['param_dtype'], rngs=rngs)
    self.query_norm = nnx.RMSNorm(self.head_dim, **norm) if qk_norm else None
    self.key_norm = nnx.RMSNorm(self.head_dim, **norm) if qk_norm else None
    if sinks and 'sinks' not in inspect.signature(self.info.fn).parameters:
      raise ValueError(f'sinks=True: attention variant {self.variant!r} takes no sinks argument.')
    self.sink_logits = nnx.Param(jnp.zeros((self.num_heads,), lin['param_dtype'])) if sinks else None
    width = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim  # one depthwise kernel over q, k and v
    self.short_conv = (ShortConvolution(width, short_conv, param_dtype=lin['param_dtype'], rngs=rngs)
                       if check_kernel_size(short_conv) else None)

  def _init_variant_params(self, key, dtype):
    return self.info.init_params(key, num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
                                 head_dim=self.head_dim, in_features=self.in_features, max_length=self.max_length,
                                 dtype=dtype, **self.layer_options)

  def redraw_features(self, key):
    """Draws the variant's non-trained entries afresh (call every few hundred steps, as the Performer paper does)."""
    names = [n for n in self.variant_param_names if n in self.info.non_trainable]
    if not names:
      raise ValueError(f'variant {self.variant!r} has no non-trained entries to redraw.')
    fresh = self._init_variant_params(key, getattr(self, names[0]).dtype)
    for name in names:
      getattr(self, name)[...] = fresh[name]

  def _variant_kwargs(self, q, k, v, inputs_q, inputs_kv):
    kw = dict(self.variant_options)
    if self.info.call_kwargs is not None:
      params = {n: getattr(self, n)[...] for n in self.variant_param_names}
      kw.update(self.info.call_kwargs(params, q=q, k=k, v=v, inputs_q=inputs_q, inputs_kv=inputs_kv,
                                      options=self.variant_options))
    return kw

  def init_cache(self, batch_size: int, max_length: int, dtype=jnp.float32):
    """Allocates the key/value cache for incremental decoding of up to max_length positions, or for a recurrent
    variant its state (whatever max_length)."""
    self.cache_index = nnx.Cache(jnp.array(0, jnp.int32))
    if self.short_conv is not None:
      self.conv_cache = nnx.Cache(self.short_conv.init_cache((batch_size,)))
    if self.info.init_decode_state is not None:
      self.decode_state = nnx.Cache(self.info.init_decode_state(
          batch_size, num_kv_heads=self.num_kv_heads, head_dim=self.head_dim, value_dim=self.head_dim))
      return
    # Head-major [B, K, L, H] where the variant attends over such a cache in place (registry decode_heads_major):
    # a decoding step then reads the cache as it lies, as PyTorch's does (docs/kernels.md).
    shape = ((batch_size, self.num_kv_heads, max_length, self.head_dim) if self._heads_major_cache else
             (batch_size, max_length, self.num_kv_heads, self.head_dim))
    self.cached_key = nnx.Cache(jnp.zeros(shape, dtype))
    self.cached_value = nnx.Cache(jnp.zeros(shape, dtype))

  @property
  def _heads_major_cache(self) -> bool:
    return self.info.decode_heads_major is not None

  @property
  def cache_length(self) -> int:
    """Positions the key/value cache holds (init_cache's max_length); 0 without one."""
    if self.cached_key is None:
      return 0
    return self.cached_key.shape[2 if self._heads_major_cache else 1]

  def _split_heads(self, x, heads):
    return x.reshape(x.shape[:-1] + (heads, self.head_dim))

  def _convolve(self, q, k, v, decode):
    """The short convolution of the projections [B, T, N * H], [B, T, K * H] (twice), carrying its cache when
    decoding."""
    if decode and self.conv_cache is None:
      raise ValueError('decode=True needs init_cache(batch_size, max_length) first.')
    y, cache = self.short_conv(jnp.concatenate([q, k, v], axis=-1), self.conv_cache[...] if decode else None)
    if decode:
      self.conv_cache[...] = cache.astype(self.conv_cache.dtype)
    return jnp.split(y, [q.shape[-1], q.shape[-1] + k.shape[-1]], axis=-1)

  def __call__(self, inputs_q, inputs_kv=None, *, mask=None, bias=None, is_causal: bool = False,
               positions=None, kv_positions=None, decode: bool = False, deterministic: bool | None = None):
    """inputs_q [B, T, D]; inputs_kv [B, S, D_kv] (default inputs_q). mask broadcastable to [B, N, T, S].

    decode=True appends this step's keys/values to the cache (see init_cache) and attends over everything
    cached so far, or for a recurrent variant advances its state by these positions; positions then default to
    the cache index. Returns [B, T, D_out]. Inside an
    nnx.capture of nnx.Intermediate the weights [B, N, T, S] are sown as 'attention_weights' (layers.capture).
    """
    self_attention = inputs_kv is None
    inputs_kv = inputs_q if self_attention else inputs_kv
    q, k, v = self.query(inputs_q), self.key(inputs_kv), self.value(inputs_kv)
    if self.short_conv is not None:
      if not self_attention:
        raise ValueError(f'short_conv={self.short_conv.kernel_size} convolves over the positions of one sequence: '
                         f'self-attention only; got inputs_kv of shape {inputs_kv.shape}.')
      q, k, v = self._convolve(q, k, v, decode)
    q, k, v = (self._split_heads(x, h) for x, h in ((q, self.num_heads), (k, self.num_kv_heads),
                                                    (v, self.num_kv_heads)))
    if self.query_norm is not None:
      q, k = self.query_norm(q), self.key_norm(k)
    if decode:
      if self.cache_index is None:
        raise ValueError('decode=True needs init_cache(batch_size, max_length) first.')
      index = self.cache_index[...]
      T = q.shape[-3]
      if positions is None:
        positions = index + jnp.arange(T)
      kv_positions = positions
    if self.use_rope:
      q = positional.rope(q, positions, base=self.rope_base)
      k = positional.rope(k, kv_positions if kv_positions is not None else positions, base=self.rope_base)
    recurrent = decode and self.info.decode_recurrent is not None
    if decode and not recurrent:
      L = self.cache_length
      if self._heads_major_cache:
        start, k, v = (0, 0, index, 0), jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)
      else:
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
    kw = self._variant_kwargs(q, k, v, inputs_q, inputs_kv)
    if bias is not None:
      kw['bias'] = bias
    if self.sink_logits is not None:
      kw['sinks'] = self.sink_logits[...]
    # Inside an nnx.capture of nnx.Perturbation the weights are formed too, and a perturbation P of their shape
    # is added as out += P v (not while decoding). Every variant's output is W v with its (implied) weights W,
    # so d out / d P = d out / d W, and a non-zero P replaces W by W + P (analysis.probes).
    perturbing = not decode and capturing(self, nnx.Perturbation)
    want = capturing(self) or perturbing
    if recurrent:
      self.cache_index[...] = index + T
      result, self.decode_state[...] = self.info.decode_recurrent(self.info.fn, self.decode_state[...], q, k, v,
                                                                  index=index, mask=mask, return_weights=want, **kw)
    elif decode:
      step = self.info.decode_heads_major if self._heads_major_cache else self.info.decode_step
      result = step(self.info.fn, q, k, v, index=index, mask=mask, return_weights=want, **kw)
    else:
      is_causal = is_causal or not self.info.bidirectional
      if not want and context_parallel.sequence_devices() > 1:  # weights need the whole matrix: not split then
        result = context_parallel.attend(self.info, q, k, v, mask=mask, is_causal=is_causal, **kw)
      else:
        result = self.info.fn(q, k, v, mask=mask, is_causal=is_causal, return_weights=want, **kw)
    out, weights = result if want else (result, None)
    if capturing(self):
      self.sow(nnx.Intermediate, NAME, weights)
    if perturbing:
      p_bnts = self.perturb(NAME, jnp.zeros(weights.shape, jnp.float32))
      G = self.num_heads // self.num_kv_heads
      out = out + jnp.einsum('...NTS,...SNH->...TNH', p_bnts, jnp.repeat(v, G, axis=-2).astype(jnp.float32)
                             ).astype(out.dtype)
    if self.gate is not None:  # [B, T, N] or [B, T, N * H], broadcast over the head's features or matched to them
      out = out * jax.nn.sigmoid(self.gate(inputs_q)).reshape(out.shape[:-1] + (-1,)).astype(out.dtype)
    out = self.dropout(out, deterministic=deterministic)
    return self.out(out.reshape(out.shape[:-2] + (-1,)))
