"""The registry: every variant's function and facts, and the hooks its own file provides to layers and tables.

A variant is one file (its function and hooks) plus one line in VARIANTS below. Callers never branch on a name:

    variant = registry.get('linear')
    out = variant(q, k, v, is_causal=True)           # calls variant.fn

Hooks (all optional; `None` or the defaults below mean "nothing to do"):

  init_params(key, *, num_heads, num_kv_heads, head_dim, in_features, max_length, dtype, **layer_options)
      -> dict[str, array]: the variant's own parameters, built by a layer. layer_options are the options named
      in `layer_options` (never passed to fn). Entries named in `non_trainable` are state, not trained
      parameters (the NNX layer stores them as a non-Param nnx.Variable and redraws them from a fresh key).
  call_kwargs(params, *, q, k, v, inputs_q, inputs_kv, options) -> dict: extra keyword arguments of fn,
      computed at every call from the parameters (dict name -> array, as init_params returned them), the
      projected q [B, T, N, H], k, v [B, S, K, H|V], the layer's inputs inputs_q [B, T, D] and inputs_kv
      [B, S, D_kv], and fn's options (the variant options without the layer options).
  decode_step(fn, q, k, v, *, index, mask, **kwargs) -> fn's result: one cached decoding step. q [B, T, N, H]
      are the new queries at absolute positions index + t; k, v [B, L, K, H|V] the whole key/value cache;
      mask already hides the keys each query must not see (unwritten or future ones); kwargs are fn's keyword
      arguments (options, call_kwargs, bias, return_weights). Default `attend_cache`.
  decode_heads_major(fn, q, k, v, *, index, mask, **kwargs) -> fn's result: decode_step over a cache that the
      layer stores head-major, k, v [B, K, L, H|V] (products batch over the heads in place: no copy of the cache
      and no K-fold decoding form, _heads_major). Given, a layer keeps its cache in that layout; default None.
  state_size(*, num_kv_heads, head_dim, value_dim, length, **options) -> int: floats per sequence per layer
      that decoding keeps (key/value cache or recurrent state); options are all the variant's options
      (layer and function ones). Default `kv_cache_size`.
  init_decode_state(batch_size, *, num_kv_heads, head_dim, value_dim) -> array, and
  decode_recurrent(fn, state, q, k, v, *, index, mask, **kwargs) -> (fn's result, new state): a recurrent variant's
      O(1) decoding. A layer then carries this state (e.g. [B, K, H, V]) instead of a key/value cache and hands
      decode_recurrent only the T new positions q, k, v [B, T, ...]; mask is their key padding (or None), kwargs as
      in decode_step. Both or neither.

Facts beside the hooks: `bidirectional=False` marks a variant that only runs causally (a recurrence reads the
sequence in one direction), which layers then run causally whatever they are asked; `kv_head_args` names fn's
keyword arguments that hold one entry per kv head, with the axis of that head index, so a caller that repeats kv
heads (grouped-query to multi-head) repeats them too.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable, Mapping

from attention_research.attention import _heads_major, _recurrent, additive, block_sparse, delta, gated_delta, gla
from attention_research.attention import linear, linformer, local, multiplicative, performer, retention, ssd
from attention_research.attention.dot_product import dot_product
from attention_research.attention.flash import flash

MASK_KINDS = ('full', 'key_padding')

# The variant layers and configs use when none is named.
DEFAULT_VARIANT = 'dot_product'


def attend_cache(fn, q, k, v, *, index, mask, **kwargs):
  """Default decoding step: attend over the whole cache; `mask` already hides future and unwritten keys."""
  del index
  return fn(q, k, v, mask=mask, is_causal=False, **kwargs)


def kv_cache_size(*, num_kv_heads: int, head_dim: int, value_dim: int, length: int, **options) -> int:
  """Exact attention keeps every key and value: K (H + V) floats per position."""
  del options
  return num_kv_heads * (head_dim + value_dim) * length


@dataclasses.dataclass(frozen=True, kw_only=True)
class Variant:
  """What a layer, runner or test needs to know about a variant; calling it calls `fn`."""
  name: str
  fn: Callable
  exact: bool  # equals softmax attention under the variant's own mask/sparsity pattern
  causal: bool  # supports is_causal=True
  masks: str  # 'full': any [..., N, T, S] mask; 'key_padding': masks over keys only ([..., 1, 1, S])
  family: str
  time: str
  memory: str
  cross: bool = True  # defined between two different sequences (cross-attention), not only within one
  bidirectional: bool = True  # supports is_causal=False
  layer_options: tuple[str, ...] = ()
  init_params: Callable | None = None
  non_trainable: tuple[str, ...] = ()
  call_kwargs: Callable | None = None
  decode_step: Callable = attend_cache
  decode_heads_major: Callable | None = None
  state_size: Callable = kv_cache_size
  init_decode_state: Callable | None = None
  decode_recurrent: Callable | None = None
  kv_head_args: Mapping[str, int] = dataclasses.field(default_factory=dict, compare=False)
  # Options for registry-wide tests on short sequences (layer options included); not part of equality/hash.
  example_options: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)

  def __post_init__(self):
    if self.masks not in MASK_KINDS:
      raise ValueError(f'variant {self.name!r}: masks must be one of {MASK_KINDS}; got {self.masks!r}.')
    if (self.layer_options or self.non_trainable) and self.init_params is None:
      raise ValueError(f'variant {self.name!r} declares layer_options {self.layer_options} or non_trainable '
                       f'{self.non_trainable} but no init_params to consume them.')
    if (self.init_decode_state is None) != (self.decode_recurrent is None):
      raise ValueError(f'variant {self.name!r} must give both init_decode_state and decode_recurrent, or neither.')
    if not (self.causal or self.bidirectional):
      raise ValueError(f'variant {self.name!r} supports neither causal nor bidirectional attention.')
    for field in ('example_options', 'kv_head_args'):
      object.__setattr__(self, field, types.MappingProxyType(dict(getattr(self, field))))

  def __call__(self, q, k, v, **kwargs):
    return self.fn(q, k, v, **kwargs)

  def split_options(self, options: Mapping[str, Any]) -> tuple[dict, dict]:
    """(layer options, function options) of a mapping holding both."""
    options = dict(options or {})
    layer = {n: options.pop(n) for n in self.layer_options if n in options}
    return layer, options


def _recurrent_variant(name, module, **facts) -> Variant:
  """The facts and hooks every recurrent family shares (see _recurrent); C is the chunk length."""
  return Variant(name=name, fn=getattr(module, name), exact=False, causal=True, bidirectional=False,
                 masks='key_padding', family='recurrent', memory='O(H V)', cross=False,
                 layer_options=getattr(module, 'LAYER_OPTIONS', ()), init_params=getattr(module, 'init_layer_params',
                                                                                       None),
                 call_kwargs=module.call_kwargs, state_size=module.state_size,
                 init_decode_state=_recurrent.init_decode_state, decode_recurrent=_recurrent.decode_recurrent,
                 example_options=module.EXAMPLE_OPTIONS, **facts)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant(name='dot_product', fn=dot_product, exact=True, causal=True, masks='full', family='softmax',
            time='O(T S H)', memory='O(T S)', decode_heads_major=_heads_major.decode_step),
    Variant(name='flash', fn=flash, exact=True, causal=True, masks='full', family='softmax', time='O(T S H)',
            memory='O(T + S)', decode_heads_major=_heads_major.decode_step),
    Variant(name='additive', fn=additive.additive, exact=True, causal=True, masks='full', family='additive',
            time='O(T S A)', memory='O(T S A)', layer_options=additive.LAYER_OPTIONS,
            init_params=additive.init_layer_params, call_kwargs=additive.call_kwargs,
            example_options=additive.EXAMPLE_OPTIONS),
    Variant(name='multiplicative', fn=multiplicative.multiplicative, exact=True, causal=True, masks='full',
            family='softmax', time='O(T S H)', memory='O(T S)', init_params=multiplicative.init_layer_params,
            call_kwargs=multiplicative.call_kwargs),
    Variant(name='local', fn=local.local, exact=True, causal=True, masks='full', family='sparse', time='O(T W H)',
            memory='O(T W)', cross=False, decode_step=local.decode_step, state_size=local.state_size,
            example_options=local.EXAMPLE_OPTIONS, decode_heads_major=local.decode_heads_major),
    Variant(name='block_sparse', fn=block_sparse.block_sparse, exact=True, causal=True, masks='full',
            family='sparse', time='O(T (w+g+r) b H)', memory='O(T (w+g+r) b)',
            example_options=block_sparse.EXAMPLE_OPTIONS),
    Variant(name='linear', fn=linear.linear, exact=False, causal=True, masks='key_padding', family='kernel',
            time='O((T + S) H V)', memory='O(H V)', state_size=linear.state_size),
    Variant(name='performer', fn=performer.performer, exact=False, causal=True, masks='key_padding',
            family='kernel', time='O((T + S) M H)', memory='O(M V)', layer_options=performer.LAYER_OPTIONS,
            init_params=performer.init_layer_params, non_trainable=performer.NON_TRAINABLE,
            call_kwargs=performer.call_kwargs, state_size=performer.state_size,
            example_options=performer.EXAMPLE_OPTIONS),
    Variant(name='linformer', fn=linformer.linformer, exact=False, causal=False, masks='key_padding',
            family='low_rank', time='O(T r H)', memory='O(T r)', layer_options=linformer.LAYER_OPTIONS,
            init_params=linformer.init_layer_params, call_kwargs=linformer.call_kwargs,
            state_size=linformer.state_size, example_options=linformer.EXAMPLE_OPTIONS),
    _recurrent_variant('retention', retention, time='O(T H V)', kv_head_args={'log_decay': -1}),
    _recurrent_variant('gla', gla, time='O(T H V)', kv_head_args={'log_gate': -2}),
    _recurrent_variant('ssd', ssd, time='O(T H V)', kv_head_args={'log_gate': -1}),
    _recurrent_variant('delta', delta, time='O(T C H + T H V)', kv_head_args={'beta': -1}),
    _recurrent_variant('gated_delta', gated_delta, time='O(T C H + T H V)', kv_head_args={'beta': -1, 'log_gate': -1}),
)}


def get(name: str) -> Variant:
  if name not in VARIANTS:
    raise ValueError(f'unknown attention variant {name!r}; known variants: {sorted(VARIANTS)}.')
  return VARIANTS[name]


def check_cross(name: str) -> Variant:
  """The variant, or a ValueError when it relates positions of one sequence and so has no cross-attention."""
  variant = get(name)
  if not variant.cross:
    raise ValueError(f'attention variant {name!r} relates query and key positions of one sequence (a window or a '
                     f'recurrence), so it cannot be a cross-attention; use one of '
                     f'{sorted(n for n, v in VARIANTS.items() if v.cross)}.')
  return variant
