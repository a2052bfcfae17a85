"""Grid runs: the grid's cells, the best-of-sweep score, and a whole grid on the fake task."""

import json
import os

import pytest
import training_fakes as fakes

from attention_research.training import compare, grid, results
from attention_research.training.config import ExperimentConfig


def _cfg(**overrides):
  return ExperimentConfig.from_config_dict(fakes.tiny_config(**overrides))


def test_expansion_is_the_product_of_the_axes_with_tied_keys():
  cfg = _cfg()
  axes = grid.parse_grid('width+heads=8+1,16+2;learning_rate=1e-3,3e-3,1e-2; train.steps=5', cfg)
  assert axes[0] == (('model.width', 'model.heads'), [(8, 1), (16, 2)])
  assert axes[1][0] == ('optim.learning_rate',) and axes[1][1] == [(1e-3,), (3e-3,), (1e-2,)]
  cells = grid.expand(axes)
  assert len(cells) == 2 * 3 * 1
  assert cells[0] == {'model.width': 8, 'model.heads': 1, 'optim.learning_rate': 1e-3, 'train.steps': 5}
  assert cells[-1] == {'model.width': 16, 'model.heads': 2, 'optim.learning_rate': 1e-2, 'train.steps': 5}
  assert len({grid.cell_label(c) for c in cells}) == len(cells)
  assert grid.cell_config(cfg, cells[-1]).model['width'] == 16


def test_data_options_are_grid_keys():
  cfg = _cfg(**{'data.options': {'seq_len': 16}})
  ((keys, values),) = grid.parse_grid('seq_len=16,32', cfg)
  assert keys == ('data.options.seq_len',) and values == [(16,), (32,)]
  assert grid.cell_config(cfg, {'data.options.seq_len': 32}).data.options == {'seq_len': 32}


@pytest.mark.parametrize('spec, match', [
    ('width=8,8', 'repeats'), ('width+heads=8,16', 'parts'), ('nope=1,2', 'unknown field'), ('', 'empty'),
    ('width=8;model.width=16', 'twice'), ('width', 'must look like'), ('width=abc', 'not a valid value'),
])
def test_bad_grids_are_clear_errors(spec, match):
  with pytest.raises(ValueError, match=match):
    grid.parse_grid(spec, _cfg())


def _row(sweep, scores, error=None):
  return results.Row(variant='v', sweep=sweep, seeds=list(range(len(scores))), metrics={'accuracy': scores},
                     error=error)


def test_best_of_sweep_takes_the_best_mean_not_the_best_seed():
  rows = [_row('lr=1', [0.2, 1.0]), _row('lr=2', [0.7, 0.7]), _row('lr=3', [], error='crashed')]
  assert grid.best_of_sweep(rows, 'accuracy', 'max').sweep == 'lr=2'
  assert grid.best_of_sweep(rows, 'accuracy', 'min').sweep == 'lr=1'
  assert grid.best_of_sweep([_row('a', [0.5]), _row('b', [0.5])], 'accuracy').sweep == 'a'  # first on ties
  assert grid.best_of_sweep([rows[2]], 'accuracy') is None


def test_records_keep_every_sweep_value_and_score_the_best():
  table = results.Table('t', [_row('lr=1', [0.2, 1.0]), _row('lr=2', [0.7, 0.8])], [('accuracy', 'max')])
  (record,) = grid.records_of_table({'model.width': 8}, table)
  assert record.best == 'lr=2' and record.scores == [0.7, 0.8]
  assert record.mean_std == pytest.approx((0.75, 0.0707107), rel=1e-5)
  assert record.sweep == {'lr=1': [0.2, 1.0], 'lr=2': [0.7, 0.8]}


def test_grid_on_the_fake_task_writes_one_score_per_cell_and_variant_and_resumes(tmp_path, monkeypatch):
  config = fakes.tiny_config(**{'train.steps': 4, 'train.log_every': 2, 'train.checkpoint_every': 0})
  records = grid.run_grid(config, str(tmp_path), grid='width+heads=8+1,16+2', variants='dot_product,linear',
                          seeds=2, seed_mode='vmap', sweep='learning_rate=1e-3,1e-2', quiet=True,
                          task_for=lambda cfg: fakes.ParityTask())
  assert [(r.cell['model.width'], r.variant) for r in records] == [(8, 'dot_product'), (8, 'linear'),
                                                                  (16, 'dot_product'), (16, 'linear')]
  for r in records:
    assert set(r.sweep) == {'learning_rate=0.001', 'learning_rate=0.01'} and len(r.scores) == 2
    assert r.scores == r.sweep[r.best] and results.mean_std(r.scores)[0] == max(
        results.mean_std(v)[0] for v in r.sweep.values())
  md = open(tmp_path / 'results.md').read()
  assert 'best sweep value' in md and 'mean ± std over 2 seeds' in md and md.count('| dot_product |') == 2
  header, loaded = grid.load(str(tmp_path))
  assert header['cells_done'] == header['cells_total'] == 2 and loaded == records
  assert os.path.exists(tmp_path / 'cells' / 'width=16,heads=2' / 'results.md')
  assert json.load(open(tmp_path / 'grid.json'))['sweep'] == 'learning_rate=1e-3,1e-2'

  # Run again in the same workdir: every (cell, variant) is reused from its saved table, nothing trains.
  def no_training(*args, **kwargs):
    raise AssertionError('a finished (cell, variant) was trained again')
  monkeypatch.setattr(grid.compare_lib, 'compare', no_training)
  again = grid.run_grid(config, str(tmp_path), grid='width+heads=8+1,16+2', variants='dot_product,linear', seeds=2,
                        seed_mode='vmap', sweep='learning_rate=1e-3,1e-2', quiet=True,
                        task_for=lambda cfg: fakes.ParityTask())
  assert again == records
  saved = tmp_path / 'cells' / 'width=8,heads=1' / 'linear' / grid.TABLE_FILE
  cell_cfg = grid.cell_config(ExperimentConfig.from_config_dict(config), {'model.width': 8, 'model.heads': 1})
  fingerprint = grid._fingerprint(cell_cfg, 'linear', 2, 'vmap', 'learning_rate=1e-3,1e-2')
  assert grid._saved_table(str(saved), fingerprint).rows[0].variant == 'linear' and '"steps": 4' in fingerprint
  assert grid._saved_table(str(saved), fingerprint.replace('"steps": 4', '"steps": 5')) is None  # another config


def test_variant_options_reach_only_their_variant():
  cfg = _cfg(**{'compare.variant_options': {'local': {'window': 4}}})
  local, linear = compare.variant_config(cfg, 'local'), compare.variant_config(cfg, 'linear')
  assert local.model['attention'] == 'local' and local.model['attention_options'] == {'window': 4}
  assert linear.model['attention'] == 'linear' and 'attention_options' not in linear.model
  with pytest.raises(ValueError, match='variant_options'):
    _cfg(**{'compare.variant_options': {'local': 4}})
