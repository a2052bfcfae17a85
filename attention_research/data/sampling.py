"""Seeded randomness and unique sampling shared by the built-in builders.

Every random choice in a builder comes from `rng(seed, *keys)`, so the same
config always yields the same data whatever order things are computed in, and
separate purposes (splits, noise, rendering) never share a random stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

SPLITS = ('train', 'validation', 'test')


def _key_to_int(key: int | str) -> int:
  if isinstance(key, (int, np.integer)):
    return int(key) & 0xFFFFFFFF
  # Python's hash() is salted per process; a digest is stable everywhere.
  return int.from_bytes(hashlib.sha256(str(key).encode()).digest()[:4], 'little')


def rng(seed: int, *keys: int | str) -> np.random.Generator:
  """A generator determined by `seed` and the purpose `keys`, nothing else."""
  return np.random.default_rng([_key_to_int(seed), *(_key_to_int(k) for k in keys)])


def split_sizes(config) -> dict[str, int]:
  sizes = {'train': config.num_train, 'validation': config.num_validation, 'test': config.num_test}
  for split, n in sizes.items():
    if n < 1:
      raise ValueError(f'{split} size must be >= 1, got {n}.')
  return sizes


def sample_unique_by_length(gen: np.random.Generator, n: int, capacities: Sequence[int]) -> list[tuple[int, int]]:
  """Draws `n` distinct (length_index, offset) pairs, lengths roughly uniform.

  Uniform over lengths (not over all items) keeps short items present: among
  numbers below a million, uniform sampling would almost never give "23".
  A length whose items are all used is dropped from the draw. The result is
  shuffled, so cutting it into consecutive chunks gives disjoint splits.
  """
  total = sum(int(c) for c in capacities)
  if n > total:
    raise ValueError(f'Cannot draw {n} distinct items: only {total} exist '
                     f'(capacities per length: {list(capacities)}).')
  counts = np.zeros(len(capacities), dtype=np.int64)
  caps = np.asarray(capacities, dtype=np.int64)
  for _ in range(n):
    available = np.flatnonzero(counts < caps)
    counts[gen.choice(available)] += 1
  items = []
  for length_index, count in enumerate(counts):
    offsets = gen.choice(int(caps[length_index]), size=int(count), replace=False)
    items.extend((length_index, int(o)) for o in offsets)
  order = gen.permutation(len(items))
  return [items[i] for i in order]


def cut(items: Sequence, sizes: dict[str, int]) -> dict[str, list]:
  """Consecutive, non-overlapping chunks of `items`, one per split."""
  out, start = {}, 0
  for split in SPLITS:
    out[split] = list(items[start:start + sizes[split]])
    start += sizes[split]
  return out


class UniqueDraws:
  """Rejection sampler that refuses any item already drawn for any split."""

  def __init__(self, max_attempts: int = 1000):
    self._seen: set[bytes] = set()
    self._max_attempts = max_attempts

  def draw(self, make, key_of):
    for _ in range(self._max_attempts):
      item = make()
      key = key_of(item)
      if key not in self._seen:
        self._seen.add(key)
        return item
    raise ValueError(f'Could not draw a new distinct example after {self._max_attempts} attempts '
                     f'({len(self._seen)} drawn): the requested size is larger than this config '
                     'can generate; lower the split sizes or widen the config.')
