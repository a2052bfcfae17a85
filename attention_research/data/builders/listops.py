"""listops: Long Range Arena's ListOps (Nangia & Bowman 2018; Tay et al. 2021).

Nested prefix expressions such as "[MAX 4 3 [MIN 2 3 ] 1 0 ]" whose value
(0-9) is the label. Trees are drawn as in LRA's generator (an operator with
probability 1/4 per node, 2 to `max_args` arguments, up to `max_depth`) and
kept when their token count lies in [min_length, max_length]. Tokens are
written without LRA's parentheses, which carry no information.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Dense, Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import WordTokenizer, encode_all, from_json

OPERATORS = ('[MAX', '[MIN', '[MED', '[SM')
END = ']'
VALUE_P = 0.25  # LRA: a node is a leaf value with probability 3/4


def _apply(op: str, args: list[int]) -> int:
  if op == '[MAX':
    return max(args)
  if op == '[MIN':
    return min(args)
  if op == '[MED':
    return int(np.median(args))
  return sum(args) % 10


class _TooLong(Exception):
  pass


class _Uniforms:
  """Uniform draws fetched from numpy in blocks: per-call draws dominate the
  cost of generating thousands of long trees one node at a time."""

  def __init__(self, gen: np.random.Generator, block: int = 8192):
    self._gen, self._block = gen, block
    self._buf, self._pos = gen.random(block), 0

  def random(self) -> float:
    if self._pos == self._block:
      self._buf, self._pos = self._gen.random(self._block), 0
    self._pos += 1
    return float(self._buf[self._pos - 1])

  def integers(self, low: int, high: int) -> int:
    return low + min(int(self.random() * (high - low)), high - low - 1)


def generate(gen: _Uniforms, *, max_depth: int, max_args: int, max_length: int) -> tuple[list[str], int]:
  """One LRA tree as tokens and its value; raises _TooLong past max_length.

  Stopping a tree as soon as it is too long saves time without changing the
  distribution of the trees that are kept.
  """
  tokens: list[str] = []

  def node(depth: int) -> int:
    if len(tokens) >= max_length:
      raise _TooLong
    if depth >= max_depth or gen.random() > VALUE_P:
      value = gen.integers(0, 10)
      tokens.append(str(value))
      return value
    op = OPERATORS[gen.integers(0, len(OPERATORS))]
    tokens.append(op)
    args = [node(depth + 1) for _ in range(gen.integers(2, max_args + 1))]
    tokens.append(END)
    return _apply(op, args)

  value = node(1)
  if len(tokens) > max_length:
    raise _TooLong
  return tokens, value


def evaluate(text: str) -> int:
  """The value of an expression, by a stack machine: a check of the labels."""
  stack: list[list] = []
  value = None
  for token in text.split():
    if token in OPERATORS:
      stack.append([token])
    elif token == END:
      op, *args = stack.pop()
      value = _apply(op, args)
      if stack:
        stack[-1].append(value)
    else:
      if stack:
        stack[-1].append(int(token))
      else:
        value = int(token)
  return value


@dataclasses.dataclass(eq=False)
class ListopsConfig(_base.TaskConfig):
  min_length: int = 500
  max_length: int = 2000
  max_depth: int = 10
  max_args: int = 10
  max_attempts: int = 2_000_000


class Listops(_base.InMemoryBuilder):
  """Long Range Arena ListOps, generated offline."""

  BUILDER_CONFIGS = [
      ListopsConfig(name='default', num_train=2000, num_validation=200, num_test=200,
                    description='LRA lengths (500 to 2000 tokens), 2400 expressions.'),
      ListopsConfig(name='small', min_length=10, max_length=64, num_train=256, num_validation=64, num_test=64,
                    description='Short expressions, for tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'expression': tfds.features.Text(),
        'label': tfds.features.ClassLabel(num_classes=10),
    })

  def metadata(self):
    return {'tokenizer': WordTokenizer([str(d) for d in range(10)] + list(OPERATORS) + [END]).to_json()}

  def make_splits(self):
    c = self.builder_config
    if not 1 <= c.min_length <= c.max_length:
      raise ValueError(f'Need 1 <= min_length <= max_length, got {c.min_length}, {c.max_length}.')
    if c.max_depth < 1 or c.max_args < 2:
      raise ValueError('Need max_depth >= 1 and max_args >= 2.')
    sizes = c.sizes()
    seen: set[str] = set()
    out = {}
    for split in sampling.SPLITS:
      gen = _Uniforms(sampling.rng(c.seed, 'listops', split))
      examples, attempts = [], 0
      while len(examples) < sizes[split]:
        attempts += 1
        if attempts > c.max_attempts:
          raise ValueError(f'Only {len(examples)} of {sizes[split]} {split} expressions with length in '
                           f'[{c.min_length}, {c.max_length}] after {c.max_attempts} trees; widen the range.')
        try:
          tokens, value = generate(gen, max_depth=c.max_depth, max_args=c.max_args, max_length=c.max_length)
        except _TooLong:
          continue
        text = ' '.join(tokens)
        if len(tokens) < c.min_length or text in seen:
          continue
        seen.add(text)
        examples.append({'expression': text, 'label': value})
      out[split] = examples
    return out


def make_task(builder, examples) -> Task:
  c = builder.builder_config
  tokenizer = from_json(builder.info.metadata['tokenizer'])
  columns = {split: {'inputs': Ragged(encode_all(tokenizer, ex['expression']), dtype=np.int32),
                     'label': Dense(np.asarray(ex['label'], np.int32))}
             for split, ex in examples.items()}
  lengths = pad_lengths(columns)
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'num_classes': 10, 'max_length': lengths['inputs'], 'pad_lengths': lengths,
          'min_length': c.min_length, 'metrics': ('accuracy',)}
  return Task(name='listops', kind='classification', info=info, tokenizers={'inputs': tokenizer},
              columns=columns, length_key='inputs')
