"""Scenes of handwritten digits at free positions and sizes, with boxes and masks.

Shared by the detection and segmentation builders. A digit is one of
scikit-learn's 8x8 images, resized to a random size, cropped to the tight box
around its ink, and pasted where its box overlaps no earlier box. Because boxes
are disjoint, every pixel belongs to at most one digit, so the class map, the
boxes and the image agree exactly.

Coordinates: boxes are (x0, y0, x1, y1) in pixels, end exclusive; x is the
column, y the row.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from attention_research.data import sampling
from attention_research.data.builders.digits import NUM_IMAGES, partition, sklearn_digits

# A resampled pixel at or above this intensity (in [0, 1]) is ink.
INK_THRESHOLD = 0.3
# Share of the 1797 source images each split draws its digits from.
POOL_SHARES = {'train': 0.8, 'validation': 0.1, 'test': 0.1}
# Position draws per digit, and fresh starts per scene, before giving up on a crowded canvas.
_PLACE_TRIES = 50
_SCENE_TRIES = 20


def split_pools(seed: int, purpose: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (images uint8 [M, 8, 8], labels [M])}: disjoint, class-balanced shares of the 1797 images."""
  images, labels = sklearn_digits()
  sizes = {s: int(NUM_IMAGES * share) for s, share in POOL_SHARES.items()}
  return {s: (images[idx], labels[idx]) for s, idx in partition(seed, sizes, purpose).items()}


def resize_digit(image_8x8: np.ndarray, size: int) -> np.ndarray:
  """An [8, 8] image in [0, 1] resampled (bilinear) to [size, size], still in [0, 1]."""
  out = scipy.ndimage.zoom(image_8x8, size / image_8x8.shape[0], order=1, mode='grid-constant', grid_mode=True)
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def ink_box(digit: np.ndarray) -> tuple[int, int, int, int] | None:
  """(x0, y0, x1, y1) of the tight box around the ink of a [S, S] digit, None if it has none."""
  rows, cols = np.flatnonzero((digit >= INK_THRESHOLD).any(1)), np.flatnonzero((digit >= INK_THRESHOLD).any(0))
  if rows.size == 0:
    return None
  return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def check_boxes(boxes: np.ndarray, canvas: int) -> None:
  """Raises ValueError unless every box is non-empty, inside the canvas, and no two overlap."""
  boxes = np.asarray(boxes)
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f'Boxes must be [K, 4] (x0, y0, x1, y1), got shape {boxes.shape}.')
  for x0, y0, x1, y1 in boxes:
    if not (0 <= x0 < x1 <= canvas and 0 <= y0 < y1 <= canvas):
      raise ValueError(f'Box {(x0, y0, x1, y1)} is empty or outside the {canvas}x{canvas} canvas.')
  for i in range(len(boxes)):
    for j in range(i):
      if _overlap(boxes[i], boxes[j]):
        raise ValueError(f'Boxes {tuple(boxes[j])} and {tuple(boxes[i])} overlap.')


def _overlap(a, b) -> bool:
  return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _pool_as_float(pool: np.ndarray) -> np.ndarray:
  pool = np.asarray(pool)
  if np.issubdtype(pool.dtype, np.integer):
    return pool.astype(np.float32) / 255.0
  pool = pool.astype(np.float32)
  if pool.size and (pool.min() < 0 or pool.max() > 1):
    raise ValueError(f'A float pool must lie in [0, 1], got values in [{pool.min()}, {pool.max()}].')
  return pool


def _check_args(pool, pool_labels, canvas, min_digits, max_digits, min_size, max_size):
  if pool.ndim != 3 or pool.shape[1:] != (8, 8) or pool.shape[0] == 0:
    raise ValueError(f'pool must be [M, 8, 8] with M >= 1, got shape {pool.shape}.')
  if np.shape(pool_labels) != (pool.shape[0],):
    raise ValueError(f'pool_labels must be [{pool.shape[0]}], got shape {np.shape(pool_labels)}.')
  if not 1 <= min_digits <= max_digits:
    raise ValueError(f'Need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}.')
  if not 1 <= min_size <= max_size <= canvas:
    raise ValueError(f'Need 1 <= min_size <= max_size <= canvas, got {min_size}, {max_size}, canvas {canvas}.')


