"""mqar: multi-query associative recall (Arora et al. 2023, "Zoology").

A sequence starts with key-value pairs "k v k v ...", then queries: keys seen
before, at positions drawn with the power law of the Zoology generator (most
queries come soon after the pairs). At a query position the target is the
value bound to that key; everywhere else it is 0. Softmax attention solves it
at any length; linear attention degrades as pairs grow, which is the point.

Options (both off by default, which keeps the original data bit for bit):
  rebind=r         after the pairs, a second block binds r of the keys again to new values; a query
                   must return the latest value, so a mixer has to overwrite, not only store.
  compositional    keys of two tokens: each token of a key is shared with other keys (keys are cells of
                   a small grid of first x second tokens), so only the pair identifies the value; the
                   target sits on a query's second token.

Ids: 0..3 are the shared specials, then keys, then values.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Ragged
from attention_research.data.task import Task
from attention_research.data.tokenizers import SPECIALS, WordTokenizer, from_json

_FIRST_ID = len(SPECIALS)


@dataclasses.dataclass(eq=False)
class MqarConfig(_base.TaskConfig):
  vocab_size: int = 260        # including the 4 special ids
  seq_len: int = 128
  num_kv_pairs: int = 16
  num_queries: int = 16
  power_a: float = 0.01        # Zoology's query-position power law
  rebind: int = 0              # keys bound a second time, after all pairs
  compositional: bool = False  # keys of two tokens

  @property
  def key_len(self) -> int:
    return 2 if self.compositional else 1

  @property
  def context_len(self) -> int:
    """Tokens of the binding region: the pairs, then the rebinding block."""
    return (self.num_kv_pairs + self.rebind) * (self.key_len + 1)

  def check(self) -> None:
    half = (self.vocab_size - _FIRST_ID) // 2
    space = (self.seq_len - self.context_len) // (self.key_len + 1)
    if self.num_kv_pairs < 1 or self.num_queries < 1:
      raise ValueError('num_kv_pairs and num_queries must be >= 1.')
    if not 0 <= self.rebind <= self.num_kv_pairs:
      raise ValueError(f'rebind={self.rebind} must be in [0, num_kv_pairs={self.num_kv_pairs}].')
    if self.num_kv_pairs + self.rebind > self.vocab_size - _FIRST_ID - half:
      raise ValueError(f'{self.num_kv_pairs} pairs and {self.rebind} rebinds need distinct values: vocab_size >= '
                       f'{_FIRST_ID + half + self.num_kv_pairs + self.rebind}, got {self.vocab_size}.')
    if self.compositional and sum(_grid(self.num_kv_pairs)) > half:
      raise ValueError(f'{self.num_kv_pairs} two-token keys need {sum(_grid(self.num_kv_pairs))} key tokens; '
                       f'vocab_size={self.vocab_size} has {half}.')
    if self.num_kv_pairs > half:
      raise ValueError(f'{self.num_kv_pairs} distinct keys need vocab_size >= {_FIRST_ID + 2 * self.num_kv_pairs}, '
                       f'got {self.vocab_size}.')
    if self.num_queries > self.num_kv_pairs:
      raise ValueError(f'num_queries={self.num_queries} > num_kv_pairs={self.num_kv_pairs}: each query asks a '
                       'distinct key.')
    if self.num_queries > space:
      raise ValueError(f'seq_len={self.seq_len} leaves room for {max(space, 0)} queries after '
                       f'{self.num_kv_pairs} pairs and {self.rebind} rebinds; asked for {self.num_queries}.')
    if not 0 < self.power_a <= 1:
      raise ValueError(f'power_a must be in (0, 1], got {self.power_a}.')


def vocabulary(vocab_size: int) -> list[str]:
  half = (vocab_size - _FIRST_ID) // 2
  return [f'k{i}' for i in range(half)] + [f'v{i}' for i in range(vocab_size - _FIRST_ID - half)]


def _grid(n: int) -> tuple[int, int]:
  """First x second token counts of a grid with at least n cells, as square as possible."""
  rows = int(np.ceil(np.sqrt(n)))
  return rows, int(np.ceil(n / rows))


def _query_slots(gen: np.random.Generator, c: MqarConfig, width: int) -> np.ndarray:
  space = (c.seq_len - c.context_len) // width
  p = c.power_a * np.arange(1, space + 1, dtype=np.float64)**(c.power_a - 1)
  return gen.choice(space, size=c.num_queries, replace=False, p=p / p.sum())


def _make_bound_example(gen: np.random.Generator, c: MqarConfig) -> tuple[np.ndarray, np.ndarray]:
  """The rebind / compositional layouts: items of key_len key tokens and a value, then queries."""
  half = (c.vocab_size - _FIRST_ID) // 2
  n, k = c.num_kv_pairs, c.key_len
  if c.compositional:
    rows, cols = _grid(n)
    tokens = _FIRST_ID + gen.choice(half, size=rows + cols, replace=False)
    cells = gen.choice(rows * cols, size=n, replace=False)
    keys = np.stack([tokens[cells // cols], tokens[rows + cells % cols]], axis=1)
  else:
    keys = (_FIRST_ID + gen.choice(half, size=n, replace=False))[:, None]
  values = _FIRST_ID + half + gen.choice(c.vocab_size - _FIRST_ID - half, size=n + c.rebind, replace=False)
  rebound = gen.choice(n, size=c.rebind, replace=False)
  items = [(keys[i], values[i]) for i in range(n)] + [(keys[i], values[n + j]) for j, i in enumerate(rebound)]
  latest = dict(enumerate(values[:n]))
  latest.update({int(i): values[n + j] for j, i in enumerate(rebound)})
  inputs = gen.integers(_FIRST_ID, c.vocab_size, size=c.seq_len).astype(np.int32)
  targets = np.zeros(c.seq_len, np.int32)
  for j, (key, value) in enumerate(items):
    inputs[j * (k + 1):j * (k + 1) + k], inputs[j * (k + 1) + k] = key, value
  asked = gen.choice(n, size=c.num_queries, replace=False)
  for slot, i in zip(_query_slots(gen, c, k + 1), asked):
    start = c.context_len + (k + 1) * slot
    inputs[start:start + k] = keys[i]
    targets[start + k - 1] = latest[int(i)]
  return inputs, targets


def make_example(gen: np.random.Generator, c: MqarConfig) -> tuple[np.ndarray, np.ndarray]:
  if c.rebind or c.compositional:
    return _make_bound_example(gen, c)
  half = (c.vocab_size - _FIRST_ID) // 2
  keys = _FIRST_ID + gen.choice(half, size=c.num_kv_pairs, replace=False)
  values = _FIRST_ID + half + gen.choice(c.vocab_size - _FIRST_ID - half, size=c.num_kv_pairs, replace=False)
  context = 2 * c.num_kv_pairs
  # Fillers are random tokens, as in Zoology, so position alone gives nothing away.
  inputs = gen.integers(_FIRST_ID, c.vocab_size, size=c.seq_len).astype(np.int32)
  targets = np.zeros(c.seq_len, np.int32)
  inputs[0:context:2], inputs[1:context:2] = keys, values
  space = (c.seq_len - context) // 2
  p = c.power_a * np.arange(1, space + 1, dtype=np.float64)**(c.power_a - 1)
  gaps = gen.choice(space, size=c.num_queries, replace=False, p=p / p.sum())
  asked = gen.choice(c.num_kv_pairs, size=c.num_queries, replace=False)
  positions = context + 2 * gaps
  inputs[positions] = keys[asked]
  targets[positions] = values[asked]
  return inputs, targets


class Mqar(_base.InMemoryBuilder):
  """Multi-query associative recall (Arora et al. 2023)."""

  BUILDER_CONFIGS = [
      MqarConfig(name='default', num_train=10_000, num_validation=1000, num_test=1000,
                 description='128 tokens, 16 pairs, 16 queries, 256 keys and values.'),
      MqarConfig(name='small', vocab_size=36, seq_len=32, num_kv_pairs=4, num_queries=4,
                 num_train=256, num_validation=64, num_test=64, description='Tiny, for tests.'),
  ]

  def features(self):
    c = self.builder_config
    return tfds.features.FeaturesDict({
        'inputs': tfds.features.Tensor(shape=(c.seq_len,), dtype=np.int32),
        'targets': tfds.features.Tensor(shape=(c.seq_len,), dtype=np.int32),
    })

  def metadata(self):
    return {'tokenizer': WordTokenizer(vocabulary(self.builder_config.vocab_size)).to_json()}

  def make_splits(self):
    c = self.builder_config
    c.check()
    sizes = c.sizes()
    draws = sampling.UniqueDraws()
    out = {}
    for split in sampling.SPLITS:
      gen = sampling.rng(c.seed, 'mqar', split)
      examples = [draws.draw(lambda: make_example(gen, c), lambda ex: ex[0].tobytes()) for _ in range(sizes[split])]
      out[split] = [{'inputs': x, 'targets': y} for x, y in examples]
    return out


def make_task(builder, examples) -> Task:
  c = builder.builder_config
  tokenizer = from_json(builder.info.metadata['tokenizer'])
  columns = {split: {'inputs': Ragged(ex['inputs'], dtype=np.int32), 'targets': Ragged(ex['targets'], dtype=np.int32)}
             for split, ex in examples.items()}
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'max_length': c.seq_len, 'pad_lengths': {'inputs': c.seq_len, 'targets': c.seq_len},
          'num_kv_pairs': c.num_kv_pairs, 'num_queries': c.num_queries, 'rebind': c.rebind,
          'compositional': c.compositional, 'metrics': ('accuracy',)}
  return Task(name='mqar', kind='token_classification', info=info, tokenizers={'inputs': tokenizer},
              columns=columns, length_key='inputs')
