"""Each objective's attention_for_plot, the statistics of training.plots, and compare's attention columns."""

import csv
import io
import json
import os

import numpy as np
import pytest
import training_fakes as fakes
from matplotlib import image as mpimg

from attention_research.training import compare, loop, objectives, plots, results
from attention_research.training.config import ExperimentConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# config -> (figures_for_run kind, figures that must be written). Untrained models: plots need no training.
CASES = {
    'classification.py:task=listops,smoke': ('transformer', {'self_heads', 'bars'}),
    'classification.py:task=mqar,smoke': ('transformer', {'self_heads', 'bars'}),
    'classification.py:task=digits,smoke': ('vit', {'self_heads', 'bars', 'vit_rollout'}),
    'translation.py:smoke': ('transformer', {'encoder_heads', 'self_heads', 'cross_heads', 'alignment'}),
    'translation.py:smoke,attention=linear': ('transformer', {'encoder_heads', 'self_heads', 'alignment'}),
    'translation.py:model=rnn,smoke': ('rnn', {'alignment', 'bars'}),
    'lm.py:smoke': ('transformer', {'self_heads', 'bars'}),
    'captioning.py:smoke': ('captioner', {'captions', 'regions'}),
    'asr.py:smoke': ('asr', {'asr_alignment', 'encoder_heads', 'cross_heads'}),
}


def _setup(config_arg):
  cfg = ExperimentConfig.from_config_dict(compare.load_config_file(os.path.join(ROOT, 'configs', config_arg)))
  task = loop.load_task(cfg)
  objective = objectives.make(task, cfg.objective)
  return cfg, task, objective, objective.init_model(cfg.model, 0)


def _shape_of(view, group):
  from attention_research.analysis import maps
  return next(np.shape(w) for name, w in maps.flatten(view['weights']).items() if maps.split_layer(name)[0] == group)


@pytest.mark.parametrize('config_arg', list(CASES))
def test_every_objective_gives_labelled_weights_and_figures(config_arg, tmp_path):
  cfg, task, objective, model = _setup(config_arg)
  batch = plots.example_batch(task, cfg.data.test_split)
  assert all(len(v) == 1 for v in batch.values())
  view = plots.attention_view(objective, model, batch)
  kind, expected = CASES[config_arg]
  assert view['kind'] == kind
  # Labels fit the cropped maps exactly: no padding is drawn or counted in the statistics.
  if kind == 'transformer' and 'source_tokens' in view:
    S, T = len(view['source_tokens']), len(view['target_tokens'])
    assert _shape_of(view, 'cross')[-2:] == (T, S) and _shape_of(view, 'encoder')[-2:] == (S, S)
    assert view['source_tokens'][-1] == '</s>' and '<pad>' not in view['source_tokens']
  elif kind == 'rnn':
    assert np.shape(view['weights'])[1:] == (len(view['target_tokens']), len(view['source_tokens']))
  elif kind in ('transformer', 'vit'):
    assert _shape_of(view, 'self')[-1] == len(view['tokens'])
  elif kind == 'captioner':
    assert np.shape(view['weights'])[1] == len(view['tokens']) and view['tokens'][-1] == '</s>'
  elif kind == 'asr':
    assert _shape_of(view, 'cross')[-2:] == (len(view['tokens']), np.shape(view['ctc_logits'])[1])
  paths = plots.write_figures(view, tmp_path)
  assert expected | {'viewer'} <= set(paths)
  page = paths['viewer'].read_text()
  assert page.startswith('<!DOCTYPE html>') and '"maps":[{' in page and 'http' not in page.replace(
      'http://www.w3.org/2000/svg', '')  # self-contained: nothing to fetch
  for name, path in paths.items():
    if path.suffix == '.png':
      img = mpimg.imread(path)
      assert img.ndim == 3 and 100 <= img.shape[0] < 4000 and 100 <= img.shape[1] < 4000, (name, img.shape)
      assert img[..., :3].std() > 0.01, name  # something was drawn
  summary = json.load(open(tmp_path / 'attention_summary.json'))
  assert 0.0 <= summary['attn_normalised_entropy'] <= 1.0 + 1e-6
  # Distance is for self-attention only: models whose only map is cross-attention have none.
  assert ('attn_mean_distance' in summary) == (kind not in ('rnn', 'captioner'))


