"""Free-position digit scenes: deterministic, and image, boxes and masks agree."""

import numpy as np
import pytest

from attention_research.data.builders import _free_scenes as fs


@pytest.fixture(scope='module')
def pool():
  return fs.split_pools(0, 'test_free_scenes')['train']


def _scenes(pool, seed, n=40, **kw):
  rng = np.random.default_rng(seed)
  return [fs.sample_free_scene(rng, *pool, **kw) for _ in range(n)]


def test_same_rng_same_scenes_other_rng_other_scenes(pool):
  a, b, c = _scenes(pool, 1, 5), _scenes(pool, 1, 5), _scenes(pool, 2, 5)
  for x, y in zip(a, b):
    assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
  assert any(not np.array_equal(x['image'], z['image']) for x, z in zip(a, c))


def test_masks_lie_in_their_boxes_and_every_box_holds_its_digit(pool):
  canvas, max_size = 40, 16
  counts = set()
  for s in _scenes(pool, 3, canvas=canvas, min_digits=2, max_digits=4, min_size=8, max_size=max_size):
    image, boxes, labels, masks = s['image'], s['boxes'].astype(int), s['labels'], s['masks']
    assert image.shape == masks.shape == (canvas, canvas) and image.dtype == np.float32
    assert boxes.shape == (len(labels), 4) and s['boxes'].dtype == np.float32 and labels.dtype == np.int32
    assert masks.dtype == np.int32 and 0 <= image.min() and image.max() <= 1
    counts.add(len(labels))
    fs.check_boxes(boxes, canvas)  # inside the canvas and pairwise disjoint
    outside = np.ones_like(masks, bool)
    for (x0, y0, x1, y1), label in zip(boxes, labels):
      inside = masks[y0:y1, x0:x1]
      assert set(np.unique(inside)) <= {0, label + 1}
      ink = inside == label + 1
      # Tight: the ink touches all four sides of its box.
      assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
      assert max(x1 - x0, y1 - y0) <= max_size
      outside[y0:y1, x0:x1] = False
    assert not masks[outside].any() and not image[outside].any()
  assert counts == {2, 3, 4}


def test_check_boxes_refuses_overlap_and_boxes_off_the_canvas():
  fs.check_boxes(np.array([[0, 0, 4, 4], [4, 0, 8, 4]]), 8)  # touching is not overlapping
  with pytest.raises(ValueError, match='overlap'):
    fs.check_boxes(np.array([[0, 0, 4, 4], [3, 3, 6, 6]]), 8)
  with pytest.raises(ValueError, match='outside'):
    fs.check_boxes(np.array([[5, 0, 9, 4]]), 8)


@pytest.mark.parametrize('kw, match', [
    ({'min_digits': 3, 'max_digits': 2}, 'min_digits'),
    ({'max_size': 60}, 'max_size'),
    ({'min_size': 0}, 'min_size'),
    ({'canvas': 24, 'min_digits': 9, 'max_digits': 9, 'min_size': 20, 'max_size': 20}, 'Could not place'),
])
def test_bad_sizes_are_clear_errors(pool, kw, match):
  with pytest.raises(ValueError, match=match):
    fs.sample_free_scene(np.random.default_rng(0), *pool, **kw)


def test_bad_pool_is_a_clear_error(pool):
  images, labels = pool
  with pytest.raises(ValueError, match='8, 8'):
    fs.sample_free_scene(np.random.default_rng(0), images[:, :4], labels)
  with pytest.raises(ValueError, match='pool_labels'):
    fs.sample_free_scene(np.random.default_rng(0), images, labels[:3])
  with pytest.raises(ValueError, match=r'\[0, 1\]'):
    fs.sample_free_scene(np.random.default_rng(0), images.astype(np.float32), labels)


def test_split_pools_are_disjoint():
  pools = fs.split_pools(0, 'test_free_scenes')
  seen = [{images.tobytes() for images in pools[s][0]} for s in ('train', 'validation', 'test')]
  assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
