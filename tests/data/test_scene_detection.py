"""scene_detection: boxes hold their digits and lie inside the canvas; bad boxes and configs raise.

Determinism, other seeds and disjoint split images are checked for every builder in test_builders.py, the
disjoint digit pools of the splits in test_free_scenes.py.
"""

import numpy as np
import pytest

from attention_research.data.builders import scene_detection


def test_every_box_holds_its_digit_and_lies_inside_the_canvas(build):
  built = build('scene_detection')
  canvas = built.builder.builder_config.canvas
  for split, ex in built.examples.items():
    for image, bxs, labels, count in zip(ex['image'], ex['boxes'], ex['labels'], ex['count']):
      real = labels >= 0
      assert real.sum() == count >= 1 and (labels[real] < 10).all() and (bxs[~real] == 0).all()
      inside = np.zeros((canvas, canvas), bool)
      for x0, y0, x1, y1 in bxs[real].astype(int):
        assert 0 <= x0 < x1 <= canvas and 0 <= y0 < y1 <= canvas, split
        ink = image[y0:y1, x0:x1, 0] > 0
        # Tight: the digit's ink touches all four sides of its box.
        assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
        inside[y0:y1, x0:x1] = True
      assert not (image[..., 0] > 0)[~inside].any(), 'ink outside every box'
  batch = next(built.task.batches('train', batch_size=4))
  np.testing.assert_allclose(batch['boxes'] * canvas, np.round(batch['boxes'] * canvas), atol=1e-4)


def test_a_box_outside_the_canvas_or_a_bad_config_raises():
  scene = {'image': np.zeros((48, 48), np.float32), 'boxes': np.array([[40, 2, 52, 10]], np.float32),
           'labels': np.array([3], np.int32)}
  with pytest.raises(ValueError, match='outside the 48x48 canvas'):
    scene_detection.pad_example(scene, 4, 48)
  with pytest.raises(ValueError, match='min_digits <= max_digits'):
    scene_detection.SceneDetectionConfig(name='bad', min_digits=3, max_digits=2).check()
  with pytest.raises(ValueError, match='max_size <= canvas'):
    scene_detection.SceneDetectionConfig(name='bad', max_size=60).check()
