"""The speech front end: log-mel spectrograms in jax.numpy, matching tf.signal, usable inside jit.

No TensorFlow here: ASR models call this on device inside their jitted step (data code may import it too).
The definition is tf.signal's: a periodic Hann window, frames without end
padding, |rfft| (to the power `power`), the triangular HTK-mel filterbank of
`tf.signal.linear_to_mel_weight_matrix`, then log(mel + log_offset).
tests/data/test_audio_features.py checks it against tf.signal to 1e-4.

Dimensions: B batch (any leading dims), N samples, F frames, K fft bins, M mel bins.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0


def num_frames(num_samples, *, frame_length: int = 400, frame_step: int = 160):
  """Frames `log_mel_spectrogram` makes from `num_samples` samples (int or array).

  With padded batches, `num_frames(audio_lengths)` gives each row's valid frames.
  """
  if isinstance(num_samples, (int, np.integer)):
    return max(0, 1 + (int(num_samples) - frame_length) // frame_step)
  n = jnp.asarray(num_samples) if not isinstance(num_samples, np.ndarray) else num_samples
  xp = np if isinstance(n, np.ndarray) else jnp
  return xp.maximum(0, 1 + (n - frame_length) // frame_step)


def _hertz_to_mel(hz):
  return _MEL_HIGH_Q * np.log(1.0 + hz / _MEL_BREAK_HZ)


@functools.lru_cache(maxsize=16)
def mel_weight_matrix(num_mel_bins: int, num_spectrogram_bins: int, sample_rate: float,
                      lower_edge_hertz: float, upper_edge_hertz: float) -> np.ndarray:
  """[K, M] float32, as tf.signal.linear_to_mel_weight_matrix (computed in float32 like it)."""
  if not 0.0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2:
    raise ValueError(f'Need 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate/2, got '
                     f'{lower_edge_hertz}, {upper_edge_hertz}, sample_rate={sample_rate}.')
  f32 = np.float32
  # The DC bin gets no weight, as in tf.signal.
  linear_hz = np.linspace(f32(0.0), f32(sample_rate / 2), num_spectrogram_bins, dtype=f32)[1:]
  bins_mel = _hertz_to_mel(linear_hz).astype(f32)[:, None]
  edges = np.linspace(_hertz_to_mel(f32(lower_edge_hertz)), _hertz_to_mel(f32(upper_edge_hertz)),
                      num_mel_bins + 2, dtype=f32)
  lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
  lower_slopes = (bins_mel - lower) / (center - lower)
  upper_slopes = (upper - bins_mel) / (upper - center)
  weights = np.maximum(f32(0.0), np.minimum(lower_slopes, upper_slopes)).astype(f32)
  return np.pad(weights, [[1, 0], [0, 0]])


def _periodic_hann(n: int) -> np.ndarray:
  return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def stft_magnitude(waveform, *, frame_length: int = 400, frame_step: int = 160, fft_length: int = 512):
  """|STFT| [..., F, K] of [..., N], as abs(tf.signal.stft(...)) with pad_end=False."""
  waveform = jnp.asarray(waveform, jnp.float32)
  n = waveform.shape[-1]
  frames = num_frames(n, frame_length=frame_length, frame_step=frame_step)
  if frames == 0:
    raise ValueError(f'{n} samples are fewer than one frame of {frame_length}.')
  index_FL = np.arange(frames)[:, None] * frame_step + np.arange(frame_length)[None, :]
  framed = waveform[..., index_FL] * _periodic_hann(frame_length)
  return jnp.abs(jnp.fft.rfft(framed, n=fft_length, axis=-1))


def log_mel_spectrogram(waveform, *, sample_rate: int = 16000, frame_length: int = 400, frame_step: int = 160,
                        fft_length: int = 512, num_mel_bins: int = 80, lower_edge_hertz: float = 20.0,
                        upper_edge_hertz: float = 7600.0, power: float = 1.0, log_offset: float = 1e-6):
  """log(mel(|STFT|**power) + log_offset): [..., N] float waveform -> [..., F, M] float32.

  Defaults: 25 ms windows every 10 ms at 16 kHz, 80 mel bins. Frames that
  read padding are still computed; mask them with `num_frames(lengths)`.
  """
  magnitude_FK = stft_magnitude(waveform, frame_length=frame_length, frame_step=frame_step, fft_length=fft_length)
  if power != 1.0:
    magnitude_FK = magnitude_FK**power
  weights_KM = mel_weight_matrix(num_mel_bins, fft_length // 2 + 1, float(sample_rate), float(lower_edge_hertz),
                                 float(upper_edge_hertz))
  mel_FM = jnp.tensordot(magnitude_FK, jnp.asarray(weights_KM), axes=1)
  return jnp.log(mel_FM + log_offset)
