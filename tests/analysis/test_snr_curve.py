"""WER against SNR from a results.json: the points, the table and the figure."""

import math

import pytest

from attention_research.analysis import snr

RESULTS = {'rows': [
    {'variant': 'dot_product', 'metrics': {'wer': [0.1, 0.3], 'wer_snr0': [0.9, 0.7], 'wer_snr20': [0.2, 0.2],
                                           'cer': [0.05, 0.05]}},
    {'variant': 'crashed', 'metrics': {}}]}


def test_points_are_clean_first_then_decreasing_snr():
  curves = snr.wer_vs_snr(RESULTS)
  assert list(curves) == ['dot_product']
  points = curves['dot_product']
  assert [p[0] for p in points] == [math.inf, 20.0, 0.0]
  assert points[0][1] == pytest.approx(0.2) and points[0][2] == pytest.approx(0.1 * 2**0.5)
  assert points[2][1] == pytest.approx(0.8)
  table = snr.markdown(curves)
  assert '| clean | 20 dB | 0 dB |' in table and '0.800 ± 0.141' in table


def test_figure_is_written(tmp_path):
  path = tmp_path / 'curve.png'
  snr.plot(snr.wer_vs_snr(RESULTS), path=path)
  assert path.stat().st_size > 0


def test_results_without_snr_metrics_raise():
  with pytest.raises(ValueError, match='snr_db'):
    snr.wer_vs_snr({'rows': [{'variant': 'a', 'metrics': {'wer': [0.1]}}]})


def test_several_results_merge_under_their_labels():
  curves = snr.merged([RESULTS, RESULTS], ['seen voices', 'unseen voices'])
  assert list(curves) == ['seen voices', 'unseen voices']
  assert curves['unseen voices'] == snr.wer_vs_snr(RESULTS)['dot_product']
  with pytest.raises(ValueError, match='named'):
    snr.merged([RESULTS, RESULTS])
  with pytest.raises(ValueError, match='1 labels'):
    snr.merged([RESULTS, RESULTS], ['seen'])
