"""log_mel_spectrogram (jax.numpy) against tf.signal."""

import jax
import numpy as np
import pytest
import tensorflow as tf

from attention_research.layers import audio_frontend


def _tf_log_mel(x, *, sample_rate, frame_length, frame_step, fft_length, num_mel_bins, lower, upper, power):
  magnitude = tf.abs(tf.signal.stft(x, frame_length, frame_step, fft_length))
  weights = tf.signal.linear_to_mel_weight_matrix(num_mel_bins, fft_length // 2 + 1, sample_rate, lower, upper)
  return tf.math.log(tf.tensordot(magnitude**power, weights, 1) + 1e-6).numpy()


def _speech_like(n, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(n) / 16000
  tone = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.2 * np.sin(2 * np.pi * 2 * t))) * np.sin(2 * np.pi * 3 * t)
  return (tone + 0.02 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize('params', [
    dict(sample_rate=16000, frame_length=400, frame_step=160, fft_length=512, num_mel_bins=80, lower=20., upper=7600.,
         power=1.0),
    dict(sample_rate=16000, frame_length=256, frame_step=128, fft_length=256, num_mel_bins=40, lower=0., upper=8000.,
         power=2.0),
])
def test_matches_tf_signal(params):
  x = np.stack([_speech_like(16000), 0.05 * _speech_like(16000, seed=1)])
  ours = jax.jit(lambda w: audio_frontend.log_mel_spectrogram(
      w, sample_rate=params['sample_rate'], frame_length=params['frame_length'], frame_step=params['frame_step'],
      fft_length=params['fft_length'], num_mel_bins=params['num_mel_bins'], lower_edge_hertz=params['lower'],
      upper_edge_hertz=params['upper'], power=params['power']))(x)
  reference = _tf_log_mel(x, **params)
  assert ours.shape == reference.shape
  np.testing.assert_allclose(np.asarray(ours), reference, atol=1e-4, rtol=1e-4)


def test_on_spoken_digits_audio(build):
  batch = next(build('spoken_digits').task.batches('train', batch_size=2))
  ours = np.asarray(audio_frontend.log_mel_spectrogram(batch['audio']))
  reference = _tf_log_mel(batch['audio'], sample_rate=16000, frame_length=400, frame_step=160, fft_length=512,
                          num_mel_bins=80, lower=20., upper=7600., power=1.0)
  np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=1e-4)


def test_num_frames():
  for n in (0, 399, 400, 401, 560, 16000):
    x = np.zeros(max(n, 1), np.float32)
    expected = tf.signal.stft(x, 400, 160, 512).shape[0] if n >= 400 else 0
    assert audio_frontend.num_frames(n) == expected
  lengths = np.asarray([400, 16000, 10])
  assert audio_frontend.num_frames(lengths).tolist() == [1, 98, 0]
  assert np.asarray(jax.jit(audio_frontend.num_frames)(lengths)).tolist() == [1, 98, 0]


def test_module_does_not_import_tensorflow():
  with open(audio_frontend.__file__) as f:
    source = f.read()
  assert 'import tensorflow' not in source and 'from tensorflow' not in source
