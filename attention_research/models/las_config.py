"""LASConfig: the listen-attend-spell recogniser's sizes and choices, validated on construction.

Dimension letters as in models/las.py.
"""

from __future__ import annotations

import dataclasses

from attention_research.layers import audio_frontend
from attention_research.layers.las_attention import check_attention
from attention_research.models._checks import check_int, check_positive
from attention_research.models.asr_config import check_ctc_weight


@dataclasses.dataclass(frozen=True)
class LASConfig:
  """Configuration of `LAS`.

  vocab_size: V, output tokens including pad, bos, eos and the CTC blank (blank_id may equal pad_id).
  sample_rate, frame_length, frame_step, fft_length, num_mel_bins: the log-mel front end (as ASRConfig).
  specaugment and its mask sizes: as ASRConfig.
  encoder_hidden: per direction of each bidirectional LSTM layer (the encoder's output is 2 * encoder_hidden).
  num_encoder_layers, pyramid_layers: the top pyramid_layers of the num_encoder_layers each read pairs of the
    layer below's frames concatenated, halving time (Chan et al. 2016: 3 of 4, x8).
  embed_size, decoder_hidden, num_decoder_layers: the LSTM speller.
  attention: 'dot', 'additive', 'location', 'coverage' or 'mocha' (layers.las_attention); attention_size: D.
  location_filters, location_kernel: the location-aware convolution (C filters of odd width W).
  chunk_size, mocha_bias, mocha_noise: MoChA's chunk w, the initial monotonic energy offset r, and the std of the
    Gaussian noise added to the monotonic energies in training (0: none).
  ctc_weight: weight of the CTC branch on the encoder output in the joint loss and joint decoding, in [0, 1];
    0 builds no CTC branch at all (attention only; the CTC decoding methods then raise).
  """
  vocab_size: int
  num_mel_bins: int = 40
  sample_rate: int = 16_000
  frame_length: int = 400
  frame_step: int = 160
  fft_length: int = 512
  specaugment: bool = False
  num_freq_masks: int = 2
  freq_mask_width: int = 8
  num_time_masks: int = 2
  time_mask_width: int = 20
  time_mask_ratio: float = 0.05
  encoder_hidden: int = 128
  num_encoder_layers: int = 3
  pyramid_layers: int = 2
  embed_size: int = 64
  decoder_hidden: int = 128
  num_decoder_layers: int = 1
  attention: str = 'location'
  attention_size: int = 128
  location_filters: int = 10
  location_kernel: int = 31
  chunk_size: int = 4
  mocha_bias: float = -1.0
  mocha_noise: float = 1.0
  dropout_rate: float = 0.1
  ctc_weight: float = 0.3
  max_target_length: int = 256
  pad_id: int = 0
  bos_id: int = 1
  eos_id: int = 2
  blank_id: int = 0

  def __post_init__(self):
    for name in ('vocab_size', 'num_mel_bins', 'sample_rate', 'frame_length', 'frame_step', 'fft_length',
                 'encoder_hidden', 'num_encoder_layers', 'embed_size', 'decoder_hidden', 'num_decoder_layers',
                 'attention_size', 'location_filters', 'location_kernel', 'chunk_size', 'max_target_length'):
      check_positive(name, getattr(self, name))
    for name in ('num_freq_masks', 'freq_mask_width', 'num_time_masks', 'time_mask_width', 'pyramid_layers'):
      check_int(name, getattr(self, name), minimum=0)
    check_attention(self.attention)
    if self.pyramid_layers > self.num_encoder_layers:
      raise ValueError(f'pyramid_layers={self.pyramid_layers} exceeds num_encoder_layers={self.num_encoder_layers}.')
    if self.location_kernel % 2 == 0:
      raise ValueError(f'location_kernel must be odd (centred); got {self.location_kernel}.')
    check_ctc_weight(self.ctc_weight)
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f'dropout_rate must be in [0, 1); got {self.dropout_rate!r}.')
    if not 0.0 <= self.time_mask_ratio <= 1.0:
      raise ValueError(f'time_mask_ratio must be in [0, 1]; got {self.time_mask_ratio!r}.')
    if self.mocha_noise < 0:
      raise ValueError(f'mocha_noise must be >= 0; got {self.mocha_noise!r}.')
    if self.specaugment and self.freq_mask_width > self.num_mel_bins:
      raise ValueError(f'freq_mask_width={self.freq_mask_width} exceeds num_mel_bins={self.num_mel_bins}.')
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
      raise ValueError(f'blank_id={self.blank_id} must differ from bos_id={self.bos_id} and eos_id={self.eos_id}.')

  @property
  def reduction(self) -> int:
    return 2 ** self.pyramid_layers

  def feature_frames(self, num_samples):
    """Feature frames of num_samples samples (int or array) under the front end's framing."""
    return audio_frontend.num_frames(num_samples, frame_length=self.frame_length, frame_step=self.frame_step)

  def encoder_frames(self, num_samples):
    """Encoder frames F of num_samples samples: feature frames halved (rounded down) per pyramid layer."""
    return self.feature_frames(num_samples) // self.reduction
