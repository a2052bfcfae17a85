"""ASRConfig: the hybrid CTC/attention recogniser's sizes and choices, validated on construction.

Dimension letters as in models/asr.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from flax.core import FrozenDict

from attention_research import attention
from attention_research.layers import audio_frontend
from attention_research.models._checks import check_int, check_positive, freeze_options
from attention_research.models.asr_frontend import subsampled_length
from attention_research.models.transformer import TransformerConfig

ENCODERS = ('transformer', 'conformer')
POSITIONAL = ('sinusoidal', 'rope', 'none')
METHODS = ('ctc_greedy', 'attention_greedy', 'attention_beam', 'ctc_prefix_beam', 'rescoring', 'joint')

def check_ctc_weight(ctc_weight):
  """ctc_weight must be a number in [0, 1] (checked when it is a Python number, not a traced value)."""
  if isinstance(ctc_weight, bool) or (isinstance(ctc_weight, (int, float)) and not 0.0 <= ctc_weight <= 1.0):
    raise ValueError(f'ctc_weight must be in [0, 1]; got {ctc_weight!r}.')



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
  encoder_attention: str = attention.DEFAULT_VARIANT
  encoder_attention_options: Mapping[str, Any] = dataclasses.field(default_factory=FrozenDict)
  decoder_attention: str = attention.DEFAULT_VARIANT
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
      check_positive(name, getattr(self, name))
    for name in ('mlp_dim', 'subsampling_channels'):
      check_positive(name, getattr(self, name), allow_none=True)
    for name in ('num_freq_masks', 'freq_mask_width', 'num_time_masks', 'time_mask_width'):
      check_int(name, getattr(self, name), minimum=0)
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
    return audio_frontend.num_frames(num_samples, frame_length=self.frame_length, frame_step=self.frame_step)

  def encoder_frames(self, num_samples):
    """Encoder frames F of num_samples samples: feature frames, then x4 subsampling."""
    return subsampled_length(self.feature_frames(num_samples))
