"""The Transformer family over any registered attention variant: Encoder, EncoderDecoder, DecoderLM.

Pre-LN blocks (layers.TransformerBlock), a final LayerNorm, a positional scheme ('sinusoidal', 'learned',
'rope', 'alibi', 'relative', 'none'), grouped-query heads, tied embeddings and a key/value cache for
incremental decoding with greedy or beam search (models.decoding).

Padding is always a key-padding mask [B, 1, 1, S] and causality always `is_causal`, never a materialised
[T, S] mask, so the linear-time variants (masks == 'key_padding') run in every model.

Dimension letters: B batch, L / S source length, T target length, D d_model, N heads, V vocabulary,
C classes, R decoding rows (B * beam).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict

from attention_research import attention, layers
from attention_research.attention import positional as pos_lib
from attention_research.models import decoding
from attention_research.models._checks import check_positive, freeze_options

# Options that configure the MultiHeadAttention layer whatever the variant; each variant adds its own
# (attention.get(name).layer_options).
LAYER_OPTIONS = ('rope_base',)
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
    decoder's self-attention). Options named in LAYER_OPTIONS (rope_base) or in the variant's
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
  attention: str | tuple[str, ...] = 'dot_product'
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
    return self.attention if not self.hybrid and attention.get(self.attention).cross else 'dot_product'

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
    kw.update({k: v for k, v in options.items() if k in layer_options})
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


# [B, S] validity mask, [B, 1, 1, S] or lengths -> [B, 1, 1, S]; None stays None.
key_padding = attention.masks.key_padding


class TransformerStack(nnx.Module):
  """Positions + pre-LN blocks + final LayerNorm over embeddings [B, L, D].

  The encoder of every model here (causal=False) and the decoder (causal=True, cross=True for
  encoder-decoders). ViT and ASR use it directly on patch or frame embeddings.
  """

  def __init__(self, cfg: TransformerConfig, num_layers: int, *, causal: bool = False, cross: bool = False,
               rngs: nnx.Rngs):
    self.cfg, self.causal = cfg, causal
    cfg.layer_variants(num_layers)
    self.blocks = nnx.List([
        layers.TransformerBlock(cfg.d_model, cfg.num_heads, cfg.mlp_features, attention=cfg.attention_kwargs(layer=i),
                                cross_attention=cfg.attention_kwargs(cross=True) if cross else None,
                                memory_features=cfg.d_model, dropout_rate=cfg.dropout_rate, rngs=rngs)
        for i in range(num_layers)])
    if cfg.positional == 'learned':
      self.position_embedding = layers.LearnedPositionEmbedding(cfg.max_length, cfg.d_model, rngs=rngs)
    if cfg.positional == 'relative':
      # One table shared by all layers, as in T5; decoders bucket only past distances.
      self.relative_bias = layers.RelativePositionBias(
          cfg.num_heads, num_buckets=cfg.relative_buckets, max_distance=cfg.relative_max_distance,
          bidirectional=not causal, rngs=rngs)
    self.dropout = nnx.Dropout(cfg.dropout_rate, rngs=rngs)
    self.final_norm = nnx.LayerNorm(cfg.d_model, rngs=rngs)

  def init_cache(self, batch_size: int, max_length: int):
    for block in self.blocks:
      block.self_attention.init_cache(batch_size, max_length)

  def _decode_index(self):
    attn = self.blocks[0].self_attention
    if attn.cache_index is None:
      raise ValueError('decode=True needs init_cache(batch_size, max_length) first.')
    # Only position biases use the cache length; they need score matrices, so every layer then has a key cache.
    return attn.cache_index[...], None if attn.cached_key is None else attn.cached_key.shape[1]

  def __call__(self, x, mask=None, *, memory=None, memory_mask=None, decode: bool = False,
               deterministic: bool = True):
    """x [B, T, D]; mask: key padding [B, T] or [B, 1, 1, T]; memory [B, S, D] with memory_mask for
    cross-attention. decode=True runs T new positions against the cache (see init_cache).

    Returns [B, T, D]; inside layers.capture_attention each block's self- and cross-attention sow their weights.
    """
    cfg = self.cfg
    T = x.shape[-2]
    if decode:
      offset, S = self._decode_index()
      positions = offset + jnp.arange(T)
    else:
      if cfg.positional in ('learned', 'sinusoidal') and T > cfg.max_length:
        raise ValueError(f'sequence length {T} exceeds max_length={cfg.max_length}.')
      offset, S, positions = 0, T, jnp.arange(T)
    if cfg.positional == 'sinusoidal':
      x = x + pos_lib.sinusoidal(cfg.max_length, cfg.d_model)[positions].astype(x.dtype)
    elif cfg.positional == 'learned':
      x = x + self.position_embedding(positions).astype(x.dtype)
    bias = None
    if cfg.positional == 'alibi':
      bias = pos_lib.alibi_bias(cfg.num_heads, T, S, offset=offset)
    elif cfg.positional == 'relative':
      bias = self.relative_bias(T, S, offset=offset)
    x = self.dropout(x, deterministic=deterministic)
    mask = key_padding(mask)
    memory_mask = key_padding(memory_mask)
    for block in self.blocks:
      x = block(x, mask=mask, bias=bias, is_causal=self.causal, positions=positions if decode else None,
                memory=memory, memory_mask=memory_mask, decode=decode, deterministic=deterministic)
    return self.final_norm(x)


class Encoder(nnx.Module):
  """Token classifier: pooled ('mean' or 'cls' token) -> [B, C], or per-token tagging -> [B, L, C]."""

  Config = TransformerConfig

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    cfg.check_model('encoder')
    self.cfg = cfg
    self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs)
    self.use_cls = cfg.head == 'pool' and cfg.pooling == 'cls'
    if self.use_cls:
      self.cls_token = nnx.Param(jnp.zeros((1, 1, cfg.d_model)))
    self.stack = TransformerStack(cfg, cfg.num_encoder_layers, rngs=rngs)
    self.classifier = nnx.Linear(cfg.d_model, cfg.num_classes, rngs=rngs)

  def encode_embeddings(self, x, mask=None, *, deterministic: bool = True):
    """The encoder stack on continuous embeddings x [B, L, D] with key padding mask [B, L] (True = real)."""
    return self.stack(x, mask, deterministic=deterministic)

  def __call__(self, tokens, *, deterministic: bool = True):
    """tokens [B, L] int (pad_id = padding) -> logits [B, C] ('pool') or [B, L, C] ('tagging').

    layers.capture_attention reads {'self': [per-layer [B, N, L', L']]}, L' = L + 1 with a cls token
    (the cls token is position 0).
    """
    cfg = self.cfg
    valid = tokens != cfg.pad_id
    x = self.embed(tokens) * math.sqrt(cfg.d_model)
    if self.use_cls:
      B = tokens.shape[0]
      x = jnp.concatenate([jnp.broadcast_to(self.cls_token[...], (B, 1, cfg.d_model)).astype(x.dtype), x], 1)
      valid = jnp.concatenate([jnp.ones((B, 1), bool), valid], 1)
    h = self.encode_embeddings(x, valid, deterministic=deterministic)
    if cfg.head == 'tagging':
      logits = self.classifier(h)
    elif self.use_cls:
      logits = self.classifier(h[:, 0])
    else:
      w = valid.astype(h.dtype)[..., None]
      logits = self.classifier(jnp.sum(h * w, 1) / jnp.maximum(jnp.sum(w, 1), 1.0))
    return logits


# ----------------------------------------------------------------------------------------------- decoding
def _check_generation_length(cfg: TransformerConfig, length: int):
  if cfg.positional in ('learned', 'sinusoidal') and length > cfg.max_length:
    raise ValueError(f'generating {length} positions exceeds max_length={cfg.max_length}.')


class _TokenDecoder(nnx.Module):
  """Target embedding, a causal TransformerStack and the output projection (tied or not)."""

  def _init_output(self, cfg: TransformerConfig, vocab_size: int, rngs: nnx.Rngs):
    self.output = None if cfg.tie_embeddings else nnx.Linear(cfg.d_model, vocab_size, use_bias=False, rngs=rngs)

  def _target_embed(self) -> nnx.Embed:
    raise NotImplementedError

  def _embed_targets(self, tokens):
    return self._target_embed()(tokens) * math.sqrt(self.cfg.d_model)

  def _logits(self, h):
    return self._target_embed().attend(h) if self.output is None else self.output(h)

  def init_cache(self, batch_size: int, max_length: int):
    """Allocates the decoder's key/value caches for incremental decoding of max_length positions."""
    self.decoder.init_cache(batch_size, max_length)

  def _search_init(self, prefill, first, kwargs, *, max_length: int):
    """decoding.search's init: caches for the prompt prefill [B, P] and max_length new tokens, filled with
    the prompt; `first` [B] replaces the search's first input (the prompt's last token, or BOS).
    kwargs: decode_step's [B, ...] arguments (memory)."""
    B = first.shape[0]
    self.init_cache(B, prefill.shape[1] + max_length)
    graphdef, cache, rest = nnx.split(self, nnx.Cache, ...)

    def feed(cache, tokens):
      model = nnx.merge(graphdef, cache, rest)
      model.decode_step(tokens, **kwargs)
      return nnx.state(model, nnx.Cache), None

    cache, _ = jax.lax.scan(feed, cache, prefill.T)
    nnx.update(self, cache)
    return {'first': first, 'started': jnp.zeros((B,), bool), 'kwargs': kwargs}

  def _search_step(self, tokens, state):
    """decoding.search's step: one cached decode_step, log-probabilities [R, V]."""
    tokens = jnp.where(state['started'], tokens, state['first'])
    logits = self.decode_step(tokens, **state['kwargs'])
    state = dict(state, started=jnp.ones_like(state['started']))
    return jax.nn.log_softmax(logits.astype(jnp.float32), -1), state

  def _generate(self, prefill, first, kwargs, *, max_length: int, beam_size: int, alpha: float):
    cfg = self.cfg
    return decoding.search(self, _TokenDecoder._search_init, _TokenDecoder._search_step, prefill, first, kwargs,
                           beam_size=beam_size, max_length=max_length, alpha=alpha, bos_id=cfg.bos_id,
                           eos_id=cfg.eos_id)


