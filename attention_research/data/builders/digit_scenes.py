"""digit_scenes: 64x64 canvases with 2 to 4 digits on a 3x3 grid, and captions.

Digits (scikit-learn's 8x8 images, doubled to 16x16) sit in distinct cells of
a 3x3 grid with a small random offset. Captions name them in reading order
and relate each to the one named before: "a 3 left of a 7 . a 1 below the 7".
The cell of every digit is kept, and for every caption word the cell of the
digit it names (-1 otherwise), so captioning attention can be scored.

Each split draws its digits from its own share of the 1797 images, so no
handwritten digit is seen in two splits.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.builders.digits import NUM_IMAGES, partition, sklearn_digits
from attention_research.data.pipeline import Dense, Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import WordTokenizer, encode_all, from_json

CANVAS = 64
GRID = 3
DIGIT = 16
WORDS = ['a', 'the', *map(str, range(10)), 'above', 'below', 'left', 'right', 'of', '.']
# Share of the 1797 source images each split draws its digits from.
POOL_SHARES = {'train': 0.8, 'validation': 0.1, 'test': 0.1}


def cell_origin(cell: int) -> tuple[int, int]:
  row, col = divmod(cell, GRID)
  return int(row * CANVAS / GRID), int(col * CANVAS / GRID)


def relation(cell: int, other: int) -> list[str]:
  """Where `cell` lies relative to `other`, e.g. ['above', 'left', 'of']."""
  (r, c), (r2, c2) = divmod(cell, GRID), divmod(other, GRID)
  words = ['above'] if r < r2 else ['below'] if r > r2 else []
  if c != c2:
    words += ['left' if c < c2 else 'right', 'of']
  return words


def caption(labels: list[int], cells: list[int]) -> tuple[str, list[int]]:
  """The caption and, per word, the cell of the digit that word names."""
  words, word_cells = [], []

  def say(tokens, named_cell=None):
    for t in tokens:
      words.append(t)
      word_cells.append(named_cell if t.isdigit() else -1)

  say(['a', str(labels[0])], cells[0])
  say(relation(cells[0], cells[1]))
  say(['a', str(labels[1])], cells[1])
  for k in range(2, len(labels)):
    say(['.', 'a', str(labels[k])], cells[k])
    say(relation(cells[k], cells[k - 1]))
    say(['the', str(labels[k - 1])], cells[k - 1])
  return ' '.join(words), word_cells


def image_pools(seed: int, purpose: str) -> dict[str, np.ndarray]:
  """Disjoint shares of the 1797 source images, one per split, so no handwritten digit is seen in two splits."""
  return partition(seed, {s: int(NUM_IMAGES * share) for s, share in POOL_SHARES.items()}, purpose)


def sample_layout(gen: np.random.Generator, pool, min_digits: int, max_digits: int):
  """One scene's layout: sorted distinct cells, source image indices drawn from `pool`, and pixel offsets."""
  n = int(gen.integers(min_digits, max_digits + 1))
  cells = sorted(gen.choice(GRID * GRID, size=n, replace=False).tolist())
  sources = gen.choice(pool, size=n).tolist()
  offsets = [tuple(int(v) for v in gen.integers(0, CANVAS // GRID - DIGIT + 1, size=2)) for _ in range(n)]
  return cells, sources, offsets


def layout_key(layout) -> bytes:
  """What makes two layouts the same scene (for sampling.UniqueDraws)."""
  return repr(layout).encode()


def check_digit_range(min_digits: int, max_digits: int):
  if not 2 <= min_digits <= max_digits <= GRID * GRID:
    raise ValueError(f'Need 2 <= min_digits <= max_digits <= 9, got {min_digits}, {max_digits}.')


def render(digits: list[np.ndarray], cells: list[int], offsets: list[tuple[int, int]]) -> np.ndarray:
  canvas = np.zeros((CANVAS, CANVAS), np.uint8)
  for image, cell, (dy, dx) in zip(digits, cells, offsets):
    y, x = cell_origin(cell)
    canvas[y + dy:y + dy + DIGIT, x + dx:x + dx + DIGIT] = np.kron(image, np.ones((2, 2), np.uint8))
  return canvas[..., None]


@dataclasses.dataclass(eq=False)
class DigitScenesConfig(_base.TaskConfig):
  min_digits: int = 2
  max_digits: int = 4


class DigitScenes(_base.InMemoryBuilder):
  """Captioned scenes of handwritten digits with ground-truth cells."""

  BUILDER_CONFIGS = [
      DigitScenesConfig(name='default', num_train=8000, num_validation=1000, num_test=1000,
                        description='10k scenes of 2 to 4 digits.'),
      DigitScenesConfig(name='small', num_train=200, num_validation=50, num_test=50, description='For tests.'),
  ]

  def features(self):
    m = self.builder_config.max_digits
    return tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(CANVAS, CANVAS, 1)),
        'caption': tfds.features.Text(),
        'caption_cells': tfds.features.Tensor(shape=(None,), dtype=np.int32),
        'digit_labels': tfds.features.Tensor(shape=(m,), dtype=np.int32),
        'digit_cells': tfds.features.Tensor(shape=(m,), dtype=np.int32),
        'source_index': tfds.features.Tensor(shape=(m,), dtype=np.int32),
    })

  def metadata(self):
    return {'tokenizer': WordTokenizer(WORDS).to_json()}

  def make_splits(self):
    c = self.builder_config
    check_digit_range(c.min_digits, c.max_digits)
    images, labels = sklearn_digits()
    pools = image_pools(c.seed, 'digit_scenes_pools')
    sizes = c.sizes()
    draws = sampling.UniqueDraws()
    out = {}
    for split in sampling.SPLITS:
      gen = sampling.rng(c.seed, 'digit_scenes', split)
      pool = pools[split]
      make = functools.partial(sample_layout, gen, pool, c.min_digits, c.max_digits)
      examples = []
      for _ in range(sizes[split]):
        cells, sources, offsets = draws.draw(make, layout_key)
        digit_labels = [int(labels[i]) for i in sources]
        text, word_cells = caption(digit_labels, cells)
        pad = [-1] * (c.max_digits - len(cells))
        examples.append({
            'image': render([images[i] for i in sources], cells, offsets),
            'caption': text,
            'caption_cells': np.asarray(word_cells, np.int32),
            'digit_labels': np.asarray(digit_labels + pad, np.int32),
            'digit_cells': np.asarray(cells + pad, np.int32),
            'source_index': np.asarray(sources + pad, np.int32),
        })
      out[split] = examples
    return out


def make_task(builder, examples) -> Task:
  c = builder.builder_config
  tokenizer = from_json(builder.info.metadata['tokenizer'])
  columns = {}
  for split, ex in examples.items():
    # One id per caption word, so the word cells line up with the ids; EOS names no cell.
    columns[split] = {
        'image': Dense(np.stack(ex['image']), dtype=np.float32, scale=1 / 255),
        'caption': Ragged(encode_all(tokenizer, ex['caption'], add_eos=True), dtype=np.int32),
        'token_cells': Ragged([np.append(cells, -1) for cells in ex['caption_cells']], dtype=np.int32,
                              pad_value=-1),
        'digit_labels': Dense(np.stack(ex['digit_labels']).astype(np.int32)),
        'digit_cells': Dense(np.stack(ex['digit_cells']).astype(np.int32)),
    }
  lengths = pad_lengths(columns)
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'image_shape': (CANVAS, CANVAS, 1), 'grid': GRID, 'max_digits': c.max_digits,
          'max_caption_length': lengths['caption'], 'pad_lengths': lengths,
          'metrics': ('exact_match', 'bleu')}
  return Task(name='digit_scenes', kind='captioning', info=info, tokenizers={'caption': tokenizer},
              columns=columns, length_key='caption')