def test_statistics_use_causal_masks_and_skip_cross_attention_for_distance():
  T = 5
  causal_uniform = np.tril(np.ones((T, T)))
  causal_uniform /= causal_uniform.sum(-1, keepdims=True)
  one_hot = np.eye(T)[None, None]
  view = {'kind': 'transformer', 'weights': {'self': [causal_uniform[None, None]]}, 'causal': ('self',)}
  stats = plots.attention_summary(view)
  # Uniform over the keys each query may see is maximal entropy once the mask is known (log(t + 1), not log T);
  # the first query sees one key, which counts as 0.
  assert stats['attn_normalised_entropy'] == pytest.approx((T - 1) / T)
  assert stats['attn_mean_distance'] == pytest.approx(np.mean([t / 2 for t in range(T)]))
  view = {'kind': 'transformer', 'weights': {'self': [one_hot], 'cross': [np.full((1, 1, T, 3), 1 / 3)]},
          'causal': ('self',), 'cross': ('cross',)}
  stats = plots.attention_summary(view)
  assert stats['attn_normalised_entropy'] == pytest.approx(0.5)  # mean of 0 (one-hot) and 1 (uniform)
  assert stats['attn_mean_distance'] == pytest.approx(0.0)  # the cross map's positions are another sequence


def test_models_without_weights_fail_clearly():
  task = fakes.ParityTask(n=(16, 8, 8))
  objective = objectives.make(task)
  model = objective.init_model(fakes.tiny_config().model, 0)
  with pytest.raises(NotImplementedError, match='does not return attention weights'):
    plots.attention_view(objective, model, plots.example_batch(task, 'test'))


def test_results_show_attention_columns_only_when_rows_have_them(tmp_path):
  rows = [results.Row('dot_product', seeds=[0, 1], params=10, metrics={'accuracy': [0.5, 0.7]},
                      attention={'attn_normalised_entropy': [0.25, 0.75], 'attn_mean_distance': [2.0, 2.0]}),
          results.Row('linear', error='ValueError: boom')]
  table = results.Table('t', rows, [('accuracy', 'max')])
  md = table.markdown()
  assert '| attn entropy | attn distance |' in md and '| 0.5000 ± 0.3536 | 2.0000 ± 0.0000 |' in md
  paths = table.write(str(tmp_path))
  row = next(csv.DictReader(io.StringIO(open(paths['csv']).read())))
  assert float(row['attn_normalised_entropy_mean']) == pytest.approx(0.5)
  assert json.load(open(paths['json']))['rows'][0]['attention_summary']['attn_mean_distance'] == [2.0, 0.0]
  assert 'attn' not in results.Table('t', rows[1:], [('accuracy', 'max')]).markdown()


def test_compare_adds_attention_statistics_and_plots_per_variant(tmp_path):
  config = compare.load_config_file(os.path.join(ROOT, 'configs/classification.py:task=mqar,smoke'))
  with config.unlocked():
    config.train.steps = 2
    config.train.checkpoint_every = 0
  # One approximate variant (its weights are reconstructed), two vmapped seeds: statistics per seed.
  table = compare.compare(config, str(tmp_path), variants='linear', seeds=2, seed_mode='vmap', quiet=True,
                          plot=True)
  (row,) = table.rows
  assert row.error is None and len(row.attention['attn_normalised_entropy']) == 2
  assert 0.0 < np.mean(row.attention['attn_normalised_entropy']) <= 1.0
  md = open(tmp_path / 'results.md').read()
  assert '| attn entropy | attn distance |' in md and 'attn entropy: attention entropy normalised' in md
  assert 'attn_mean_distance_std' in open(tmp_path / 'results.csv').read()
  assert json.load(open(tmp_path / 'results.json'))['rows'][0]['attention_summary']['attn_normalised_entropy']
  assert sorted(os.listdir(tmp_path / 'plots')) == ['linear']  # the first seed's figures
  assert (tmp_path / 'plots' / 'linear' / 'self_heads.png').exists()


def test_compare_keeps_metrics_when_a_model_gives_no_weights(tmp_path):
  table = compare.compare(fakes.tiny_config(**{'train.steps': 4}), str(tmp_path), variants='dot_product,linear',
                          seeds=1, seed_mode='sequential', task=fakes.ParityTask(), quiet=True, plot=True)
  assert all(r.error is None and r.metrics['accuracy'] and not r.attention for r in table.rows)
  md = table.markdown()
  assert 'attn entropy' not in md
  assert 'No attention statistics for dot_product, linear: NotImplementedError: TinyClassifier' in md
  assert not (tmp_path / 'plots').exists()
