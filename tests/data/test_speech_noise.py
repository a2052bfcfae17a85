"""White noise at a given SNR: the requested power ratio on every utterance, deterministic from the seed."""

import numpy as np
import pytest

from attention_research.data.speech import noise


def _audio():
  t = np.arange(1600) / 16000
  audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.05 * np.sin(2 * np.pi * 900 * t)]).astype(np.float32)
  audio[1, 1000:] = 0.0
  return audio, np.array([1600, 1000])


@pytest.mark.parametrize('snr', [20.0, 10.0, 5.0, 0.0, -3.0])
def test_noise_has_the_requested_power_ratio(snr):
  audio, lengths = _audio()
  noisy = noise.add_noise(audio, lengths, snr, seed=(0, 1))
  for b, n in enumerate(lengths):
    np.testing.assert_allclose(noise.snr_db(audio[b, :n], noisy[b, :n]), snr, atol=1e-3)
  assert np.all(noisy[1, 1000:] == 0.0)  # padding stays silent


def test_noise_is_deterministic_from_the_seed():
  audio, lengths = _audio()
  a = noise.add_noise(audio, lengths, 10.0, seed=(3, 0))
  np.testing.assert_array_equal(a, noise.add_noise(audio, lengths, 10.0, seed=(3, 0)))
  assert not np.array_equal(a, noise.add_noise(audio, lengths, 10.0, seed=(3, 1)))
  assert not np.array_equal(a - audio, noise.add_noise(audio, lengths, 5.0, seed=(3, 0)) - audio)


def test_bad_input_raises():
  audio, lengths = _audio()
  with pytest.raises(ValueError, match='lengths'):
    noise.add_noise(audio, [2000, 10], 10.0, seed=0)
  with pytest.raises(ValueError, match=r'\[B, N\]'):
    noise.add_noise(audio[0], lengths[:1], 10.0, seed=0)
