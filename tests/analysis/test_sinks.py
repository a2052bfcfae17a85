"""analysis.sinks: mass on the first key, on the most attended key, and row totals per head."""

import numpy as np
import pytest

from attention_research.analysis import sinks


def test_sink_statistics_per_head():
  T = S = 4
  sink = np.zeros((T, S))
  sink[:, 0] = 0.9
  sink[np.arange(T), np.arange(T)] += 0.1  # each query: 0.9 on key 0, 0.1 on itself (1.0 for query 0)
  spread = np.full((T, S), 0.25)
  late = np.zeros((T, S))
  late[:, 2] = 1.0  # a sink that is not the first position
  w = np.stack([sink, spread, late])[None]  # [1, 3, T, S]
  stats = sinks.sink_statistics(w)
  np.testing.assert_allclose(stats['first_mass'], [(1.0 + 3 * 0.9) / 4, 0.25, 0.0])
  np.testing.assert_allclose(stats['top_key_mass'], [(1.0 + 3 * 0.9) / 4, 0.25, 1.0])
  np.testing.assert_allclose(stats['max_weight'], [(1.0 + 3 * 0.9) / 4, 0.25, 1.0])
  np.testing.assert_allclose(stats['total_mass'], 1.0)


def test_padding_rows_are_left_out_and_sink_logits_show_in_the_total():
  w = np.full((2, 1, 3, 3), 0.2)  # rows sum to 0.6: 0.4 went to a learned sink
  w[1, :, 2] = 0.0  # a padding query
  stats = sinks.sink_statistics(w)
  assert stats['queries'][0] == 5
  assert stats['total_mass'][0] == pytest.approx(0.6) and stats['first_mass'][0] == pytest.approx(0.2)
  rows = sinks.sink_rows({'self': [w, w]}, variant='x')
  assert [(r['map'], r['layer'], r['head']) for r in rows] == [('self', 0, 0), ('self', 1, 0)]
  assert rows[0]['variant'] == 'x' and rows[1]['total_mass'] == pytest.approx(0.6)
