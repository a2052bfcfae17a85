"""The ASR front end after the log-mel spectrogram (layers.audio_frontend): per-utterance normalisation,
SpecAugment and the x4 convolutional subsampling.

Dimension letters: B batch, n feature frames, M mel bins, F encoder frames, C channels, D d_model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def subsampled_length(n):
  """Frames after the two unpadded stride-2 3x3 convolutions: ((n - 1) // 2 - 1) // 2, at least 0."""
  if isinstance(n, int):
    return max(((n - 1) // 2 - 1) // 2, 0)
  n = jnp.asarray(n)
  return jnp.maximum(((n - 1) // 2 - 1) // 2, 0)


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
  """Frequency and time masking (Park et al. 2019) of normalised features [B, n, M]; no time warping.

  num_freq_masks bands of width <= freq_mask_width bins; num_time_masks bands of width <= min(time_mask_width,
  time_mask_ratio * utterance frames); drawn from the 'specaugment' rng stream ('dropout' or 'default' when
  absent) and set to 0 (the utterance mean after normalisation).
  """

  def __init__(self, num_freq_masks: int, freq_mask_width: int, num_time_masks: int, time_mask_width: int,
               time_mask_ratio: float, *, rngs: nnx.Rngs):
    self.num_freq_masks, self.freq_mask_width = num_freq_masks, freq_mask_width
    self.num_time_masks, self.time_mask_width, self.time_mask_ratio = num_time_masks, time_mask_width, time_mask_ratio
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
    B, n, M = features.shape
    kf, kt = jax.random.split(self.rngs())
    freq = self._bands(kf, self.num_freq_masks, jnp.full((B,), self.freq_mask_width), jnp.full((B,), M), M)
    max_t = jnp.minimum(self.time_mask_width, jnp.floor(self.time_mask_ratio * lengths).astype(jnp.int32))
    time = self._bands(kt, self.num_time_masks, max_t, jnp.maximum(lengths, 0), n)
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
