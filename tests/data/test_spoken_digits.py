"""spoken_digits: audio that plausibly says its transcript."""

import numpy as np
import pytest

from attention_research.data.builders import spoken_digits
from attention_research.data.speech.synthesis import synthesize


def test_transcripts_are_digit_words(build):
  ex = build('spoken_digits').examples['train']
  for transcript, digits in zip(ex['transcript'], ex['digits']):
    assert transcript == spoken_digits.transcript(digits)
    assert 1 <= len(digits) <= build('spoken_digits').builder.builder_config.max_digits


def test_audio_length_is_plausible_for_its_transcript(build):
  built = build('spoken_digits')
  config = built.builder.builder_config
  ex = built.examples['train']
  words, seconds = [], []
  for audio, transcript, rate in zip(ex['audio'], ex['transcript'], ex['rate']):
    n = len(transcript.split())
    duration = len(audio) / spoken_digits.SAMPLE_RATE
    speech = duration - 2 * config.max_pad_seconds
    # espeak reads a digit word in roughly 60/rate seconds; allow a generous band.
    assert 0.4 * n * 60 / rate - 0.1 < duration, (transcript, duration)
    assert speech < 2.5 * n * 60 / rate + 0.4, (transcript, duration)
    assert np.abs(audio).max() > 1000, 'not silent'
    words.append(n)
    seconds.append(duration)
  assert np.corrcoef(words, seconds)[0, 1] > 0.8


def test_noise_follows_the_snr(build):
  ex = build('spoken_digits').examples['validation']
  for audio, snr in zip(ex['audio'], ex['snr_db']):
    x = audio.astype(np.float64)
    # The 5% quietest 10 ms frames are noise only; the loudest hold speech.
    frames = x[:len(x) // 160 * 160].reshape(-1, 160)
    power = np.sort((frames**2).mean(axis=1))
    quiet, loud = power[:max(1, len(power) // 20)].mean(), power[-len(power) // 4:].mean()
    assert 10 * np.log10(loud / quiet) > snr - 3


def test_synthesis_is_bit_identical_across_processes():
  utterances = [{'text': 'three one four', 'voice': v, 'rate': 180, 'pitch': 50, 'seed': i}
                for i, v in enumerate(['en', 'en+f2', 'en+klatt', 'en-us'])]
  first, rate = synthesize(utterances)
  second, _ = synthesize(utterances, max_workers=1)
  assert rate == 22050
  assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_unknown_voice_is_an_error():
  with pytest.raises(RuntimeError, match='no voice'):
    synthesize([{'text': 'one', 'voice': 'xx-nonexistent', 'rate': 180, 'pitch': 50, 'seed': 0}])


def test_batches_hold_16khz_float_audio(build):
  task = build('spoken_digits').task
  batch = next(task.batches('test', batch_size=4))
  assert task.info['sample_rate'] == 16000
  assert batch['audio'].shape[1] == task.info['max_audio_length']
  for row, n in zip(batch['audio'], batch['audio_lengths']):
    assert np.abs(row).max() <= 1.0
    assert (row[n:] == 0).all()
  text = task.tokenizer.decode(batch['targets'][0])
  assert set(text.split()) <= set(spoken_digits.DIGIT_WORDS)


def test_more_digit_strings_than_exist_is_a_clear_error(tmp_path):
  from attention_research import data
  with pytest.raises(ValueError, match='only 110 exist'):
    data.load_task('spoken_digits', size='small', data_dir=str(tmp_path), max_digits=2, num_train=100,
                   num_validation=10, num_test=10)


def test_test_split_options_change_only_the_test_conditions(build, tmp_path):
  """test_snr_db, test_voices and test_rates: the test split speaks the same digit strings at that SNR, with
  those voices and rates; the other splits are bit-identical to the plain build."""
  from attention_research.data import cache, loading  # pylint: disable=g-import-not-at-top
  plain = build('spoken_digits').examples
  config = loading.builtin_config('spoken_digits', 'small', test_snr_db=0.0, test_voices=('en+m3', 'en-us+f4'),
                                  test_rates=(300, 320))
  _, held_out = cache.load_builtin('spoken_digits', config, str(tmp_path))
  test = held_out['test']
  assert list(test['digits']) == list(plain['test']['digits'])
  assert set(np.asarray(test['snr_db']).tolist()) == {0.0}
  assert set(test['voice']) <= {'en+m3', 'en-us+f4'}
  assert all(300 <= r <= 320 for r in test['rate'])
  for split in ('train', 'validation'):
    assert all(np.array_equal(a, b) for a, b in zip(held_out[split]['audio'], plain[split]['audio']))
  # Noise at 0 dB: the quietest frames are far louder than in the plain build's 10-30 dB test audio.
  quiet = lambda a: np.sort((a[:len(a) // 160 * 160].astype(np.float64).reshape(-1, 160) ** 2).mean(1))[:3].mean()
  assert np.median([quiet(a) / quiet(b) for a, b in zip(test['audio'], plain['test']['audio'])]) > 3.0