def _draw_digit(rng, pool, min_size, max_size):
  """A resized digit cropped to its ink box, and the index of its source image."""
  for _ in range(_PLACE_TRIES):
    source = int(rng.integers(len(pool)))
    digit = resize_digit(pool[source], int(rng.integers(min_size, max_size + 1)))
    box = ink_box(digit)
    if box is not None:
      x0, y0, x1, y1 = box
      return digit[y0:y1, x0:x1], source
  raise ValueError('No image in the pool has ink at or above INK_THRESHOLD after resizing.')


def _try_scene(rng, pool, canvas, n, min_size, max_size):
  crops, sources, boxes = [], [], []
  for _ in range(n):
    crop, source = _draw_digit(rng, pool, min_size, max_size)
    h, w = crop.shape
    for _ in range(_PLACE_TRIES):
      y, x = int(rng.integers(canvas - h + 1)), int(rng.integers(canvas - w + 1))
      box = (x, y, x + w, y + h)
      if not any(_overlap(box, b) for b in boxes):
        break
    else:
      return None
    crops.append(crop)
    sources.append(source)
    boxes.append(box)
  return crops, sources, boxes


def sample_free_scene(rng: np.random.Generator, pool: np.ndarray, pool_labels: np.ndarray, *, canvas: int = 48,
                      min_digits: int = 1, max_digits: int = 4, min_size: int = 10, max_size: int = 20) -> dict:
  """One scene of K in [min_digits, max_digits] digits, each resized to a size in [min_size, max_size].

  pool: [M, 8, 8] images (uint8 in 0..255 or float in [0, 1]); pool_labels: [M] digit classes.
  Returns image float32 [canvas, canvas] in [0, 1]; boxes float32 [K, 4] (x0, y0, x1, y1), end exclusive, tight
  around each digit's ink; labels int32 [K]; masks int32 [canvas, canvas] with 0 for background and label + 1
  on a digit's ink; sources int32 [K], the pool index of each digit. Everything is determined by `rng`.
  """
  pool = _pool_as_float(pool)
  _check_args(pool, pool_labels, canvas, min_digits, max_digits, min_size, max_size)
  n = int(rng.integers(min_digits, max_digits + 1))
  for _ in range(_SCENE_TRIES):
    placed = _try_scene(rng, pool, canvas, n, min_size, max_size)
    if placed is not None:
      break
  else:
    raise ValueError(f'Could not place {n} disjoint digits of size up to {max_size} on a {canvas}x{canvas} canvas; '
                     'use a larger canvas, smaller digits or fewer digits.')
  crops, sources, boxes = placed
  labels = np.asarray(pool_labels, np.int64)[sources].astype(np.int32)
  if labels.min() < 0 or labels.max() > 9:
    raise ValueError(f'Digit labels must lie in 0..9, got {labels.tolist()}.')
  check_boxes(np.asarray(boxes), canvas)
  image = np.zeros((canvas, canvas), np.float32)
  masks = np.zeros((canvas, canvas), np.int32)
  for crop, label, (x0, y0, x1, y1) in zip(crops, labels, boxes):
    image[y0:y1, x0:x1] = crop
    masks[y0:y1, x0:x1] = np.where(crop >= INK_THRESHOLD, label + 1, 0)
  return {'image': image, 'boxes': np.asarray(boxes, np.float32), 'labels': labels, 'masks': masks,
          'sources': np.asarray(sources, np.int32)}


def scene_rng(seed: int, purpose: str, split: str) -> np.random.Generator:
  """The random stream of one split's scenes, so splits and purposes never share draws."""
  return sampling.rng(seed, purpose, split)
