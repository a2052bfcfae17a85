"""number_translation: English number words -> German number words.

"twenty-three" -> "dreiundzwanzig": real language with reordering (German
says the units before the tens), so encoder-decoder alignments are worth
plotting. Texts come from `num2words`; numbers are drawn without replacement,
uniformly over their number of digits so that short numbers are present.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np
import tensorflow_datasets as tfds
from num2words import num2words

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import PieceTokenizer, encode_all, from_json

# English: words (a leading space kept on the piece), hyphens and commas.
_EN_PIECE = re.compile(r' ?[a-z]+|[-,]')
# Every number below a million is written with the pieces of these numbers.
_PATTERNS = (0, 1, 21, 100, 101, 121)
_CANONICAL = sorted(set(range(0, 1000)) | {k * 1000 + r for k in _PATTERNS[1:] for r in _PATTERNS})
# German numbers are compounds; these morphemes segment them.
_DE_MORPHEMES = ('hundert', 'tausend', 'und', 'ein', 'eine')


def english(n: int) -> str:
  return num2words(n, lang='en')


def german(n: int) -> str:
  return num2words(n, lang='de')


@functools.cache
def english_pieces() -> list[str]:
  pieces = set()
  for n in _CANONICAL:
    pieces.update(_EN_PIECE.findall(english(n)))
  return tuple(sorted(pieces))


@functools.cache
def german_pieces() -> list[str]:
  words = {german(n) for n in list(range(20)) + list(range(20, 100, 10))}
  pieces = words | set(_DE_MORPHEMES)
  # Greedy matching falls back to letters for quirks num2words may produce.
  letters = {c for p in pieces for c in p}
  return tuple(sorted(pieces) + sorted(letters - pieces))


@dataclasses.dataclass(eq=False)
class NumberTranslationConfig(_base.TaskConfig):
  max_number: int = 999_999


class NumberTranslation(_base.InMemoryBuilder):
  """English number words to German number words (num2words)."""

  BUILDER_CONFIGS = [
      NumberTranslationConfig(name='default', num_train=20_000, num_validation=1000, num_test=1000,
                              description='20k training pairs, numbers below one million.'),
      NumberTranslationConfig(name='small', num_train=400, num_validation=50, num_test=50,
                              description='Tiny, for tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'number': tfds.features.Scalar(np.int64),
        'en': tfds.features.Text(),
        'de': tfds.features.Text(),
    })

  def metadata(self):
    return {'en_tokenizer': PieceTokenizer(english_pieces()).to_json(),
            'de_tokenizer': PieceTokenizer(german_pieces()).to_json()}

  def make_splits(self):
    config = self.builder_config
    if not 0 <= config.max_number <= 999_999:
      raise ValueError(f'max_number must be in [0, 999999] (the vocabulary covers numbers below a '
                       f'million), got {config.max_number}.')
    sizes = config.sizes()
    # Capacity of each digit count d: the numbers in [10**(d-1), 10**d) that are <= max_number.
    digits = len(str(config.max_number))
    low = [0] + [10**(d - 1) for d in range(2, digits + 1)]
    high = [min(10**d, config.max_number + 1) for d in range(1, digits + 1)]
    capacities = [h - l for l, h in zip(low, high)]
    total = sum(sizes.values())
    if total > config.max_number + 1:
      raise ValueError(f'Asked for {total} distinct numbers but only {config.max_number + 1} exist '
                       f'in [0, {config.max_number}].')
    draws = sampling.sample_unique_by_length(sampling.rng(config.seed, 'numbers'), total, capacities)
    numbers = [low[d] + offset for d, offset in draws]
    return {split: [{'number': n, 'en': english(n), 'de': german(n)} for n in chunk]
            for split, chunk in sampling.cut(numbers, sizes).items()}


def make_task(builder, examples: dict[str, dict[str, list]]) -> Task:
  metadata = builder.info.metadata
  en = from_json(metadata['en_tokenizer'])
  de = from_json(metadata['de_tokenizer'])
  columns = {}
  for split, ex in examples.items():
    columns[split] = {
        'inputs': Ragged(encode_all(en, ex['en'], add_eos=True), dtype=np.int32),
        'targets': Ragged(encode_all(de, ex['de'], add_eos=True), dtype=np.int32),
    }
  lengths = pad_lengths(columns)
  info = {
      'input_vocab_size': en.vocab_size, 'target_vocab_size': de.vocab_size,
      'vocab_size': max(en.vocab_size, de.vocab_size),
      'pad_id': 0, 'bos_id': en.bos_id, 'eos_id': en.eos_id,
      'max_input_length': lengths['inputs'], 'max_target_length': lengths['targets'],
      'pad_lengths': lengths,
      'metrics': ('exact_match', 'bleu', 'chrf'),
      # German numbers are one word: BLEU counts n-grams of the morphemes the target tokenizer segments.
      'bleu_units': 'pieces',
  }
  return Task(name='number_translation', kind='seq2seq', info=info,
              tokenizers={'inputs': en, 'targets': de}, columns=columns,
              length_key='inputs', main_tokenizer_key='targets')
