"""Additive white Gaussian noise at a given signal-to-noise ratio, deterministic from a seed.

The noise is rescaled so that its power over an utterance's real samples is exactly the signal's power divided
by 10^(snr_db / 10): the requested ratio holds for every utterance, not only on average.
"""

from __future__ import annotations

import numpy as np


def add_noise(audio, lengths, snr_db: float, *, seed) -> np.ndarray:
  """audio [B, N] float (zero-padded), lengths [B] real samples -> noisy audio [B, N] (padding stays 0).

  seed: an int or a sequence of ints (e.g. (seed, batch index)); the same seed gives the same noise."""
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 2:
    raise ValueError(f'add_noise expects audio [B, N]; got shape {audio.shape}.')
  lengths = np.asarray(lengths, np.int64)
  if lengths.shape != audio.shape[:1] or np.any(lengths < 0) or np.any(lengths > audio.shape[1]):
    raise ValueError(f'lengths {lengths.tolist()} do not fit audio of shape {audio.shape}.')
  if not np.isfinite(snr_db):
    raise ValueError(f'snr_db must be finite, got {snr_db!r}.')
  rng = np.random.default_rng(np.atleast_1d(seed).tolist() + [int(round(1000 * snr_db)) % (1 << 32)])
  out = audio.copy()
  for b, n in enumerate(lengths):
    if n == 0:
      continue
    signal = audio[b, :n].astype(np.float64)
    noise = rng.standard_normal(n)
    noise -= noise.mean()
    power = np.mean(signal ** 2)
    noise *= np.sqrt(power / 10.0 ** (snr_db / 10.0) / max(np.mean(noise ** 2), 1e-30))
    out[b, :n] = (signal + noise).astype(np.float32)
  return out


def snr_db(clean, noisy) -> float:
  """The measured SNR (dB) of noisy against clean, both [n] real samples."""
  clean = np.asarray(clean, np.float64)
  noise = np.asarray(noisy, np.float64) - clean
  return float(10.0 * np.log10(np.mean(clean ** 2) / np.mean(noise ** 2)))
