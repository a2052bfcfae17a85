"""TransformerConfig: the configuration of every Transformer model here (and of the encoder stacks that ViT and
ASR reuse), with per-layer (hybrid) variant lists and the checks that run once, at the edge."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from flax.core import FrozenDict

from attention_research import attention, layers
from attention_research.models._checks import check_positive, freeze_options

# Options that configure the MultiHeadAttention layer whatever the variant; each variant adds its own
# (attention.get(name).layer_options). SELF_ONLY ones convolve over one sequence and stay off cross-attention.
LAYER_OPTIONS = ('rope_base', 'output_gate', 'qk_norm', 'sinks', 'short_conv')
SELF_ONLY_OPTIONS = ('short_conv',)
POOLINGS = ('mean', 'cls')
HEADS = ('pool', 'tagging')
BIAS_SCHEMES = ('alibi', 'relative')


# Joins per-layer variant names in one string ('gated_delta+gated_delta+dot_product'): it survives flags and
# comma-separated lists (experiments.compare --variants) and names the hybrid in result tables and workdirs.
HYBRID_SEPARATOR = '+'


def freeze_layer_options(options) -> FrozenDict | tuple[FrozenDict, ...]:
  """freeze_options, or a tuple of them for a list or tuple of mappings (per-layer options of a hybrid)."""
  if isinstance(options, (list, tuple)) and all(isinstance(o, Mapping) for o in options) and options:
    return tuple(freeze_options(o) for o in options)
  return freeze_options(options)


def parse_variants(spec) -> str | tuple[str, ...]:
  """A variant name stays a name; 'a+b+c' or a list/tuple of names becomes the tuple of per-layer names."""
  if isinstance(spec, str):
    return tuple(spec.split(HYBRID_SEPARATOR)) if HYBRID_SEPARATOR in spec else spec
  if isinstance(spec, (list, tuple)) and spec and all(isinstance(n, str) for n in spec):
    return tuple(spec)
  raise ValueError(f'attention must be a variant name, names joined by {HYBRID_SEPARATOR!r} or a non-empty list '
                   f'of names (one per layer); got {spec!r}.')


def takes_bias(variant: str) -> bool:
  """Variants restricted to key-padding masks have no score matrix to add a bias to."""
  return attention.get(variant).masks == 'full'


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Configuration of every Transformer model here (and of the encoder stack that ViT and ASR reuse).

  attention / attention_options: self-attention variant and its options (both the encoder's and the
    decoder's self-attention). Options named in LAYER_OPTIONS (rope_base, output_gate, qk_norm, sinks,
    short_conv: see layers.MultiHeadAttention) or in the variant's
    layer_options (rank, hidden, num_features, ...) go to the layer; the rest (window, normalizer,
    block_size, ...) to the variant function. A hybrid names one variant per layer: a tuple/list of names or
    one string joined by '+' ('gated_delta+gated_delta+dot_product'), whose length must equal the number of
    layers of every stack built from it; its attention_options are one mapping for every layer or a tuple of
    one mapping per layer.
  cross_attention / cross_attention_options: the decoder's cross-attention; default: the self-attention's
    (dot_product when that is local or recurrent, which have no cross-attention form, or a hybrid).
  num_kv_heads: key/value heads; < num_heads is grouped-query, 1 is multi-query (default num_heads).
  target_vocab_size: EncoderDecoder target vocabulary; None shares the source embedding table.
  tie_embeddings: output projection = transposed target embedding table.
  num_classes, pooling ('mean' over real tokens or a 'cls' token), head ('pool' -> [B, C] or 'tagging' ->
    [B, L, C]): the Encoder's classifier.
  max_length: longest sequence (learned and sinusoidal tables, linformer projections, generation).
  pad_id must be 0 for the decoders (decoding pads finished sequences with 0).
  """
  vocab_size: int | None = None
  d_model: int = 64
  num_heads: int = 4
  num_kv_heads: int | None = None
  num_encoder_layers: int = 2
  num_decoder_layers: int = 2
  mlp_dim: int | None = None
  dropout_rate: float = 0.0
  max_length: int = 512
  positional: str = 'sinusoidal'
  attention: str | tuple[str, ...] = attention.DEFAULT_VARIANT
  attention_options: Mapping[str, Any] | tuple[Mapping[str, Any], ...] = dataclasses.field(default_factory=FrozenDict)
  cross_attention: str | None = None
  cross_attention_options: Mapping[str, Any] | None = None
  target_vocab_size: int | None = None
  tie_embeddings: bool = True
  num_classes: int | None = None
  pooling: str = 'mean'
  head: str = 'pool'
  pad_id: int = 0
  bos_id: int = 1
  eos_id: int = 2
  relative_buckets: int = 32
  relative_max_distance: int = 128

  def __post_init__(self):
    object.__setattr__(self, 'attention', parse_variants(self.attention))
    object.__setattr__(self, 'attention_options', freeze_layer_options(self.attention_options))
    if self.cross_attention_options is not None:
      object.__setattr__(self, 'cross_attention_options', freeze_layer_options(self.cross_attention_options))
    layers.check_scheme(self.positional)
    for name in self.variants:
      attention.get(name)
    if self.hybrid and len(self.attention) not in (self.num_encoder_layers, self.num_decoder_layers):
      raise ValueError(f'attention names {len(self.attention)} per-layer variants {self.attention}, but the stacks '
                       f'have num_encoder_layers={self.num_encoder_layers} and num_decoder_layers='
                       f'{self.num_decoder_layers} layers.')
    if isinstance(self.attention_options, tuple) and len(self.attention_options) != len(self.variants):
      raise ValueError(f'per-layer attention_options ({len(self.attention_options)} mappings) need a hybrid '
                       f'attention with as many layers; got attention={self.attention!r}.')
    attention.check_cross(self.cross_variant)
    for name in ('d_model', 'num_heads', 'max_length', 'relative_buckets', 'relative_max_distance'):
      check_positive(name, getattr(self, name))
    for name in ('num_encoder_layers', 'num_decoder_layers'):
      check_positive(name, getattr(self, name))
    for name in ('vocab_size', 'target_vocab_size', 'num_kv_heads', 'mlp_dim', 'num_classes'):
      check_positive(name, getattr(self, name), allow_none=True)
    if self.d_model % self.num_heads:
      raise ValueError(f'd_model={self.d_model} is not divisible by num_heads={self.num_heads}.')
    if self.num_heads % self.kv_heads:
      raise ValueError(f'num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}.')
    if self.positional == 'rope' and self.head_dim % 2:
      raise ValueError(f"positional='rope' needs an even head size; got d_model / num_heads = {self.head_dim}.")
    if self.positional == 'sinusoidal' and self.d_model % 2:
      raise ValueError(f"positional='sinusoidal' needs an even d_model; got d_model={self.d_model}.")
    if self.positional in BIAS_SCHEMES and not all(takes_bias(n) for n in self.variants):
      raise ValueError(
          f'positional={self.positional!r} adds a bias to the attention scores, but attention='
          f'{self.attention!r} takes no bias (it supports key-padding masks only); use rope, sinusoidal, '
          f'learned or none.')
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f'dropout_rate must be in [0, 1); got {self.dropout_rate!r}.')
    if self.pooling not in POOLINGS:
      raise ValueError(f'unknown pooling {self.pooling!r}; known: {POOLINGS}.')
    if self.head not in HEADS:
      raise ValueError(f'unknown head {self.head!r}; known: {HEADS}.')
    if self.bos_id == self.pad_id or self.eos_id == self.pad_id:
      raise ValueError(f'bos_id={self.bos_id} and eos_id={self.eos_id} must differ from pad_id={self.pad_id}.')
    for name in ('pad_id', 'bos_id', 'eos_id'):
      value = getattr(self, name)
      if value < 0 or (self.vocab_size is not None and value >= self.vocab_size):
        raise ValueError(f'{name}={value} is outside the vocabulary [0, {self.vocab_size}).')

  @property
  def hybrid(self) -> bool:
    return isinstance(self.attention, tuple)

  @property
  def variants(self) -> tuple[str, ...]:
    """The distinct-or-not variant names: the per-layer tuple of a hybrid, else (attention,)."""
    return self.attention if self.hybrid else (self.attention,)

  def layer_variants(self, num_layers: int) -> tuple[str, ...]:
    """The self-attention variant of each of num_layers layers (ValueError when a hybrid has another length)."""
    if not self.hybrid:
      return (self.attention,) * num_layers
    if len(self.attention) != num_layers:
      raise ValueError(f'attention names {len(self.attention)} per-layer variants {self.attention} for a stack of '
                       f'{num_layers} layers; give one variant per layer.')
    return self.attention

  @property
  def kv_heads(self) -> int:
    return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads

  @property
  def mlp_features(self) -> int:
    return 4 * self.d_model if self.mlp_dim is None else self.mlp_dim

  @property
  def cross_variant(self) -> str:
    if self.cross_attention is not None:
      return self.cross_attention
    # A self-attention variant that only makes sense within one sequence (local) leaves cross-attention exact.
    return self.attention if not self.hybrid and attention.get(self.attention).cross else attention.DEFAULT_VARIANT

  @property
  def target_vocab(self) -> int:
    return self.vocab_size if self.target_vocab_size is None else self.target_vocab_size

  def attention_kwargs(self, *, cross: bool = False, layer: int = 0) -> dict:
    """MultiHeadAttention keyword arguments for the self- or cross-attention layers (of layer `layer` of a
    hybrid)."""
    if cross:
      variant = self.cross_variant
      options = self.cross_attention_options
      if options is None:
        options = self.attention_options if self.cross_attention in (None, self.attention) else {}
        options = {} if self.hybrid else options
    else:
      variant, options = self.variants[layer if self.hybrid else 0], self.attention_options
      options = options[layer] if isinstance(options, tuple) else options
    kw = dict(variant=variant, num_kv_heads=self.kv_heads, max_length=self.max_length,
              use_rope=self.positional == 'rope' and not cross)
    layer_options = LAYER_OPTIONS + attention.get(variant).layer_options
    kw.update({k: v for k, v in options.items() if k in layer_options and not (cross and k in SELF_ONLY_OPTIONS)})
    kw['variant_options'] = {k: v for k, v in options.items() if k not in layer_options}
    return kw

  def check_model(self, kind: str):
    """Checks that depend on the model being built: 'encoder', 'encoder_decoder' or 'decoder_lm'."""
    if self.vocab_size is None:
      raise ValueError(f'a {kind} needs vocab_size; got vocab_size=None.')
    if kind == 'encoder' and self.num_classes is None:
      raise ValueError('an encoder classifier needs num_classes; got num_classes=None.')
    if kind in ('encoder', 'encoder_decoder'):
      self.layer_variants(self.num_encoder_layers)
    if kind in ('encoder_decoder', 'decoder_lm'):
      self.layer_variants(self.num_decoder_layers)
      for name in self.variants:
        if not attention.get(name).causal:
          raise ValueError(f'attention={name!r} does not support causal attention (its facts say causal=False), '
                           f'which a decoder needs.')
      if self.pad_id != 0:
        raise ValueError(f'decoders need pad_id=0 (decoding pads finished sequences with 0); got {self.pad_id}.')
      for name in ('bos_id', 'eos_id'):
        if kind == 'encoder_decoder' and getattr(self, name) >= self.target_vocab:
          raise ValueError(f'{name}={getattr(self, name)} is outside the target vocabulary '
                           f'[0, {self.target_vocab}).')
