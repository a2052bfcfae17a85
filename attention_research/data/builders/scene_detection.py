"""scene_detection: canvases of 1 to 4 handwritten digits at free positions and sizes, with a box and a class each.

Scenes come from `_free_scenes.sample_free_scene`: scikit-learn's 8x8 digits resized to 10..20 pixels, cropped
to their ink, placed without overlap on a 48x48 canvas. Boxes are (x0, y0, x1, y1) in pixels, end exclusive,
padded to max_digits rows with zeros; labels are padded with -1; `count` says how many are real.

Each split draws its digits from its own share of the 1797 images, so no handwritten digit is seen in two splits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data.builders import _base, _free_scenes
from attention_research.data.pipeline import Dense
from attention_research.data.task import Task

NUM_CLASSES = 10


@dataclasses.dataclass(eq=False)
class SceneDetectionConfig(_base.TaskConfig):
  canvas: int = 48
  min_digits: int = 1
  max_digits: int = 4
  min_size: int = 10
  max_size: int = 20

  def check(self):
    ints = {f: getattr(self, f) for f in ('canvas', 'min_digits', 'max_digits', 'min_size', 'max_size')}
    if any(isinstance(v, bool) or not isinstance(v, int) for v in ints.values()):
      raise ValueError(f'scene_detection options must be integers; got {ints}.')
    if not 1 <= self.min_digits <= self.max_digits:
      raise ValueError(f'Need 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}.')
    if not 1 <= self.min_size <= self.max_size <= self.canvas:
      raise ValueError(f'Need 1 <= min_size <= max_size <= canvas, got {self.min_size}, {self.max_size}, '
                       f'canvas {self.canvas}.')


def pad_example(scene: dict, max_digits: int, canvas: int) -> dict:
  """A sampled scene as a fixed-shape example; raises ValueError for a box outside the canvas."""
  boxes, labels = np.asarray(scene['boxes'], np.float32), np.asarray(scene['labels'], np.int32)
  _free_scenes.check_boxes(boxes, canvas)
  k = len(labels)
  if k > max_digits or boxes.shape != (k, 4):
    raise ValueError(f'a scene of boxes {boxes.shape} and labels {labels.shape} does not fit {max_digits} rows.')
  image = np.round(np.asarray(scene['image']) * 255.0).astype(np.uint8)
  return {'image': image[..., None],
          'boxes': np.concatenate([boxes, np.zeros((max_digits - k, 4), np.float32)]),
          'labels': np.concatenate([labels, np.full(max_digits - k, -1, np.int32)]),
          'count': np.int32(k)}


class SceneDetection(_base.InMemoryBuilder):
  """Scenes of handwritten digits with one box and class per digit, for object detection."""

  BUILDER_CONFIGS = [
      SceneDetectionConfig(name='default', num_train=10000, num_validation=1000, num_test=1000,
                           description='12k scenes of 1 to 4 digits on 48x48.'),
      SceneDetectionConfig(name='small', num_train=200, num_validation=50, num_test=50, description='For tests.'),
  ]

  def features(self):
    c = self.builder_config
    return tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(c.canvas, c.canvas, 1)),
        'boxes': tfds.features.Tensor(shape=(c.max_digits, 4), dtype=np.float32),
        'labels': tfds.features.Tensor(shape=(c.max_digits,), dtype=np.int32),
        'count': tfds.features.Scalar(np.int32),
    })

  def make_splits(self):
    c = self.builder_config
    c.check()
    pools = _free_scenes.split_pools(c.seed, 'scene_detection_pools')
    out = {}
    for split, n in c.sizes().items():
      gen = _free_scenes.scene_rng(c.seed, 'scene_detection', split)
      pool, pool_labels = pools[split]
      out[split] = [pad_example(_free_scenes.sample_free_scene(
          gen, pool, pool_labels, canvas=c.canvas, min_digits=c.min_digits, max_digits=c.max_digits,
          min_size=c.min_size, max_size=c.max_size), c.max_digits, c.canvas) for _ in range(n)]
    return out


def make_task(builder, examples) -> Task:
  """Columns image [N, H, W, 1] in [0, 1], boxes [N, M, 4] (x0, y0, x1, y1) / canvas, labels [N, M] (-1 pads)."""
  c = builder.builder_config
  columns = {split: {'image': Dense(np.stack(ex['image']), dtype=np.float32, scale=1 / 255),
                     'boxes': Dense(np.stack(ex['boxes']).astype(np.float32) / np.float32(c.canvas)),
                     'labels': Dense(np.stack(ex['labels']).astype(np.int32))}
             for split, ex in examples.items()}
  info = {'num_classes': NUM_CLASSES, 'image_shape': (c.canvas, c.canvas, 1), 'max_objects': c.max_digits, 'pad_id': 0,
          'metrics': ('map', 'ap50')}
  return Task(name='scene_detection', kind='detection', info=info, tokenizers={}, columns=columns)

