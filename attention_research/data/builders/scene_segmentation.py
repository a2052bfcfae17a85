"""scene_segmentation: free-position digit scenes with a per-pixel class map (0 background, digit + 1).

Scenes come from `_free_scenes.sample_free_scene`: 1 to 4 scikit-learn digits resized to 10-20 pixels at free,
non-overlapping positions on a 48x48 canvas. A pixel is labelled with its digit's class where the resized digit
has ink, so the map is exact (no annotation noise). Each split draws its digits from its own share of the 1797
source images, so no handwritten digit is seen in two splits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base, _free_scenes
from attention_research.data.pipeline import Dense
from attention_research.data.task import Task

NUM_CLASSES = 11  # background + 10 digits
CLASS_NAMES = ('background', *map(str, range(10)))


@dataclasses.dataclass(eq=False)
class SceneSegmentationConfig(_base.TaskConfig):
  canvas: int = 48
  min_digits: int = 1
  max_digits: int = 4
  min_size: int = 10
  max_size: int = 20


class SceneSegmentation(_base.InMemoryBuilder):
  """Digit scenes with per-pixel class masks."""

  BUILDER_CONFIGS = [
      SceneSegmentationConfig(name='default', num_train=4000, num_validation=500, num_test=500,
                              description='5k 48x48 scenes of 1 to 4 digits.'),
      SceneSegmentationConfig(name='small', num_train=64, num_validation=16, num_test=16, description='For tests.'),
  ]

  def features(self):
    n = self.builder_config.canvas
    return tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(n, n, 1)),
        'mask': tfds.features.Tensor(shape=(n, n), dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB),
        'digit_labels': tfds.features.Tensor(shape=(self.builder_config.max_digits,), dtype=np.int32),
    })

  def make_splits(self):
    c = self.builder_config
    pools = _free_scenes.split_pools(c.seed, 'scene_segmentation_pools')
    out = {}
    for split, size in c.sizes().items():
      gen = sampling.rng(c.seed, 'scene_segmentation', split)
      examples = []
      for _ in range(size):
        s = _free_scenes.sample_free_scene(gen, *pools[split], canvas=c.canvas, min_digits=c.min_digits,
                                           max_digits=c.max_digits, min_size=c.min_size, max_size=c.max_size)
        labels = np.full(c.max_digits, -1, np.int32)
        labels[:len(s['labels'])] = s['labels']
        examples.append({'image': np.round(s['image'] * 255).astype(np.uint8)[..., None],
                         'mask': s['masks'].astype(np.uint8), 'digit_labels': labels})
      out[split] = examples
    return out


def make_task(builder, examples) -> Task:
  n = builder.builder_config.canvas
  columns = {split: {'image': Dense(np.stack(ex['image']), dtype=np.float32, scale=1 / 255),
                     'mask': Dense(np.stack(ex['mask']).astype(np.int32))}
             for split, ex in examples.items()}
  info = {'num_classes': NUM_CLASSES, 'class_names': CLASS_NAMES, 'image_shape': (n, n, 1), 'pad_id': 0,
          'metrics': ('mean_iou', 'pixel_accuracy')}
  return Task(name='scene_segmentation', kind='segmentation', info=info, tokenizers={}, columns=columns)