class EncoderDecoder(_TokenDecoder):
  """Sequence to sequence (translation, summarisation): inputs [B, S] -> logits [B, T, V] of the targets."""

  Config = TransformerConfig

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    cfg.check_model('encoder_decoder')
    self.cfg = cfg
    self.source_embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs)
    self.target_embed = (None if cfg.target_vocab_size is None
                         else nnx.Embed(cfg.target_vocab_size, cfg.d_model, rngs=rngs))
    self.encoder = TransformerStack(cfg, cfg.num_encoder_layers, rngs=rngs)
    self.decoder = TransformerStack(cfg, cfg.num_decoder_layers, causal=True, cross=True, rngs=rngs)
    self._init_output(cfg, cfg.target_vocab, rngs)

  def _target_embed(self):
    return self.source_embed if self.target_embed is None else self.target_embed

  def encode(self, inputs, *, deterministic: bool = True):
    """inputs [B, S] -> (memory [B, S, D], memory_mask [B, 1, 1, S])."""
    mask = key_padding(inputs != self.cfg.pad_id)
    x = self.source_embed(inputs) * math.sqrt(self.cfg.d_model)
    return self.encoder(x, mask, deterministic=deterministic), mask

  def decode(self, targets_in, memory, memory_mask, *, deterministic: bool = True):
    """Teacher-forced decoder: targets_in [B, T] -> logits [B, T, V]."""
    x = self._embed_targets(targets_in)
    h = self.decoder(x, targets_in != self.cfg.pad_id, memory=memory, memory_mask=memory_mask,
                     deterministic=deterministic)
    return self._logits(h)

  def __call__(self, inputs, targets_in, *, deterministic: bool = True):
    """inputs [B, S], targets_in [B, T] (BOS + targets[:-1]) -> logits [B, T, V].

    layers.capture_attention reads {'encoder': [per-layer [B, N, S, S]], 'self': [[B, N, T, T]],
    'cross': [[B, N, T, S]]}.
    """
    memory, memory_mask = self.encode(inputs, deterministic=deterministic)
    return self.decode(targets_in, memory, memory_mask, deterministic=deterministic)

  def decode_step(self, tokens, memory, memory_mask):
    """One cached step: tokens [B] (the previous output) -> logits [B, V]. Needs init_cache."""
    x = self._embed_targets(tokens[:, None])
    h = self.decoder(x, memory=memory, memory_mask=memory_mask, decode=True)
    return self._logits(h[:, 0])

  def generate(self, inputs, *, max_length: int, beam_size: int = 1, alpha: float = 0.6):
    """inputs [B, S] -> tokens [B, max_length]: EOS then 0-padding; greedy when beam_size == 1, otherwise
    beam search with the GNMT length penalty alpha. Uses the key/value cache (one position per step)."""
    _check_generation_length(self.cfg, max_length)
    memory, memory_mask = self.encode(inputs)
    B = inputs.shape[0]
    return self._generate(jnp.zeros((B, 0), jnp.int32), jnp.full((B,), self.cfg.bos_id, jnp.int32),
                          {'memory': memory, 'memory_mask': memory_mask}, max_length=max_length,
                          beam_size=beam_size, alpha=alpha)


