"""Recall against state size: the points behind the figure and the figure itself."""

import numpy as np
import pytest

from attention_research.analysis import recall


def _record(variant, seq_len, width, scores, size):
  return {'cell': {'data.options.seq_len': seq_len, 'model.d_model': width}, 'variant': variant, 'scores': scores,
          'state_size': size}


RECORDS = [_record('linear', 64, 64, [0.3, 0.5], 1024.0), _record('linear', 64, 32, [0.1, 0.1], 256.0),
           _record('dot_product', 64, 32, [1.0, 1.0, 0.97], 4096.0), _record('dot_product', 128, 32, [1.0], 8192.0),
           _record('gla', 128, 32, [], 256.0), _record('local', 128, 32, [0.5], None)]


def test_points_are_curves_per_panel_sorted_by_state_size():
  data = recall.points(RECORDS)
  assert list(data) == [64, 128]
  linear = data[64]['linear']
  assert [p[0] for p in linear] == [256.0, 1024.0]
  assert linear[1][1:] == pytest.approx((0.4, np.std([0.3, 0.5], ddof=1), 2))
  assert data[64]['dot_product'][0][1] == pytest.approx(0.99)
  assert set(data[128]) == {'dot_product'}  # no scores or no state size: left out
  assert data[128]['dot_product'][0][2] == 0.0


def test_figure_has_a_panel_per_length_and_a_curve_per_variant(tmp_path):
  fig = recall.recall_vs_state_size(RECORDS, path=tmp_path / 'f.png', title='t')
  axes = fig.get_axes()
  assert len(axes) == 2 and (tmp_path / 'f.png').stat().st_size > 0
  assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ['dot_product', 'linear']
  assert axes[0].get_xscale() == 'log'


def test_no_usable_record_is_an_error():
  with pytest.raises(ValueError, match='no record'):
    recall.recall_vs_state_size([_record('gla', 64, 32, [], 1.0)])
