"""selective_copying: copy the content tokens scattered among blanks, in order (Gu & Dao 2023, Mamba).

The first `seq_len - num_tokens` positions hold `num_tokens` content tokens at random positions, blanks
elsewhere; the last `num_tokens` positions are copy markers, and the target at the i-th marker is the
i-th content token. Where the tokens sit varies per sequence, so a time-invariant mixer (a fixed
convolution) cannot solve it: the mixer has to decide by content what to keep.

Ids: 0..3 specials, 4 blank '_', 5 marker '?', then the content tokens.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attention_research.data.builders import _tagging

BLANK, MARKER = _tagging.FIRST_ID, _tagging.FIRST_ID + 1
_FIRST_TOKEN = _tagging.FIRST_ID + 2


@dataclasses.dataclass(eq=False)
class SelectiveCopyingConfig(_tagging.TaggingConfig):
  seq_len: int = 128
  num_tokens: int = 16   # content tokens to copy
  vocab_size: int = 22   # including specials, blank and marker

  def check(self) -> None:
    if self.num_tokens < 1:
      raise ValueError(f'num_tokens must be >= 1, got {self.num_tokens}.')
    if self.vocab_size < _FIRST_TOKEN + 2:
      raise ValueError(f'vocab_size={self.vocab_size} leaves fewer than 2 content tokens (ids from {_FIRST_TOKEN}).')
    if self.seq_len < 2 * self.num_tokens:
      raise ValueError(f'seq_len={self.seq_len} must hold {self.num_tokens} tokens and as many markers.')

  def vocabulary(self) -> list[str]:
    return ['_', '?'] + [f't{i}' for i in range(self.vocab_size - _FIRST_TOKEN)]


def make_example(gen: np.random.Generator, c: SelectiveCopyingConfig) -> tuple[np.ndarray, np.ndarray]:
  region = c.seq_len - c.num_tokens
  tokens = gen.integers(_FIRST_TOKEN, c.vocab_size, size=c.num_tokens)
  inputs = np.full(c.seq_len, BLANK, np.int32)
  inputs[np.sort(gen.choice(region, size=c.num_tokens, replace=False))] = tokens
  inputs[region:] = MARKER
  targets = np.zeros(c.seq_len, np.int32)
  targets[region:] = tokens
  return inputs, targets


class SelectiveCopying(_tagging.TaggingBuilder):
  """Selective copying (Gu & Dao 2023)."""

  BUILDER_CONFIGS = [
      SelectiveCopyingConfig(name='default', num_train=10_000, num_validation=1000, num_test=1000,
                             description='128 tokens, 16 to copy, 16 content tokens.'),
      SelectiveCopyingConfig(name='small', seq_len=24, num_tokens=4, vocab_size=12, num_train=256,
                             num_validation=64, num_test=64, description='Tiny, for tests.'),
  ]

  def make_example(self, gen, c):
    return make_example(gen, c)


def make_task(builder, examples):
  c = builder.builder_config
  return _tagging.make_tagging_task('selective_copying', builder, examples, num_tokens=c.num_tokens)