class DecoderLM(_TokenDecoder):
  """Causal language model: tokens [B, L] -> next-token logits [B, L, V]."""

  Config = TransformerConfig

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    cfg.check_model('decoder_lm')
    self.cfg = cfg
    self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs)
    self.decoder = TransformerStack(cfg, cfg.num_decoder_layers, causal=True, rngs=rngs)
    self._init_output(cfg, cfg.vocab_size, rngs)

  def _target_embed(self):
    return self.embed

  def __call__(self, tokens, *, deterministic: bool = True):
    """tokens [B, L] -> logits [B, L, V] (position t predicts token t + 1); layers.capture_attention reads
    {'self': [per-layer [B, N, L, L]]}."""
    h = self.decoder(self._embed_targets(tokens), tokens != self.cfg.pad_id, deterministic=deterministic)
    return self._logits(h)

  def decode_step(self, tokens):
    """One cached step: tokens [B] -> logits [B, V] for the next position. Needs init_cache."""
    return self._logits(self.decoder(self._embed_targets(tokens[:, None]), decode=True)[:, 0])

  def generate(self, prompt, *, max_new_tokens: int, beam_size: int = 1, alpha: float = 0.6):
    """prompt [B, P] (P >= 1, unpadded, e.g. starting with BOS) -> [B, P + max_new_tokens]: the prompt then
    the continuation (EOS then 0-padding). Greedy when beam_size == 1, else beam search."""
    prompt = jnp.asarray(prompt, jnp.int32)
    B, P = prompt.shape
    if P < 1:
      raise ValueError(f'generate needs a prompt of at least one token (e.g. BOS); got shape {prompt.shape}.')
    check_positive('max_new_tokens', max_new_tokens)
    length = P - 1 + max_new_tokens
    _check_generation_length(self.cfg, length)
    new = self._generate(prompt[:, :-1], prompt[:, -1], {}, max_length=max_new_tokens, beam_size=beam_size,
                         alpha=alpha)
    return jnp.concatenate([prompt, new], axis=1)
