"""fuzzy_recall: in-context recall whose keys and values span several tokens (MAD, Poli et al. 2024).

Each sequence binds `num_kv_pairs` keys of 1..max_span key tokens to values of 1..max_span value
tokens, then lists "K V" pairs drawn from that binding (keys repeat), blanks after the last whole pair.
Targets are next-token targets inside a pair whose key appeared before: at the key's last token the
value's first token, at each value token but the last the next one; elsewhere 0. Keys are prefix-free,
so a left-to-right reader knows where a key ends; the mixer has to merge adjacent tokens into one key.

Ids: 0..3 specials, 4 blank '_', then key tokens, then value tokens.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attention_research.data.builders import _tagging

BLANK = _tagging.FIRST_ID
_FIRST_KEY = _tagging.FIRST_ID + 1


@dataclasses.dataclass(eq=False)
class FuzzyRecallConfig(_tagging.TaggingConfig):
  seq_len: int = 128
  num_kv_pairs: int = 8
  max_span: int = 3      # tokens per key and per value: 1..max_span
  num_keys: int = 16     # key-token vocabulary
  num_values: int = 16   # value-token vocabulary

  def check(self) -> None:
    if self.num_kv_pairs < 1 or self.max_span < 1:
      raise ValueError(f'num_kv_pairs={self.num_kv_pairs} and max_span={self.max_span} must be >= 1.')
    if self.num_kv_pairs > self.num_keys ** self.max_span // 2:
      raise ValueError(f'{self.num_kv_pairs} prefix-free keys of <= {self.max_span} tokens need a larger num_keys '
                       f'than {self.num_keys}.')
    if self.seq_len < 4 * self.max_span:
      raise ValueError(f'seq_len={self.seq_len} holds fewer than two pairs of max_span={self.max_span}.')

  def vocabulary(self) -> list[str]:
    return ['_'] + [f'k{i}' for i in range(self.num_keys)] + [f'v{i}' for i in range(self.num_values)]


def _prefix_free_keys(gen: np.random.Generator, c: FuzzyRecallConfig) -> list[tuple[int, ...]]:
  keys: list[tuple[int, ...]] = []
  for _ in range(1000 * c.num_kv_pairs):
    key = tuple(_FIRST_KEY + gen.integers(0, c.num_keys, size=gen.integers(1, c.max_span + 1)))
    if all(key[:len(k)] != k and k[:len(key)] != key for k in keys):
      keys.append(key)
      if len(keys) == c.num_kv_pairs:
        return keys
  raise ValueError(f'could not draw {c.num_kv_pairs} prefix-free keys from {c.num_keys} tokens; widen num_keys.')


def make_example(gen: np.random.Generator, c: FuzzyRecallConfig) -> tuple[np.ndarray, np.ndarray]:
  keys = _prefix_free_keys(gen, c)
  first_value = _FIRST_KEY + c.num_keys
  values = [tuple(first_value + gen.integers(0, c.num_values, size=gen.integers(1, c.max_span + 1)))
            for _ in keys]
  inputs = np.full(c.seq_len, BLANK, np.int32)
  targets = np.zeros(c.seq_len, np.int32)
  seen, t = set(), 0
  while True:
    i = int(gen.integers(0, len(keys)))
    item = keys[i] + values[i]
    if t + len(item) > c.seq_len:
      break
    inputs[t:t + len(item)] = item
    if i in seen:
      start = t + len(keys[i]) - 1
      targets[start:start + len(values[i])] = values[i]
    seen.add(i)
    t += len(item)
  return inputs, targets


class FuzzyRecall(_tagging.TaggingBuilder):
  """Fuzzy in-context recall (MAD, Poli et al. 2024)."""

  BUILDER_CONFIGS = [
      FuzzyRecallConfig(name='default', num_train=10_000, num_validation=1000, num_test=1000,
                        description='128 tokens, 8 pairs, keys and values of 1-3 tokens out of 16.'),
      FuzzyRecallConfig(name='small', seq_len=32, num_kv_pairs=3, max_span=2, num_keys=6, num_values=6,
                        num_train=256, num_validation=64, num_test=64, description='Tiny, for tests.'),
  ]

  def make_example(self, gen, c):
    return make_example(gen, c)


def make_task(builder, examples):
  c = builder.builder_config
  return _tagging.make_tagging_task('fuzzy_recall', builder, examples, num_kv_pairs=c.num_kv_pairs,
                                    max_span=c.max_span)
