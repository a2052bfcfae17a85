"""Segmentation figure and the mask tokens' attention on their class."""

import numpy as np
import pytest

from attention_research.analysis import segmentation


def _scene():
  mask = np.zeros((1, 8, 8), np.int32)
  mask[0, :4, :4] = 3  # class 3 fills the top-left 2x2 patches of a 4x4 grid (2x2 pixels per patch)
  mask[0, 6, 6] = 1  # class 1 touches one patch
  return mask


def test_attention_on_class_counts_the_mass_on_patches_holding_the_class():
  mask = _scene()
  att = np.full((1, 4, 4, 4), 1 / 16, np.float32)  # uniform over 16 patches
  att[0, 3] = 0
  att[0, 3, 0, 0], att[0, 3, 3, 3] = 0.75, 0.25  # token 3: 0.75 on its own patches, 0.25 elsewhere
  # class 1: uniform -> 1 of 16 patches; class 3: 0.75.
  assert segmentation.attention_on_class(att, mask) == pytest.approx((1 / 16 + 0.75) / 2)
  with pytest.raises(ValueError, match='does not divide'):
    segmentation.attention_on_class(np.zeros((1, 4, 3, 3)), mask)


def test_masks_figure_writes_a_png_and_checks_shapes(tmp_path):
  mask = _scene()
  image = (mask > 0).astype(np.float32)
  att = np.full((1, 4, 4, 4), 1 / 16, np.float32)
  path = tmp_path / 'masks.png'
  segmentation.masks_figure(image, mask, mask, att, ['bg', '0', '1', '2'], path=path, dpi=40)
  assert path.stat().st_size > 0
  with pytest.raises(ValueError, match='must agree'):
    segmentation.masks_figure(image, mask[:, :4], mask, att)
  with pytest.raises(ValueError, match='class_names'):
    segmentation.masks_figure(image, mask, mask, att, ['bg'])
