"""rectified_figure: one column per example, inputs above outputs, checked shapes."""

import numpy as np
import pytest
from PIL import Image

from attention_research.analysis.rectified import rectified_figure


def test_writes_a_png_of_inputs_above_outputs(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / 'stn.png'
  fig = rectified_figure(rng.random((3, 12, 12, 1)), rng.random((3, 6, 6)), labels=[1, 2, 3], path=path)
  assert len(fig.axes) == 6 and [ax.get_title() for ax in fig.axes[:3]] == ['1', '2', '3']
  assert Image.open(path).size == (round(3 * 1.2 * 100), 250)


def test_mismatched_inputs_raise_value_error():
  with pytest.raises(ValueError, match='as many outputs'):
    rectified_figure(np.zeros((3, 4, 4)), np.zeros((2, 4, 4)))
  with pytest.raises(ValueError, match=r'inputs must be \[N, H, W\]'):
    rectified_figure(np.zeros((3, 4, 4, 3)), np.zeros((3, 4, 4)))
