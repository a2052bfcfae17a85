"""distorted_digits: scikit-learn digits rotated, scaled and moved on a larger canvas among clutter.

The distorted-MNIST protocol of Jaderberg et al. 2015 ("Spatial Transformer Networks", rotated / translated /
scaled digits with clutter), on scikit-learn's 8x8 digits so nothing is downloaded: each digit is drawn at a
nominal 16 px, scaled by s in [min_scale, max_scale], rotated by up to +-max_angle degrees and placed anywhere
on a `canvas` x `canvas` image where its rotated square fits; `num_clutter` fragments (clutter_size px crops
of other digits of the same split) are laid under it, max-composited. The label is the digit.

Every example keeps the affine map that undoes its distortion, in the convention of a spatial transformer:
`affine` [2, 3] maps normalised coordinates (x, y) in [-1, 1] of the upright digit's square to normalised
coordinates of the canvas, so sampling the canvas at affine @ (x, y, 1) over a grid returns the digit.
Normalised coordinates put pixel i of n at (2i + 1) / n - 1 (pixel centres, corners at -1 and 1).

Each split draws its digits and its clutter from its own share of the 1797 images, so no handwritten digit
is seen in two splits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from scipy import ndimage

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.builders.digits import NUM_IMAGES, partition, sklearn_digits
from attention_research.data.pipeline import Dense
from attention_research.data.task import Task

DIGIT = 16  # nominal side of a digit on the canvas, in pixels, before scaling
POOL_SHARES = {'train': 0.8, 'validation': 0.1, 'test': 0.1}


def affine(angle: float, scale: float, centre_xy, canvas: int) -> np.ndarray:
  """[2, 3]: normalised digit coordinates (x, y, 1) -> normalised canvas coordinates (angle in radians)."""
  k = DIGIT * scale / canvas  # the digit's half-side in normalised canvas units
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[k * c, -k * s, centre_xy[0]], [k * s, k * c, centre_xy[1]]], np.float64)


def to_pixels(u, n: int):
  """Normalised coordinate(s) -> pixel index coordinate(s) of an axis of n pixels."""
  return ((np.asarray(u) + 1.0) * n - 1.0) / 2.0


def normalised_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
  """x, y [h, w]: normalised coordinates of the pixel centres of an h x w image."""
  ys = (2.0 * np.arange(h) + 1.0) / h - 1.0
  xs = (2.0 * np.arange(w) + 1.0) / w - 1.0
  y, x = np.meshgrid(ys, xs, indexing='ij')
  return x, y


def render_digit(digit: np.ndarray, theta: np.ndarray, canvas: int) -> np.ndarray:
  """The 8x8 digit drawn on the canvas where `theta` (digit -> canvas, see `affine`) puts it; float [C, C]."""
  x, y = normalised_grid(canvas, canvas)
  a, t = theta[:, :2], theta[:, 2]
  # canvas -> digit: the inverse map, evaluated at every canvas pixel centre
  uv = np.linalg.solve(a, np.stack([x.ravel() - t[0], y.ravel() - t[1]]))
  n = digit.shape[0]
  coords = np.stack([to_pixels(uv[1], n), to_pixels(uv[0], n)])  # (row, col)
  out = ndimage.map_coordinates(digit.astype(np.float64), coords, order=1, mode='constant', cval=0.0)
  return out.reshape(canvas, canvas)


def sample_distortion(gen: np.random.Generator, c: DistortedDigitsConfig) -> tuple[float, float, np.ndarray]:
  """(angle in radians, scale, centre (x, y) normalised) with the rotated, scaled digit inside the canvas."""
  angle = np.deg2rad(gen.uniform(-c.max_angle, c.max_angle))
  scale = gen.uniform(c.min_scale, c.max_scale)
  half = DIGIT * scale / 2 * (abs(np.cos(angle)) + abs(np.sin(angle)))  # half-extent of the rotated square, px
  lo, hi = min(half, c.canvas / 2), max(c.canvas - half, c.canvas / 2)
  centre_px = gen.uniform(lo, hi, size=2)  # (x, y) of the centre in pixel-edge units
  return float(angle), float(scale), 2.0 * centre_px / c.canvas - 1.0


def add_clutter(canvas: np.ndarray, gen: np.random.Generator, pool: np.ndarray, images: np.ndarray,
                count: int, size: int) -> np.ndarray:
  """Max-composites `count` size x size crops of pool digits (drawn at 16 px) at random places."""
  side = canvas.shape[0]
  for _ in range(count):
    big = np.kron(images[gen.choice(pool)].astype(np.float64), np.ones((2, 2)))
    r, c = gen.integers(0, DIGIT - size + 1, size=2)
    y, x = gen.integers(0, side - size + 1, size=2)
    canvas[y:y + size, x:x + size] = np.maximum(canvas[y:y + size, x:x + size], big[r:r + size, c:c + size])
  return canvas


@dataclasses.dataclass(eq=False)
class DistortedDigitsConfig(_base.TaskConfig):
  canvas: int = 40
  max_angle: float = 45.0  # degrees
  min_scale: float = 0.8
  max_scale: float = 1.2
  num_clutter: int = 4
  clutter_size: int = 4


class DistortedDigits(_base.InMemoryBuilder):
  """Rotated, scaled, translated handwritten digits among clutter, with the affine map that undoes it."""

  BUILDER_CONFIGS = [
      DistortedDigitsConfig(name='default', num_train=10000, num_validation=1000, num_test=1000,
                            description='12k distorted digits on 40x40 canvases with 4 fragments of clutter.'),
      DistortedDigitsConfig(name='small', num_train=200, num_validation=50, num_test=50, description='For tests.'),
  ]

  def features(self):
    side = self.builder_config.canvas
    return tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(side, side, 1)),
        'label': tfds.features.ClassLabel(num_classes=10),
        'affine': tfds.features.Tensor(shape=(2, 3), dtype=np.float32),
        'angle': tfds.features.Scalar(np.float32),  # radians, clockwise on screen (x right, y down)
        'scale': tfds.features.Scalar(np.float32),
        'index': tfds.features.Scalar(np.int64),  # position of the digit in sklearn's array
    })

  def make_splits(self):
    c = self.builder_config
    if not 0 < c.min_scale <= c.max_scale or not 0 <= c.max_angle <= 180:
      raise ValueError(f'Need 0 < min_scale <= max_scale and 0 <= max_angle <= 180; got scales '
                       f'{c.min_scale}, {c.max_scale} and max_angle {c.max_angle}.')
    if c.canvas < DIGIT or not 0 < c.clutter_size <= DIGIT or c.num_clutter < 0:
      raise ValueError(f'Need canvas >= {DIGIT}, 0 < clutter_size <= {DIGIT} and num_clutter >= 0; got '
                       f'{c.canvas}, {c.clutter_size}, {c.num_clutter}.')
    images, labels = sklearn_digits()
    pools = partition(c.seed, {s: int(NUM_IMAGES * share) for s, share in POOL_SHARES.items()},
                      'distorted_digits_pools')
    sizes = c.sizes()
    out = {}
    for split in sampling.SPLITS:
      gen = sampling.rng(c.seed, 'distorted_digits', split)
      examples = []
      for _ in range(sizes[split]):
        index = int(gen.choice(pools[split]))
        angle, scale, centre = sample_distortion(gen, c)
        theta = affine(angle, scale, centre, c.canvas)
        canvas = np.zeros((c.canvas, c.canvas))
        canvas = add_clutter(canvas, gen, pools[split], images, c.num_clutter, c.clutter_size)
        canvas = np.maximum(canvas, render_digit(images[index], theta, c.canvas))
        examples.append({'image': np.clip(np.round(canvas), 0, 255).astype(np.uint8)[..., None],
                         'label': int(labels[index]), 'affine': theta.astype(np.float32),
                         'angle': np.float32(angle), 'scale': np.float32(scale), 'index': index})
      out[split] = examples
    return out


def make_task(builder, examples) -> Task:
  side = builder.builder_config.canvas
  columns = {split: {'image': Dense(np.stack(ex['image']), dtype=np.float32, scale=1 / 255),
                     'label': Dense(np.asarray(ex['label'], np.int32)),
                     'affine': Dense(np.stack(ex['affine']).astype(np.float32))}
             for split, ex in examples.items()}
  info = {'num_classes': 10, 'image_shape': (side, side, 1), 'pad_id': 0, 'metrics': ('accuracy',)}
  return Task(name='distorted_digits', kind='classification', info=info, tokenizers={}, columns=columns)
