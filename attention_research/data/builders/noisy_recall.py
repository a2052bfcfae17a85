"""noisy_recall: in-context recall with noise tokens inserted anywhere (MAD, Poli et al. 2024).

Each sequence binds `num_kv_pairs` keys to values and then lists pairs "k v" drawn from that binding,
so keys repeat. The target at a key is its value when the key appeared earlier in the sequence (only
then can it be known); elsewhere 0. A fraction `noise` of all positions holds tokens of a separate
noise vocabulary, inserted at random places (also between a key and its value), which the mixer must
learn to ignore.

Ids: 0..3 specials, then keys, values and noise tokens.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attention_research.data.builders import _tagging


@dataclasses.dataclass(eq=False)
class NoisyRecallConfig(_tagging.TaggingConfig):
  seq_len: int = 128
  num_kv_pairs: int = 16
  num_keys: int = 64     # key vocabulary
  num_values: int = 64   # value vocabulary
  num_noise: int = 16    # noise vocabulary
  noise: float = 0.2     # fraction of positions that are noise

  def check(self) -> None:
    if not 1 <= self.num_kv_pairs <= min(self.num_keys, self.num_values):
      raise ValueError(f'num_kv_pairs={self.num_kv_pairs} needs as many distinct keys and values '
                       f'(num_keys={self.num_keys}, num_values={self.num_values}).')
    if not 0 <= self.noise < 1 or (self.noise > 0 and self.num_noise < 1):
      raise ValueError(f'noise={self.noise} must be in [0, 1) with num_noise >= 1, got num_noise={self.num_noise}.')
    if self.clean_len() < 4:
      raise ValueError(f'seq_len={self.seq_len} with noise={self.noise} leaves fewer than two pairs.')

  def clean_len(self) -> int:
    return (self.seq_len - int(round(self.noise * self.seq_len))) // 2 * 2

  def vocabulary(self) -> list[str]:
    return ([f'k{i}' for i in range(self.num_keys)] + [f'v{i}' for i in range(self.num_values)]
            + [f'n{i}' for i in range(self.num_noise)])


def first_noise_id(c: NoisyRecallConfig) -> int:
  return _tagging.FIRST_ID + c.num_keys + c.num_values


def make_example(gen: np.random.Generator, c: NoisyRecallConfig) -> tuple[np.ndarray, np.ndarray]:
  keys = _tagging.FIRST_ID + gen.choice(c.num_keys, size=c.num_kv_pairs, replace=False)
  values = _tagging.FIRST_ID + c.num_keys + gen.choice(c.num_values, size=c.num_kv_pairs, replace=False)
  pairs = gen.integers(0, c.num_kv_pairs, size=c.clean_len() // 2)
  clean = np.stack([keys[pairs], values[pairs]], axis=1).reshape(-1)
  clean_targets = np.zeros_like(clean)
  seen = np.zeros(c.num_kv_pairs, bool)
  for j, p in enumerate(pairs):
    if seen[p]:
      clean_targets[2 * j] = values[p]
    seen[p] = True
  noisy = np.sort(gen.choice(c.seq_len, size=c.seq_len - len(clean), replace=False))
  inputs = np.zeros(c.seq_len, np.int32)
  targets = np.zeros(c.seq_len, np.int32)
  inputs[noisy] = first_noise_id(c) + gen.integers(0, max(c.num_noise, 1), size=len(noisy))
  kept = np.setdiff1d(np.arange(c.seq_len), noisy)
  inputs[kept], targets[kept] = clean, clean_targets
  return inputs, targets


class NoisyRecall(_tagging.TaggingBuilder):
  """Noisy in-context recall (MAD, Poli et al. 2024)."""

  BUILDER_CONFIGS = [
      NoisyRecallConfig(name='default', num_train=10_000, num_validation=1000, num_test=1000,
                        description='128 tokens, 16 pairs, 20% noise.'),
      NoisyRecallConfig(name='small', seq_len=32, num_kv_pairs=4, num_keys=8, num_values=8, num_noise=4,
                        num_train=256, num_validation=64, num_test=64, description='Tiny, for tests.'),
  ]

  def make_example(self, gen, c):
    return make_example(gen, c)


def make_task(builder, examples):
  c = builder.builder_config
  return _tagging.make_tagging_task('noisy_recall', builder, examples, num_kv_pairs=c.num_kv_pairs, noise=c.noise)
