"""spoken_digits: digit strings spoken by espeak-ng, with noise, at 16 kHz.

Each utterance is 1 to 7 digits read as words ("three one four") by one of
several espeak-ng voices at a random speed and pitch, padded with a little
silence, resampled from espeak's 22.05 kHz to 16 kHz, and mixed with white
noise at a signal-to-noise ratio drawn from [snr_min_db, snr_max_db].
Transcripts are unique across the whole dataset, so the test set holds only
digit strings never heard in training.

Robustness options (builder config fields, e.g. through data overrides; each
variant is its own dataset): test_snr_db speaks the whole test split at one
SNR (white noise, deterministic from the seed); test_voices and test_rates
(min, max words per minute) give the test split voices or speaking rates of
its own, such as ones never used in training. Every other field of every
utterance, and the train and validation splits, stay as without them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow_datasets as tfds
from scipy.signal import resample_poly

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Dense, Ragged
from attention_research.data.speech.synthesis import synthesize
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import char_tokenizer, encode_all, from_json

SAMPLE_RATE = 16_000
DIGIT_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')
ALPHABET = " abcdefghijklmnopqrstuvwxyz'"
VOICES = ('en', 'en-us', 'en-gb-scotland', 'en-gb-x-rp', 'en-029', 'en+f2', 'en+m3', 'en-us+f4', 'en+klatt')


def transcript(digits: str) -> str:
  return ' '.join(DIGIT_WORDS[int(d)] for d in digits)


@dataclasses.dataclass(eq=False)
class SpokenDigitsConfig(_base.TaskConfig):
  min_digits: int = 1
  max_digits: int = 7
  voices: tuple[str, ...] = VOICES
  min_rate: int = 140          # words per minute
  max_rate: int = 220
  min_pitch: int = 30          # espeak's 0-99 scale
  max_pitch: int = 70
  snr_min_db: float = 10.0
  snr_max_db: float = 30.0
  max_pad_seconds: float = 0.15  # silence added before and after, each at most this
  test_snr_db: float | None = None  # the test split's SNR (default: drawn like the others')
  test_voices: tuple[str, ...] = ()  # the test split's voices (default: `voices`)
  test_rates: tuple[int, ...] = ()  # (min, max) words per minute of the test split (default: min/max_rate)


class SpokenDigits(_base.InMemoryBuilder):
  """Spoken digit strings (espeak-ng voices, noise) for speech recognition."""

  BUILDER_CONFIGS = [
      SpokenDigitsConfig(name='default', num_train=2000, num_validation=200, num_test=200,
                         description='2400 utterances of 1 to 7 digits, 9 voices, 10-30 dB SNR.'),
      SpokenDigitsConfig(name='small', max_digits=4, num_train=64, num_validation=16, num_test=16,
                         description='For tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'audio': tfds.features.Audio(shape=(None,), dtype=np.int16, sample_rate=SAMPLE_RATE),
        'transcript': tfds.features.Text(),
        'digits': tfds.features.Text(),
        'voice': tfds.features.Text(),
        'rate': tfds.features.Scalar(np.int32),
        'pitch': tfds.features.Scalar(np.int32),
        'snr_db': tfds.features.Scalar(np.float32),
    })

  def metadata(self):
    return {'tokenizer': char_tokenizer(ALPHABET).to_json()}

  def _check(self):
    c = self.builder_config
    if not 1 <= c.min_digits <= c.max_digits <= 12:
      raise ValueError(f'Need 1 <= min_digits <= max_digits <= 12, got {c.min_digits}, {c.max_digits}.')
    if not c.voices:
      raise ValueError('At least one voice is needed.')
    if c.min_rate > c.max_rate or c.min_pitch > c.max_pitch or c.snr_min_db > c.snr_max_db:
      raise ValueError('Each min must be <= its max (rate, pitch, snr).')
    if not (80 <= c.min_rate and c.max_rate <= 450):
      raise ValueError(f'espeak-ng speaks 80 to 450 words per minute; got [{c.min_rate}, {c.max_rate}].')
    if c.test_rates and (len(c.test_rates) != 2 or not 80 <= c.test_rates[0] <= c.test_rates[1] <= 450):
      raise ValueError(f'test_rates must be (min, max) within [80, 450] words per minute; got {c.test_rates}.')
    if c.test_snr_db is not None and not math.isfinite(c.test_snr_db):
      raise ValueError(f'test_snr_db must be finite; got {c.test_snr_db}.')
    if not (0 <= c.min_pitch and c.max_pitch <= 99):
      raise ValueError(f'Pitch is on a 0-99 scale; got [{c.min_pitch}, {c.max_pitch}].')

  def make_splits(self):
    self._check()
    c = self.builder_config
    sizes = c.sizes()
    lengths = list(range(c.min_digits, c.max_digits + 1))
    draws = sampling.sample_unique_by_length(sampling.rng(c.seed, 'spoken_digits', 'strings'),
                                             sum(sizes.values()), [10**n for n in lengths])
    strings = [str(offset).zfill(lengths[i]) for i, offset in draws]
    plan = []
    for split, chunk in sampling.cut(strings, sizes).items():
      gen = sampling.rng(c.seed, 'spoken_digits', split)
      for digits in chunk:
        plan.append({
            'split': split, 'digits': digits, 'text': transcript(digits),
            'voice': c.voices[int(gen.integers(len(c.voices)))],
            'rate': int(gen.integers(c.min_rate, c.max_rate + 1)),
            'pitch': int(gen.integers(c.min_pitch, c.max_pitch + 1)),
            'seed': int(gen.integers(2**31 - 1)),
            'snr_db': float(gen.uniform(c.snr_min_db, c.snr_max_db)),
            'pad': gen.uniform(0, c.max_pad_seconds, size=2).tolist(),
        })
    held_out = sampling.rng(c.seed, 'spoken_digits', 'test-conditions')  # its own draws: nothing else moves
    for u in plan:
      if u['split'] != 'test':
        continue
      voice, rate = int(held_out.integers(max(len(c.test_voices), 1))), int(held_out.integers(80, 451))
      if c.test_voices:
        u['voice'] = c.test_voices[voice]
      if c.test_rates:
        u['rate'] = int(c.test_rates[0] + rate % (c.test_rates[1] - c.test_rates[0] + 1))
      if c.test_snr_db is not None:
        u['snr_db'] = float(c.test_snr_db)
    audio, espeak_rate = synthesize([{k: u[k] for k in ('text', 'voice', 'rate', 'pitch', 'seed')} for u in plan])
    out = {split: [] for split in sampling.SPLITS}
    for u, raw in zip(plan, audio):
      out[u['split']].append({
          'audio': finish(raw, espeak_rate, u['snr_db'], u['pad'], seed=u['seed']),
          'transcript': u['text'], 'digits': u['digits'], 'voice': u['voice'],
          'rate': u['rate'], 'pitch': u['pitch'], 'snr_db': u['snr_db'],
      })
    return out


def finish(raw: np.ndarray, rate: int, snr_db: float, pad_seconds, *, seed: int) -> np.ndarray:
  """Resamples to 16 kHz, pads with silence and adds noise at `snr_db`; int16 out."""
  if len(raw) == 0:
    raise RuntimeError('espeak-ng produced no audio.')
  g = math.gcd(SAMPLE_RATE, rate)
  speech = resample_poly(raw.astype(np.float64) / 32768.0, SAMPLE_RATE // g, rate // g)
  power = float(np.mean(speech**2))
  before, after = (int(round(s * SAMPLE_RATE)) for s in pad_seconds)
  x = np.concatenate([np.zeros(before), speech, np.zeros(after)])
  noise = np.random.default_rng([seed, 7]).standard_normal(len(x))
  x = x + noise * math.sqrt(power / 10**(snr_db / 10))
  peak = float(np.max(np.abs(x)))
  if peak > 0.99:  # never clip; a uniform gain keeps the SNR
    x *= 0.99 / peak
  return np.round(x * 32767).astype(np.int16)


def make_task(builder, examples) -> Task:
  tokenizer = from_json(builder.info.metadata['tokenizer'])
  columns = {}
  for split, ex in examples.items():
    columns[split] = {
        'audio': Ragged(ex['audio'], dtype=np.float32, storage_dtype=np.int16, scale=1 / 32768),
        'audio_lengths': Dense(np.asarray([len(a) for a in ex['audio']], np.int32)),
        'targets': Ragged(encode_all(tokenizer, ex['transcript'], add_eos=True), dtype=np.int32),
    }
  lengths = pad_lengths(columns)
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'sample_rate': SAMPLE_RATE, 'max_audio_length': lengths['audio'],
          'max_target_length': lengths['targets'], 'pad_lengths': lengths, 'metrics': ('cer', 'wer')}
  return Task(name='spoken_digits', kind='asr', info=info, tokenizers={'targets': tokenizer}, columns=columns,
              length_key='audio')
