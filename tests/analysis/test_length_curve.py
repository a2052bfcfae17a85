"""The length curve and per-bucket table read bucketed metrics from result tables."""

import json

import numpy as np
import pytest

from attention_research.analysis import length_curve


def _table(title, rows):
  return {'title': title, 'rows': [{'variant': v, 'sweep': '', 'error': None, 'metrics': m} for v, m in rows]}


ROWS = _table('rnn', [
    ('none', {'bleu': [50.0, 52.0], 'bleu_len_001_010': [90.0, 92.0], 'bleu_len_011_020': [30.0, 34.0],
              'examples_len_001_010': [5.0, 5.0], 'examples_len_011_020': [7.0, 7.0]}),
    ('bahdanau', {'bleu_len_001_010': [95.0, 95.0], 'bleu_len_011_020': [90.0, 94.0],
                  'examples_len_001_010': [5.0, 5.0], 'examples_len_011_020': [7.0, 7.0]}),
])


def test_rows_curves_and_table(tmp_path):
  path = tmp_path / 'results.json'
  path.write_text(json.dumps(ROWS))
  crashed = _table('transformer', [('dot_product', {})])
  rows = length_curve.rows_of(str(path), crashed)
  assert [r['variant'] for r in rows] == ['none', 'bahdanau']
  assert length_curve.buckets(rows, 'bleu') == [(1, 10), (11, 20)]
  mean, std, count = length_curve.curve(rows[0], 'bleu', [(1, 10), (11, 20), (21, 30)])
  np.testing.assert_allclose(mean[:2], [91.0, 32.0])
  np.testing.assert_allclose(std[:2], [2**0.5, 2 * 2**0.5])  # sample std, as in the result tables
  assert np.isnan(mean[2]) and count[1] == 7.0
  table = length_curve.markdown(rows, 'bleu', train_length=10)
  assert '| 1-10 | 5 | 91.00 ± 1.41 | 95.00 ± 0.00 |' in table
  assert '| 11-20 * | 7 | 32.00 ± 2.83 | 92.00 ± 2.83 |' in table


def test_write_draws_the_figure(tmp_path):
  rows = length_curve.rows_of(ROWS)
  paths = length_curve.write(rows, str(tmp_path), train_length=10)
  assert (tmp_path / 'length_curve.png').stat().st_size > 0
  assert 'bleu per source length' in open(paths['md']).read()
  assert length_curve.write(length_curve.rows_of(_table('x', [('a', {'bleu': [1.0]})])), str(tmp_path / 'no')) == {}
  with pytest.raises(ValueError, match='per-length values'):
    length_curve.markdown(rows, 'chrf')


def test_labels_tell_runs_of_one_variant_apart(tmp_path):
  rows = length_curve.relabel(length_curve.rows_of(ROWS), ['no attention', 'Bahdanau'])
  assert [r['variant'] for r in rows] == ['no attention', 'Bahdanau']
  assert '| no attention bleu | Bahdanau bleu |' in length_curve.markdown(rows, 'bleu')
  with pytest.raises(ValueError, match='1 labels'):
    length_curve.relabel(rows, ['one'])
