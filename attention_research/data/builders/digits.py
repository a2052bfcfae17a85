"""digits: scikit-learn's 1797 handwritten 8x8 digits (no download needed).

Splits are a seeded, class-balanced partition of the 1797 images, so no
image appears in two splits.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Dense
from attention_research.data.task import Task

NUM_IMAGES = 1797


@functools.cache
def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
  """Images as uint8 [1797, 8, 8] in 0..255 (sklearn gives 0..16) and labels."""
  from sklearn.datasets import load_digits  # ships inside the wheel
  data = load_digits()
  images = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)
  return images, data.target.astype(np.int64)


def balanced_order(seed: int, purpose: str) -> np.ndarray:
  """A seeded permutation of image indices in which every prefix is close to
  class-balanced, so consecutive chunks make balanced splits."""
  _, labels = sklearn_digits()
  gen = sampling.rng(seed, purpose)
  rank = np.empty(len(labels), np.float64)
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    rank[gen.permutation(members)] = np.arange(len(members))
  return np.lexsort((gen.random(len(labels)), rank))


def partition(seed: int, sizes: dict[str, int], purpose: str) -> dict[str, np.ndarray]:
  total = sum(sizes.values())
  if total > NUM_IMAGES:
    raise ValueError(f'Asked for {total} distinct digit images ({sizes}) but scikit-learn has {NUM_IMAGES}.')
  return {k: np.asarray(v) for k, v in sampling.cut(balanced_order(seed, purpose), sizes).items()}


@dataclasses.dataclass(eq=False)
class DigitsConfig(_base.TaskConfig):
  pass


class Digits(_base.InMemoryBuilder):
  """scikit-learn's 8x8 handwritten digits as a tfds dataset."""

  BUILDER_CONFIGS = [
      DigitsConfig(name='default', num_train=1437, num_validation=180, num_test=180,
                   description='All 1797 images, 80/10/10.'),
      DigitsConfig(name='small', num_train=200, num_validation=50, num_test=50, description='For tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(8, 8, 1)),
        'label': tfds.features.ClassLabel(num_classes=10),
        'index': tfds.features.Scalar(np.int64),  # position in sklearn's array
    })

  def make_splits(self):
    c = self.builder_config
    images, labels = sklearn_digits()
    return {split: [{'image': images[i][..., None], 'label': int(labels[i]), 'index': int(i)} for i in idx]
            for split, idx in partition(c.seed, c.sizes(), 'digits').items()}


def make_task(builder, examples) -> Task:
  columns = {split: {'image': Dense(np.stack(ex['image']), dtype=np.float32, scale=1 / 255),
                     'label': Dense(np.asarray(ex['label'], np.int32))}
             for split, ex in examples.items()}
  info = {'num_classes': 10, 'image_shape': (8, 8, 1), 'pad_id': 0, 'metrics': ('accuracy',)}
  return Task(name='digits', kind='classification', info=info, tokenizers={}, columns=columns)
