"""Hybrid CTC/attention speech recognition (Watanabe et al. 2017; Gulati et al. 2020 for the Conformer).

    audio [B, N] -> log-mel [B, n, M] -> per-utterance mean/variance normalisation -> SpecAugment (training)
      -> two stride-2 3x3 convolutions (x4 in time) -> Transformer or Conformer encoder [B, F, D]
      -> CTC head [B, F, V]   and   attention decoder (causal self-attention + cross-attention) [B, T, V]

The encoder's self-attention and the decoder's attention are any registered variants. Padding is a key-padding
mask built from frame lengths, so the linear-time variants (masks == 'key_padding') run in the encoder.

Framing: the front end frames without padding the signal (tf.signal.stft's pad_end=False), so feature frame i
covers samples [i * step, i * step + frame_length) and a padded utterance's first n(length) frames are exactly
the unpadded utterance's frames. The subsampling convolutions are unpadded too ('VALID'), so encoder frame f
sees feature frames [4f, 4f + 7); the encoder's frame count is ((n - 1) // 2 - 1) // 2. Nothing after the
front end lets padded frames reach real ones (masked attention, zeroed inputs to the depthwise convolution,
LayerNorm rather than BatchNorm), so padding a batch does not change the outputs on the real frames.

Decoding (`ASR.decode`): CTC greedy, attention greedy or beam search, and joint CTC/attention beam search,
which ranks hypotheses by (1 - ctc_weight) log p_att + ctc_weight log p_ctc-prefix (ctc.prefix_scores).

Dimension letters: B batch, N samples, n feature frames, M mel bins, F encoder frames, D d_model, T target
length, V vocabulary (the CTC blank included), H heads, R decoding rows (B * beam), K scored candidates.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from flax.core import FrozenDict

from attention_research import attention, layers
from attention_research.attention import masks
from attention_research.attention import positional as pos_lib
from attention_research.models import ctc, decoding
from attention_research.models.transformer import TransformerConfig, TransformerStack, freeze_options

ENCODERS = ('transformer', 'conformer')
POSITIONAL = ('sinusoidal', 'rope', 'none')
METHODS = ('ctc_greedy', 'attention_greedy', 'attention_beam', 'joint')


def _positive(name, value, allow_none=False):
  if value is None and allow_none:
    return
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f'{name} must be a positive int; got {value!r}.')


def _non_negative(name, value):
  if not isinstance(value, int) or isinstance(value, bool) or value < 0:
    raise ValueError(f'{name} must be an int >= 0; got {value!r}.')


def check_ctc_weight(ctc_weight):
  """ctc_weight must be a number in [0, 1] (checked when it is a Python number, not a traced value)."""
  if isinstance(ctc_weight, bool) or (isinstance(ctc_weight, (int, float)) and not 0.0 <= ctc_weight <= 1.0):
    raise ValueError(f'ctc_weight must be in [0, 1]; got {ctc_weight!r}.')


def subsampled_length(n):
  """Frames after the two unpadded stride-2 3x3 convolutions: ((n - 1) // 2 - 1) // 2, at least 0."""
  if isinstance(n, int):
    return max(((n - 1) // 2 - 1) // 2, 0)
  n = jnp.asarray(n)
  return jnp.maximum(((n - 1) // 2 - 1) // 2, 0)


@dataclasses.dataclass(frozen=True)
class ASRConfig:
  """Configuration of the hybrid CTC/attention recogniser.

  vocab_size: V, output tokens including pad, bos, eos and the CTC blank (blank_id may equal pad_id, the
    default: padding is never a label, so its id is free to be the blank).
  sample_rate, frame_length, frame_step, fft_length, num_mel_bins: the log-mel front end (25 ms / 10 ms).
  specaugment: time and frequency masks during training (Park et al. 2019, without time warping):
    num_freq_masks of width <= freq_mask_width bins, num_time_masks of width <= min(time_mask_width,
    time_mask_ratio * utterance frames), drawn from the 'specaugment' rng stream ('dropout' or 'default'
    when absent) and set to 0 (the utterance mean after normalisation).
  encoder: 'transformer' (pre-LN blocks) or 'conformer' (macaron FFN, MHSA, convolution module).
  conv_kernel_size: the Conformer's depthwise convolution kernel (odd).
  subsampling_channels: channels of the subsampling convolutions (default d_model).
  positional: 'sinusoidal' (added after subsampling and to the target embeddings), 'rope' or 'none'.
  encoder_attention / _options: the encoder self-attention variant and its options (as TransformerConfig).
  decoder_attention / _options: the decoder self-attention (must support causal attention).
  cross_attention / _options: the decoder's attention over encoder frames (default: decoder_attention).
  ctc_weight: the default weight of CTC in the hybrid loss and in joint decoding, in [0, 1].
  max_frames: most encoder frames (sinusoidal table, linformer projections); max_target_length: most tokens.
  """
  vocab_size: int
  num_mel_bins: int = 80
  sample_rate: int = 16_000
  frame_length: int = 400
  frame_step: int = 160
  fft_length: int = 512
  specaugment: bool = False
  num_freq_masks: int = 2
  freq_mask_width: int = 27
  num_time_masks: int = 2
  time_mask_width: int = 40
  time_mask_ratio: float = 0.05
  d_model: int = 256
  num_heads: int = 4
  encoder: str = 'conformer'
  num_encoder_layers: int = 6
  num_decoder_layers: int = 3
  mlp_dim: int | None = None
  conv_kernel_size: int = 15
  subsampling_channels: int | None = None
  dropout_rate: float = 0.1
  positional: str = 'sinusoidal'
  encoder_attention: str = 'dot_product'
  encoder_attention_options: Mapping[str, Any] = dataclasses.field(default_factory=FrozenDict)
  decoder_attention: str = 'dot_product'
  decoder_attention_options: Mapping[str, Any] = dataclasses.field(default_factory=FrozenDict)
  cross_attention: str | None = None
  cross_attention_options: Mapping[str, Any] | None = None
  ctc_weight: float = 0.3
  max_frames: int = 1024
  max_target_length: int = 256
  pad_id: int = 0
  bos_id: int = 1
  eos_id: int = 2
  blank_id: int = 0

  def __post_init__(self):
    object.__setattr__(self, 'encoder_attention_options', freeze_options(self.encoder_attention_options))
    object.__setattr__(self, 'decoder_attention_options', freeze_options(self.decoder_attention_options))
    if self.cross_attention_options is not None:
      object.__setattr__(self, 'cross_attention_options', freeze_options(self.cross_attention_options))
    for name in ('vocab_size', 'num_mel_bins', 'sample_rate', 'frame_length', 'frame_step', 'fft_length',
                 'd_model', 'num_heads', 'num_encoder_layers', 'num_decoder_layers', 'conv_kernel_size',
                 'max_frames', 'max_target_length'):
      _positive(name, getattr(self, name))
    for name in ('mlp_dim', 'subsampling_channels'):
      _positive(name, getattr(self, name), allow_none=True)
    for name in ('num_freq_masks', 'freq_mask_width', 'num_time_masks', 'time_mask_width'):
      _non_negative(name, getattr(self, name))
    for name in ('encoder_attention', 'decoder_attention'):
      attention.get(getattr(self, name))  # ValueError naming the variant and the known ones
    if self.cross_attention is not None:
      attention.check_cross(self.cross_attention)
    if self.encoder not in ENCODERS:
      raise ValueError(f'unknown encoder {self.encoder!r}; known: {ENCODERS}.')
    if self.positional not in POSITIONAL:
      raise ValueError(f'unknown positional {self.positional!r} for ASR; known: {POSITIONAL}.')
    if self.d_model % self.num_heads:
      raise ValueError(f'd_model={self.d_model} is not divisible by num_heads={self.num_heads}.')
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f'dropout_rate must be in [0, 1); got {self.dropout_rate!r}.')
    check_ctc_weight(self.ctc_weight)
    if not 0.0 <= self.time_mask_ratio <= 1.0:
      raise ValueError(f'time_mask_ratio must be in [0, 1]; got {self.time_mask_ratio!r}.')
    if self.specaugment and self.freq_mask_width > self.num_mel_bins:
      raise ValueError(f'freq_mask_width={self.freq_mask_width} exceeds num_mel_bins={self.num_mel_bins}.')
    if self.num_mel_bins < 7:
      raise ValueError(f'num_mel_bins={self.num_mel_bins} is too few for the x4 subsampling convolutions '
                       f'(they need at least 7 bins).')
    if self.conv_kernel_size % 2 == 0:
      raise ValueError(f'conv_kernel_size must be odd (centred, same length); got {self.conv_kernel_size}.')
    if self.fft_length < self.frame_length:
      raise ValueError(f'fft_length={self.fft_length} is shorter than frame_length={self.frame_length}.')
    for name in ('pad_id', 'bos_id', 'eos_id', 'blank_id'):
      value = getattr(self, name)
      if not isinstance(value, int) or not 0 <= value < self.vocab_size:
        raise ValueError(f'{name}={value!r} is outside the vocabulary [0, {self.vocab_size}).')
    if self.pad_id != 0:
      raise ValueError(f'pad_id must be 0 (decoding pads finished sequences with 0); got {self.pad_id}.')
    if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
      raise ValueError(f'pad_id={self.pad_id}, bos_id={self.bos_id} and eos_id={self.eos_id} must differ.')
    if self.blank_id in (self.bos_id, self.eos_id):
      raise ValueError(f'blank_id={self.blank_id} must differ from bos_id={self.bos_id} and '
                       f'eos_id={self.eos_id}.')
    if self.positional == 'sinusoidal' and self.d_model % 2:
      raise ValueError(f"positional='sinusoidal' needs an even d_model; got d_model={self.d_model}.")
    if self.positional == 'rope' and (self.d_model // self.num_heads) % 2:
      raise ValueError(f"positional='rope' needs an even head size; got d_model / num_heads = "
                       f'{self.d_model // self.num_heads}.')
    if not attention.get(self.decoder_attention).causal:
      raise ValueError(f'decoder_attention={self.decoder_attention!r} does not support causal attention, '
                       f'which the decoder needs.')
    self.encoder_config()
    self.decoder_config()

  @property
  def mlp_features(self) -> int:
    return 4 * self.d_model if self.mlp_dim is None else self.mlp_dim

  @property
  def channels(self) -> int:
    return self.d_model if self.subsampling_channels is None else self.subsampling_channels

  def encoder_config(self) -> TransformerConfig:
    """The encoder stack as a TransformerConfig (self-attention variant, positional scheme, max_frames)."""
    return TransformerConfig(d_model=self.d_model, num_heads=self.num_heads,
                             num_encoder_layers=self.num_encoder_layers, mlp_dim=self.mlp_dim,
                             dropout_rate=self.dropout_rate, max_length=self.max_frames,
                             positional=self.positional, attention=self.encoder_attention,
                             attention_options=self.encoder_attention_options)

  def decoder_config(self) -> TransformerConfig:
    """The decoder stack; max_length covers encoder frames too (cross-attention linformer projections)."""
    return TransformerConfig(vocab_size=self.vocab_size, d_model=self.d_model, num_heads=self.num_heads,
                             num_decoder_layers=self.num_decoder_layers, mlp_dim=self.mlp_dim,
                             dropout_rate=self.dropout_rate,
                             max_length=max(self.max_target_length, self.max_frames),
                             positional=self.positional, attention=self.decoder_attention,
                             attention_options=self.decoder_attention_options,
                             cross_attention=self.cross_attention,
                             cross_attention_options=self.cross_attention_options,
                             pad_id=self.pad_id, bos_id=self.bos_id, eos_id=self.eos_id)

  def feature_frames(self, num_samples):
    """Feature frames of num_samples samples (int or array) under the front end's framing."""
    from attention_research.data import audio_features  # pylint: disable=g-import-not-at-top
    return audio_features.num_frames(num_samples, frame_length=self.frame_length, frame_step=self.frame_step)

  def encoder_frames(self, num_samples):
    """Encoder frames F of num_samples samples: feature frames, then x4 subsampling."""
    return subsampled_length(self.feature_frames(num_samples))


# --------------------------------------------------------------------------------------------- front end
def normalize(features, lengths):
  """Per-utterance, per-bin mean/variance normalisation over the real frames; padded frames become 0.

  features [B, n, M], lengths [B] -> [B, n, M].
  """
  valid = (jnp.arange(features.shape[1])[None, :] < lengths[:, None])[..., None]
  count = jnp.maximum(jnp.sum(valid, axis=1, keepdims=True), 1)
  x = jnp.where(valid, features, 0.0)
  mean = jnp.sum(x, axis=1, keepdims=True) / count
  var = jnp.sum(jnp.where(valid, jnp.square(x - mean), 0.0), axis=1, keepdims=True) / count
  return jnp.where(valid, (x - mean) * jax.lax.rsqrt(var + 1e-5), 0.0)


def _stream(rngs: nnx.Rngs, names=('specaugment', 'dropout', 'default')):
  for name in names:
    try:
      return rngs[name].fork()
    except (KeyError, AttributeError):
      continue
  raise ValueError(f'specaugment=True needs an rng stream named one of {names} in rngs.')


class SpecAugment(nnx.Module):
  """Frequency and time masking (Park et al. 2019) of normalised features [B, n, M]; no time warping."""

  def __init__(self, cfg: ASRConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.rngs = _stream(rngs)

  @staticmethod
  def _bands(key, count, max_width, extent, size):
    """count bands [start, start + width) inside [0, extent) (per row); -> bool [B, size]."""
    kw, ks = jax.random.split(key)
    B = extent.shape[0]
    width = jnp.floor(jax.random.uniform(kw, (B, count)) * (max_width[:, None] + 1)).astype(jnp.int32)
    start = jnp.floor(jax.random.uniform(ks, (B, count)) * (extent[:, None] - width + 1)).astype(jnp.int32)
    pos = jnp.arange(size)[None, None, :]
    return jnp.any((pos >= start[..., None]) & (pos < (start + width)[..., None]), axis=1)

  def __call__(self, features, lengths):
    cfg = self.cfg
    B, n, M = features.shape
    kf, kt = jax.random.split(self.rngs())
    freq = self._bands(kf, cfg.num_freq_masks, jnp.full((B,), cfg.freq_mask_width), jnp.full((B,), M), M)
    max_t = jnp.minimum(cfg.time_mask_width, jnp.floor(cfg.time_mask_ratio * lengths).astype(jnp.int32))
    time = self._bands(kt, cfg.num_time_masks, max_t, jnp.maximum(lengths, 0), n)
    return jnp.where(freq[:, None, :] | time[:, :, None], 0.0, features)


class ConvSubsampling(nnx.Module):
  """Two unpadded 3x3 stride-2 convolutions over (time, mel) with ReLU, then a projection to d_model."""

  def __init__(self, num_mel_bins: int, channels: int, d_model: int, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, channels, (3, 3), strides=(2, 2), padding='VALID', rngs=rngs)
    self.conv2 = nnx.Conv(channels, channels, (3, 3), strides=(2, 2), padding='VALID', rngs=rngs)
    self.out = nnx.Linear(channels * subsampled_length(num_mel_bins), d_model, rngs=rngs)

  def __call__(self, x_BnM):
    h = jax.nn.relu(self.conv1(x_BnM[..., None]))
    h = jax.nn.relu(self.conv2(h))
    B, F, M, C = h.shape
    return self.out(h.reshape(B, F, M * C))


# ------------------------------------------------------------------------------------------------- encoder
class FeedForward(nnx.Module):
  """LayerNorm, Linear, Swish, dropout, Linear, dropout (the Conformer's half-step FFN)."""

  def __init__(self, d_model: int, mlp_dim: int, dropout_rate: float, *, rngs: nnx.Rngs):
    self.norm = nnx.LayerNorm(d_model, rngs=rngs)
    self.up = nnx.Linear(d_model, mlp_dim, rngs=rngs)
    self.down = nnx.Linear(mlp_dim, d_model, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

  def __call__(self, x, *, deterministic):
    h = self.dropout(jax.nn.swish(self.up(self.norm(x))), deterministic=deterministic)
    return self.dropout(self.down(h), deterministic=deterministic)


class ConvModule(nnx.Module):
  """LayerNorm, pointwise conv + GLU, depthwise conv, LayerNorm, Swish, pointwise conv, dropout.

  LayerNorm replaces the paper's BatchNorm so that an utterance's output does not depend on its batch.
  """

  def __init__(self, d_model: int, kernel_size: int, dropout_rate: float, *, rngs: nnx.Rngs):
    self.norm = nnx.LayerNorm(d_model, rngs=rngs)
    self.pointwise_in = nnx.Linear(d_model, 2 * d_model, rngs=rngs)
    self.depthwise = nnx.Conv(d_model, d_model, (kernel_size,), padding='SAME', feature_group_count=d_model,
                              rngs=rngs)
    self.conv_norm = nnx.LayerNorm(d_model, rngs=rngs)
    self.pointwise_out = nnx.Linear(d_model, d_model, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

  def __call__(self, x, valid_BF, *, deterministic):
    h = jax.nn.glu(self.pointwise_in(self.norm(x)), axis=-1)
    h = jnp.where(valid_BF[..., None], h, 0.0)  # padded frames must not leak into real ones
    h = jax.nn.swish(self.conv_norm(self.depthwise(h)))
    return self.dropout(self.pointwise_out(h), deterministic=deterministic)


class ConformerBlock(nnx.Module):
  """x + FFN/2, + MHSA, + Conv, + FFN/2, LayerNorm (Gulati et al. 2020), MHSA with any variant."""

  def __init__(self, cfg: ASRConfig, *, rngs: nnx.Rngs):
    d = cfg.d_model
    self.ffn1 = FeedForward(d, cfg.mlp_features, cfg.dropout_rate, rngs=rngs)
    self.norm_att = nnx.LayerNorm(d, rngs=rngs)
    self.self_attention = layers.MultiHeadAttention(cfg.num_heads, d, dropout_rate=cfg.dropout_rate, rngs=rngs,
                                                    **cfg.encoder_config().attention_kwargs())
    self.conv = ConvModule(d, cfg.conv_kernel_size, cfg.dropout_rate, rngs=rngs)
    self.ffn2 = FeedForward(d, cfg.mlp_features, cfg.dropout_rate, rngs=rngs)
    self.norm_out = nnx.LayerNorm(d, rngs=rngs)
    self.dropout = nnx.Dropout(cfg.dropout_rate, rngs=rngs)

  def __call__(self, x, mask, valid_BF, *, deterministic):
    x = x + 0.5 * self.ffn1(x, deterministic=deterministic)
    h = self.self_attention(self.norm_att(x), mask=mask, deterministic=deterministic)
    x = x + self.dropout(h, deterministic=deterministic)
    x = x + self.conv(x, valid_BF, deterministic=deterministic)
    return self.norm_out(x + 0.5 * self.ffn2(x, deterministic=deterministic))


class ConformerStack(nnx.Module):
  """Positions (sinusoidal added; rope inside attention) + Conformer blocks over [B, F, D]."""

  def __init__(self, cfg: ASRConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.blocks = nnx.List([ConformerBlock(cfg, rngs=rngs) for _ in range(cfg.num_encoder_layers)])
    self.dropout = nnx.Dropout(cfg.dropout_rate, rngs=rngs)

  def __call__(self, x, valid_BF, *, deterministic=True):
    cfg = self.cfg
    if cfg.positional == 'sinusoidal':
      x = x + pos_lib.sinusoidal(cfg.max_frames, cfg.d_model)[:x.shape[1]].astype(x.dtype)
    x = self.dropout(x, deterministic=deterministic)
    mask = valid_BF[:, None, None, :]
    for block in self.blocks:
      x = block(x, mask, valid_BF, deterministic=deterministic)
    return x


# --------------------------------------------------------------------------------------------------- model
class ASR(nnx.Module):
  """Hybrid CTC/attention recogniser: audio [B, N] -> CTC logits [B, F, V] and decoder logits [B, T, V]."""

  def __init__(self, cfg: ASRConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.specaugment = SpecAugment(cfg, rngs=rngs) if cfg.specaugment else None
    self.subsampling = ConvSubsampling(cfg.num_mel_bins, cfg.channels, cfg.d_model, rngs=rngs)
    if cfg.encoder == 'conformer':
      self.encoder = ConformerStack(cfg, rngs=rngs)
    else:
      self.encoder = TransformerStack(cfg.encoder_config(), cfg.num_encoder_layers, rngs=rngs)
    self.ctc_head = nnx.Linear(cfg.d_model, cfg.vocab_size, rngs=rngs)
    self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs)
    self.decoder = TransformerStack(cfg.decoder_config(), cfg.num_decoder_layers, causal=True, cross=True,
                                    rngs=rngs)
    self.output = nnx.Linear(cfg.d_model, cfg.vocab_size, rngs=rngs)

  # -- front end and encoder
  def features(self, audio, audio_lengths, *, deterministic: bool = True):
    """audio [B, N] float, audio_lengths [B] samples -> (normalised log-mel [B, n, M], frame counts [B])."""
    from attention_research.data import audio_features  # pylint: disable=g-import-not-at-top
    cfg = self.cfg
    audio = jnp.asarray(audio, jnp.float32)
    if audio.ndim != 2:
      raise ValueError(f'audio must be [B, N] samples; got shape {audio.shape}.')
    feats = audio_features.log_mel_spectrogram(
        audio, sample_rate=cfg.sample_rate, frame_length=cfg.frame_length, frame_step=cfg.frame_step,
        fft_length=cfg.fft_length, num_mel_bins=cfg.num_mel_bins,
        upper_edge_hertz=min(7600.0, cfg.sample_rate / 2))
    lengths = jnp.minimum(cfg.feature_frames(jnp.asarray(audio_lengths)), feats.shape[1])
    feats = normalize(feats, lengths)
    if self.specaugment is not None and not deterministic:
      feats = self.specaugment(feats, lengths)
    return feats, lengths

  def encode(self, audio, audio_lengths, *, deterministic: bool = True):
    """audio [B, N], audio_lengths [B] -> (encoder frames [B, F, D], frame_lengths [B])."""
    cfg = self.cfg
    feats, lengths = self.features(audio, audio_lengths, deterministic=deterministic)
    if feats.shape[1] < 7:
      raise ValueError(f'audio of {audio.shape[1]} samples gives {feats.shape[1]} feature frames; the x4 '
                       f'subsampling needs at least 7 (about {cfg.frame_length + 6 * cfg.frame_step} samples).')
    x = self.subsampling(feats)
    F = x.shape[1]
    if F > cfg.max_frames:
      raise ValueError(f'{F} encoder frames exceed max_frames={cfg.max_frames}.')
    frame_lengths = jnp.minimum(subsampled_length(lengths), F).astype(jnp.int32)
    valid = jnp.arange(F)[None, :] < frame_lengths[:, None]
    x = jnp.where(valid[..., None], x, 0.0)
    return self.encoder(x, valid, deterministic=deterministic), frame_lengths

  # -- decoder
  def _embed_targets(self, tokens):
    return self.embed(tokens) * math.sqrt(self.cfg.d_model)

  def decode_targets(self, targets_in, memory, frame_lengths, *, deterministic: bool = True):
    """Teacher-forced decoder: targets_in [B, T] (BOS + targets[:-1]) -> logits [B, T, V]; layers.capture_attention
    reads {'self': [per-layer [B, H, T, T]], 'cross': [per-layer [B, H, T, F]]}."""
    T = targets_in.shape[1]
    if T > self.cfg.max_target_length:
      raise ValueError(f'{T} target positions exceed max_target_length={self.cfg.max_target_length}.')
    memory_mask = masks.padding(frame_lengths, memory.shape[1])
    h = self.decoder(self._embed_targets(targets_in), targets_in != self.cfg.pad_id, memory=memory,
                     memory_mask=memory_mask, deterministic=deterministic)
    return self.output(h)

  def decode_step(self, tokens, memory, memory_mask):
    """One cached decoder step: tokens [R] -> logits [R, V]. Needs decoder.init_cache(R, length)."""
    h = self.decoder(self._embed_targets(tokens[:, None]), memory=memory, memory_mask=memory_mask, decode=True)
    return self.output(h[:, 0])

  def __call__(self, audio, audio_lengths, targets_in, *, deterministic: bool = True):
    """audio [B, N] float samples, audio_lengths [B], targets_in [B, T] (BOS + targets[:-1], 0-padded).

    Returns {'ctc_logits': [B, F, V], 'frame_lengths': [B], 'logits': [B, T, V]}; layers.capture_attention
    reads {'encoder': [...], 'self': [...], 'cross': [...]} (one array per layer; the last 'cross' is the
    decoder's alignment over encoder frames).
    """
    memory, frame_lengths = self.encode(audio, audio_lengths, deterministic=deterministic)
    logits = self.decode_targets(targets_in, memory, frame_lengths, deterministic=deterministic)
    return {'ctc_logits': self.ctc_head(memory), 'frame_lengths': frame_lengths, 'logits': logits}

  def loss(self, outputs, targets, *, ctc_weight: float | None = None, label_smoothing: float = 0.0):
    """hybrid_loss with this model's ids and, by default, its configured ctc_weight."""
    cfg = self.cfg
    return hybrid_loss(outputs, targets, ctc_weight=cfg.ctc_weight if ctc_weight is None else ctc_weight,
                       blank_id=cfg.blank_id, pad_id=cfg.pad_id, eos_id=cfg.eos_id,
                       label_smoothing=label_smoothing)

  # -- inference
  def decode(self, audio, audio_lengths, *, method: str = 'joint', beam_size: int = 4,
             max_length: int | None = None, ctc_weight: float | None = None, alpha: float = 0.0,
             pre_beam: int | None = None):
    """Transcribes audio [B, N] (audio_lengths [B] samples) -> token ids [B, L].

    method: 'ctc_greedy' (best path: repeats merged, blanks removed; no EOS), 'attention_greedy',
      'attention_beam' (beam search over the decoder), or 'joint' (beam search scored by
      (1 - ctc_weight) log p_att + ctc_weight log p_ctc with CTC prefix scores). The attention methods end a
      hypothesis with eos_id; every method pads with 0.
    max_length: L, default the number of encoder frames F (at most max_target_length for the decoder).
    ctc_weight: joint decoding's weight (default cfg.ctc_weight). alpha: GNMT length penalty exponent.
    pre_beam: joint decoding scores only the pre_beam best tokens of the attention decoder per hypothesis
      with CTC (ESPnet's pre-beam, for large vocabularies); default: every token. With pre_beam >= 2 *
      beam_size and ctc_weight = 0 the search equals 'attention_beam'.
    decode_with_alignments also returns the alignments.
    """
    return self._transcribe(audio, audio_lengths, method=method, beam_size=beam_size, max_length=max_length,
                            ctc_weight=ctc_weight, alpha=alpha, pre_beam=pre_beam, alignments=False)[0]

  def decode_with_alignments(self, audio, audio_lengths, *, method: str = 'joint', beam_size: int = 4,
                             max_length: int | None = None, ctc_weight: float | None = None, alpha: float = 0.0,
                             pre_beam: int | None = None):
    """`decode`, and the decoder's cross-attention [B, H, L, F] of each output token over the encoder frames
    (last layer, teacher-forced on the output; 0 at padding), for alignment plots: (tokens, weights)."""
    return self._transcribe(audio, audio_lengths, method=method, beam_size=beam_size, max_length=max_length,
                            ctc_weight=ctc_weight, alpha=alpha, pre_beam=pre_beam, alignments=True)

  def _transcribe(self, audio, audio_lengths, *, method, beam_size, max_length, ctc_weight, alpha, pre_beam,
                  alignments):
    cfg = self.cfg
    if method not in METHODS:
      raise ValueError(f'unknown decoding method {method!r}; known: {METHODS}.')
    _positive('beam_size', beam_size)
    _positive('max_length', max_length, allow_none=True)
    _positive('pre_beam', pre_beam, allow_none=True)
    ctc_weight = cfg.ctc_weight if ctc_weight is None else ctc_weight
    check_ctc_weight(ctc_weight)
    audio = jnp.asarray(audio, jnp.float32)
    audio_lengths = jnp.asarray(audio_lengths, jnp.int32)
    F = int(self.cfg.encoder_frames(audio.shape[1]))
    if max_length is None:
      max_length = F if method == 'ctc_greedy' else min(F, cfg.max_target_length)
    if method != 'ctc_greedy' and max_length > cfg.max_target_length:
      raise ValueError(f'max_length={max_length} exceeds max_target_length={cfg.max_target_length}.')
    pre_beam = None if pre_beam is None or pre_beam >= cfg.vocab_size else pre_beam
    graphdef, state = nnx.split(self)
    tokens, weights = _decode(graphdef, state, audio, audio_lengths, method=method, beam_size=beam_size,
                              max_length=max_length, ctc_weight=jnp.float32(ctc_weight), alpha=float(alpha),
                              pre_beam=pre_beam, alignments=alignments)
    return tokens, weights


def hybrid_loss(outputs, targets, *, ctc_weight: float, blank_id: int = 0, pad_id: int = 0, eos_id: int = 2,
                label_smoothing: float = 0.0):
  """ctc_weight * CTC + (1 - ctc_weight) * attention cross-entropy, each summed over an utterance and
  averaged over the batch (so the two terms are on the same scale).

  outputs: ASR's dict (ctc_logits [B, F, V], frame_lengths [B], logits [B, T, V]).
  targets [B, T]: the decoder's outputs (tokens, eos_id, then pad_id). The CTC labels are the same tokens
    without EOS and padding. Returns (loss, {'ctc': ..., 'attention': ...}).
  """
  check_ctc_weight(ctc_weight)
  targets = jnp.asarray(targets, jnp.int32)
  ctc_logits = outputs['ctc_logits'].astype(jnp.float32)
  F = ctc_logits.shape[1]
  logit_paddings = (jnp.arange(F)[None, :] >= outputs['frame_lengths'][:, None]).astype(jnp.float32)
  label_paddings = ((targets == pad_id) | (targets == eos_id)).astype(jnp.float32)
  per_utterance = optax.ctc_loss(ctc_logits, logit_paddings, targets, label_paddings, blank_id=blank_id)
  # An utterance with fewer frames than its labels need (one per label, one more per repeated pair) has no
  # CTC path; optax then returns a huge finite loss that would swamp the batch. Such utterances are left out
  # of the CTC term, as torch's zero_infinity does, and still train the attention decoder.
  real = label_paddings == 0
  repeats = jnp.sum(real[:, 1:] & (targets[:, 1:] == targets[:, :-1]), axis=-1)
  feasible = jnp.sum(real, axis=-1) + repeats <= outputs['frame_lengths']
  ctc_loss = jnp.sum(jnp.where(feasible, per_utterance, 0.0)) / jnp.maximum(jnp.sum(feasible), 1)
  logits = outputs['logits'].astype(jnp.float32)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  if label_smoothing:
    nll = (1.0 - label_smoothing) * nll - label_smoothing * jnp.mean(jax.nn.log_softmax(logits), axis=-1)
  att_loss = jnp.mean(jnp.sum(jnp.where(targets != pad_id, nll, 0.0), axis=-1))
  loss = ctc_weight * ctc_loss + (1.0 - ctc_weight) * att_loss
  return loss, {'ctc': ctc_loss, 'attention': att_loss}


# ------------------------------------------------------------------------------------------------ decoding
def _search_init(model: ASR, memory, frame_lengths, ctc_logp, ctc_weight, *, max_length, pre_beam=None):
  """decoding.search's init: the decoder's cache, the encoder output and, for joint decoding (ctc_logp given),
  the CTC prefix scorer."""
  B, F, _ = memory.shape
  model.decoder.init_cache(B, max_length)  # tiled to B * W rows with the rest of the state
  state = {'memory': memory, 'memory_mask': masks.padding(frame_lengths, F)}
  if ctc_logp is not None:
    K = model.cfg.vocab_size if pre_beam is None else pre_beam
    state['ctc'] = ctc.joint_init(ctc_logp, frame_lengths, ctc_weight, candidates=K, blank_id=model.cfg.blank_id)
  return state


def _search_step(model: ASR, tokens, state):
  """decoding.search's step: the decoder's log-probabilities, or joint CTC/attention scores."""
  cfg = model.cfg
  logits = model.decode_step(tokens, state['memory'], state['memory_mask'])
  att = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  if 'ctc' not in state:
    return att, state
  # Tokens CTC never emits: padding, BOS and the blank.
  not_ctc = jnp.zeros((cfg.vocab_size,), bool).at[jnp.asarray([cfg.pad_id, cfg.bos_id, cfg.blank_id])].set(True)
  scores, cs = ctc.joint_scores(state['ctc'], att, tokens, not_ctc=not_ctc, blank_id=cfg.blank_id,
                                eos_id=cfg.eos_id, pad_id=cfg.pad_id)
  return scores, dict(state, ctc=cs)


def _search(model: ASR, memory, frame_lengths, ctc_logp, *, method, beam_size, max_length, ctc_weight, alpha,
            pre_beam):
  cfg = model.cfg
  joint = method == 'joint'
  return decoding.search(model, _search_init, _search_step, memory, frame_lengths, ctc_logp if joint else None,
                         ctc_weight, beam_size=1 if method == 'attention_greedy' else beam_size,
                         max_length=max_length, alpha=alpha, bos_id=cfg.bos_id, eos_id=cfg.eos_id,
                         excluded=(cfg.pad_id, cfg.blank_id), options={'pre_beam': pre_beam if joint else None})


@functools.partial(jax.jit, static_argnames=('graphdef', 'method', 'beam_size', 'max_length', 'alpha', 'pre_beam',
                                             'alignments'))
def _decode(graphdef, state, audio, audio_lengths, *, method, beam_size, max_length, ctc_weight, alpha, pre_beam,
            alignments):
  """(tokens [B, L], the last decoder layer's cross-attention [B, H, L, F] with alignments, else None)."""
  model = nnx.merge(graphdef, state)
  cfg = model.cfg
  memory, frame_lengths = model.encode(audio, audio_lengths)
  ctc_logp = jax.nn.log_softmax(model.ctc_head(memory).astype(jnp.float32), axis=-1)
  if method == 'ctc_greedy':
    tokens = ctc.greedy(ctc_logp, frame_lengths, blank_id=cfg.blank_id, pad_id=cfg.pad_id)[0]
    F = tokens.shape[1]
    tokens = tokens[:, :max_length] if max_length <= F else jnp.pad(tokens, ((0, 0), (0, max_length - F)))
  else:
    tokens = _search(model, memory, frame_lengths, ctc_logp, method=method, beam_size=beam_size,
                     max_length=max_length, ctc_weight=ctc_weight, alpha=alpha, pre_beam=pre_beam)
  if not alignments:
    return tokens, None
  targets_in = jnp.concatenate([jnp.full((tokens.shape[0], 1), cfg.bos_id, tokens.dtype), tokens[:, :-1]], 1)
  _, maps = layers.capture_attention(ASR.decode_targets, model, targets_in, memory, frame_lengths)
  cross = maps['cross'][-1]
  return tokens, jnp.where((tokens != cfg.pad_id)[:, None, :, None], cross, 0.0)
