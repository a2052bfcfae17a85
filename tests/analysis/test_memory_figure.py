"""The support-mass figure of memory networks: hop metrics parsed from result rows, one bar per series and hop."""

import numpy as np
import pytest

from attention_research.analysis import memory


def test_support_mass_by_hop_reads_test_and_ood_metrics():
  metrics = {'support_mass_hop2': [0.5, 0.7], 'support_mass_hop1': [0.2, 0.4], 'support_mass_last': [0.5, 0.7],
             'ood_support_mass_hop1': [0.1, 0.1], 'accuracy': [1.0, 1.0]}
  np.testing.assert_array_equal(memory.support_mass_by_hop(metrics), [[0.2, 0.4], [0.5, 0.7]])
  np.testing.assert_array_equal(memory.support_mass_by_hop(metrics, 'ood_'), [[0.1, 0.1]])
  with pytest.raises(ValueError, match='no support_mass_hop'):
    memory.support_mass_by_hop({'accuracy': [1.0]})


def test_support_mass_figure_draws_a_bar_per_series_and_hop(tmp_path):
  series = {'3 hops': np.array([[0.6, 0.7], [0.7, 0.7], [0.8, 0.9]]), '1 hop': np.array([[0.3, 0.3]])}
  fig = memory.support_mass_figure(series, chance={'3 hops': 0.3}, path=tmp_path / 'mass.png')
  heights = sorted(round(p.get_height(), 3) for p in fig.axes[0].patches)
  assert heights == [0.3, 0.65, 0.7, 0.85]
  assert (tmp_path / 'mass.png').stat().st_size > 0
  with pytest.raises(ValueError, match='at least one series'):
    memory.support_mass_figure({})
