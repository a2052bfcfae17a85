import csv
import io
import json

import pytest

from attention_research.training import results


def _table():
  rows = [
      results.Row('dot_product', seeds=[0, 1, 2], params=1000, metrics={'accuracy': [0.9, 0.8, 0.7], 'loss': [1, 2, 3]},
                  steps_per_second=12.5, peak_memory_bytes=3 * 2**20, compile_seconds=1.5, seed_mode='vmap'),
      results.Row('linear', seeds=[0, 1, 2], params=1050, metrics={'accuracy': [0.5, 0.5, 0.5], 'loss': [1, 1, 1]},
                  steps_per_second=20.0, peak_memory_bytes=2**20, compile_seconds=1.0, seed_mode='vmap'),
      results.Row('additive', seeds=[0, 1, 2], params=1200, metrics={'accuracy': [0.6, 0.6, 0.6], 'loss': [1, 1, 1]},
                  steps_per_second=5.0, peak_memory_bytes=2**20, compile_seconds=2.0, seed_mode='vmap'),
      results.Row('performer', error='FloatingPointError: loss became nan at step 7', seed_mode='vmap'),
  ]
  return results.Table('text: toy', rows, [('accuracy', 'max'), ('loss', 'min')], notes=['a note'])


def test_mean_and_sample_std():
  assert results.mean_std([0.9, 0.8, 0.7]) == pytest.approx((0.8, 0.1))
  assert results.mean_std([0.5]) == (0.5, 0.0)
  assert results.mean_std([]) == (None, None)


def test_markdown_rows_flags_and_errors():
  md = _table().markdown()
  assert 'mean ± std over 3 seeds' in md
  assert '| dot_product | 1000 | 0% | 0.8000 ± 0.1000 | 2.0000 ± 1.0000 | 12.5 | 3.00 | 1.5 |' in md
  assert '| linear | 1050 | +5.0% |' in md  # within 10%: no flag
  assert '| additive | 1200 | +20.0% ⚠ |' in md
  assert '**crashed**: FloatingPointError: loss became nan at step 7' in md
  assert 'more than 10%' in md and md.rstrip().endswith('a note')


def test_csv_and_json(tmp_path):
  paths = _table().write(str(tmp_path))
  rows = list(csv.DictReader(io.StringIO(open(paths['csv']).read())))
  assert [r['variant'] for r in rows] == ['dot_product', 'linear', 'additive', 'performer']
  assert float(rows[0]['accuracy_mean']) == pytest.approx(0.8) and rows[2]['params_flag'] == 'True'
  assert rows[3]['error'].startswith('FloatingPointError')
  data = json.load(open(paths['json']))
  assert data['rows'][1]['summary']['accuracy'] == [0.5, 0.0]
  assert data['rows'][2]['params_diff'] == pytest.approx(0.2)
  assert open(paths['md']).read() == _table().markdown()


def test_state_size_column_appears_when_a_row_has_it():
  assert 'state size' not in _table().markdown()
  table = _table()
  table.rows[0].state_size, table.rows[1].state_size = 24576.0, 512.0
  md = table.markdown()
  assert '| compile (s) | state size |' in md
  assert '| 12.5 | 3.00 | 1.5 | 24.6k |' in md and '| 20.0 | 1.00 | 1.0 | 512 |' in md
  assert '| 5.0 | 1.00 | 2.0 | – |' in md
  rows = list(csv.DictReader(io.StringIO(table.csv())))
  assert float(rows[1]['state_size']) == 512.0 and rows[2]['state_size'] == ''
