"""distorted_digits: the stored affine map undoes the distortion, and no source digit is in two splits.

Determinism, other seeds and split sizes are checked for every builder in test_builders.py.
"""

import numpy as np
import pytest

from attention_research import data
from attention_research.data.builders.digits import sklearn_digits
from attention_research.layers.spatial_transformer import warp


def _correlations(canvases, thetas, digits):
  rectified = np.asarray(warp(np.asarray(canvases, np.float32), np.asarray(thetas, np.float32), (8, 8)))[..., 0]
  # A wrong transform can land on empty canvas: no variation, no correlation (0, not NaN).
  return np.nan_to_num([np.corrcoef(r.ravel(), d.ravel())[0, 1] if r.std() > 0 else 0.0
                        for r, d in zip(rectified, digits)])


def test_the_stored_transform_maps_the_digit_back_onto_its_source(build):
  ex = build('distorted_digits').examples['train']
  images, labels = sklearn_digits()
  canvases, thetas, index = np.stack(ex['image']), np.stack(ex['affine']), np.asarray(ex['index'])
  assert np.array_equal(np.asarray(ex['label']), labels[index])
  digits = images[index].astype(np.float32)
  right = _correlations(canvases, thetas, digits)
  # Clutter overlaps some digits; the median example rectifies cleanly and a wrong transform does not.
  wrong = _correlations(canvases, np.roll(thetas, 1, axis=0), digits)
  assert np.median(right) > 0.8 and np.median(wrong) < 0.3, (np.median(right), np.median(wrong))
  # The affine is a rotation by `angle` and a scale by `scale` (16 px nominal digit on the canvas).
  side = canvases.shape[1]
  angle, scale = np.asarray(ex['angle']), np.asarray(ex['scale'])
  k = 16 * scale / side
  np.testing.assert_allclose(thetas[:, 0, 0], k * np.cos(angle), atol=1e-5)
  np.testing.assert_allclose(thetas[:, 1, 0], k * np.sin(angle), atol=1e-5)
  assert np.abs(angle).max() <= np.deg2rad(45) + 1e-6 and 0.8 - 1e-6 <= scale.min() <= scale.max() <= 1.2 + 1e-6


def test_splits_draw_digits_from_disjoint_source_images(build):
  examples = build('distorted_digits').examples
  sources = {split: set(np.asarray(columns['index']).tolist()) for split, columns in examples.items()}
  assert not sources['train'] & sources['validation']
  assert not sources['train'] & sources['test']
  assert not sources['validation'] & sources['test']


def test_bad_distortion_options_are_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match='min_scale <= max_scale'):
    data.load_task('distorted_digits', size='small', data_dir=str(tmp_path), min_scale=1.5, max_scale=1.0)
