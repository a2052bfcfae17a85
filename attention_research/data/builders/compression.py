"""compression: reconstruct a random sequence from what is kept after it (MAD, Poli et al. 2024).

`num_tokens` random content tokens, a compression marker '|', then the positions 0..num_tokens-1 as
position tokens in random order; the target at a position token '@i' is the i-th content token.
Blanks fill any remaining positions. MAD decodes the whole sequence from the marker's embedding with an
MLP; with one label per position, the equivalent bottleneck is what a mixer carries past the marker:
a recurrent state must hold the whole sequence, while attention can look back.

Ids: 0..3 specials, 4 blank '_', 5 marker '|', then content tokens, then position tokens.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attention_research.data.builders import _tagging

BLANK, MARKER = _tagging.FIRST_ID, _tagging.FIRST_ID + 1
_FIRST_TOKEN = _tagging.FIRST_ID + 2


@dataclasses.dataclass(eq=False)
class CompressionConfig(_tagging.TaggingConfig):
  seq_len: int = 65
  num_tokens: int = 32
  num_content: int = 16  # content vocabulary

  def check(self) -> None:
    if self.num_tokens < 1 or self.num_content < 2:
      raise ValueError(f'num_tokens={self.num_tokens} must be >= 1 and num_content={self.num_content} >= 2.')
    if self.seq_len < 2 * self.num_tokens + 1:
      raise ValueError(f'seq_len={self.seq_len} must hold {self.num_tokens} tokens, the marker and '
                       f'{self.num_tokens} position queries ({2 * self.num_tokens + 1}).')

  def vocabulary(self) -> list[str]:
    return ['_', '|'] + [f't{i}' for i in range(self.num_content)] + [f'@{i}' for i in range(self.num_tokens)]


def first_position_id(c: CompressionConfig) -> int:
  return _FIRST_TOKEN + c.num_content


def make_example(gen: np.random.Generator, c: CompressionConfig) -> tuple[np.ndarray, np.ndarray]:
  n = c.num_tokens
  tokens = _FIRST_TOKEN + gen.integers(0, c.num_content, size=n)
  order = gen.permutation(n)
  inputs = np.full(c.seq_len, BLANK, np.int32)
  targets = np.zeros(c.seq_len, np.int32)
  inputs[:n], inputs[n] = tokens, MARKER
  inputs[n + 1:2 * n + 1] = first_position_id(c) + order
  targets[n + 1:2 * n + 1] = tokens[order]
  return inputs, targets


class Compression(_tagging.TaggingBuilder):
  """Compression (MAD, Poli et al. 2024), read out by position queries."""

  BUILDER_CONFIGS = [
      CompressionConfig(name='default', num_train=10_000, num_validation=1000, num_test=1000,
                        description='32 tokens out of 16, then 32 position queries.'),
      CompressionConfig(name='small', seq_len=17, num_tokens=8, num_content=4, num_train=256, num_validation=64,
                        num_test=64, description='Tiny, for tests.'),
  ]

  def make_example(self, gen, c):
    return make_example(gen, c)


def make_task(builder, examples):
  c = builder.builder_config
  return _tagging.make_tagging_task('compression', builder, examples, num_tokens=c.num_tokens)
