import matplotlib

matplotlib.use('Agg')  # no display on the test machines; the analysis code never uses pyplot itself

import matplotlib.image
import numpy as np
import pytest


def _softmax(x, axis=-1):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


@pytest.fixture
def random_weights():
  """random_weights(*shape, seed=0): rows that sum to 1 over the last axis."""
  def make(*shape, seed=0, sharpness=2.0):
    return _softmax(np.random.default_rng(seed).normal(size=shape) * sharpness)
  return make


@pytest.fixture
def png():
  """png(path, height, width) or png(path, fig=fig): reads the file back as a PNG and checks its pixel size
  (given, or the figure's size in inches times its dpi)."""
  def check(path, height=None, width=None, *, fig=None):
    if fig is not None:
      w, h = fig.get_size_inches() * fig.dpi
      height, width = int(round(h)), int(round(w))
    path = str(path)
    with open(path, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n', f'{path} is not a PNG file'
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4), img.shape
    if height is not None:
      assert img.shape[:2] == (height, width), (img.shape, (height, width))
    # A real figure, not a blank canvas.
    assert img[..., :3].std() > 0.01
    return img
  return check

