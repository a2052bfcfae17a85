"""memorization: a key-to-value map fixed across the whole dataset, learnt into weights (MAD, Poli et al. 2024).

One map from `num_keys` keys to values is drawn from the config's seed; every sequence is random keys
and the target at each key is its value. Nothing in the context gives the answer away: the model must
store the map in its parameters (the test split's sequences are new, its keys are not). The map is in
the dataset's metadata.

Ids: 0..3 specials, then keys, then values.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attention_research.data import sampling
from attention_research.data.builders import _tagging


@dataclasses.dataclass(eq=False)
class MemorizationConfig(_tagging.TaggingConfig):
  seq_len: int = 32
  num_keys: int = 256
  num_values: int = 64

  def check(self) -> None:
    if self.num_keys < 1 or self.num_values < 2 or self.seq_len < 1:
      raise ValueError(f'num_keys={self.num_keys}, num_values={self.num_values} and seq_len={self.seq_len} '
                       'must be >= 1, >= 2 and >= 1.')

  def vocabulary(self) -> list[str]:
    return [f'k{i}' for i in range(self.num_keys)] + [f'v{i}' for i in range(self.num_values)]


def mapping(c: MemorizationConfig) -> np.ndarray:
  """value id of each key (index: key id - FIRST_ID); the same for every split."""
  gen = sampling.rng(c.seed, 'memorization', 'mapping')
  return (_tagging.FIRST_ID + c.num_keys + gen.integers(0, c.num_values, size=c.num_keys)).astype(np.int32)


def make_example(gen: np.random.Generator, c: MemorizationConfig, table: np.ndarray):
  keys = gen.integers(0, c.num_keys, size=c.seq_len)
  return (_tagging.FIRST_ID + keys).astype(np.int32), table[keys]


class Memorization(_tagging.TaggingBuilder):
  """Memorization (MAD, Poli et al. 2024)."""

  BUILDER_CONFIGS = [
      MemorizationConfig(name='default', num_train=10_000, num_validation=1000, num_test=1000,
                         description='256 keys mapped to 64 values, 32 keys a sequence.'),
      MemorizationConfig(name='small', seq_len=8, num_keys=16, num_values=4, num_train=256, num_validation=64,
                         num_test=64, description='Tiny, for tests.'),
  ]

  def make_example(self, gen, c):
    return make_example(gen, c, mapping(c))

  def metadata(self):
    return {**super().metadata(), 'mapping': mapping(self.builder_config).tolist()}


def make_task(builder, examples):
  c = builder.builder_config
  return _tagging.make_tagging_task('memorization', builder, examples, num_keys=c.num_keys)
