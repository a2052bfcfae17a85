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

import math

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research import attention, layers
from attention_research.attention import positional as pos_lib
from attention_research.models import decoding
from attention_research.models._checks import check_positive

# The config and its helpers live in transformer_config; models and configs name them through this module too.
from attention_research.models.transformer_config import (  # noqa: F401
    BIAS_SCHEMES, HEADS, HYBRID_SEPARATOR, LAYER_OPTIONS, POOLINGS, TransformerConfig, freeze_layer_options,
    parse_variants, takes_bias)

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
    return attn.cache_index[...], None if attn.cached_key is None else attn.cache_length

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
