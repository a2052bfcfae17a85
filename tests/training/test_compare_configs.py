"""Every config file's comparison runs: its smoke config, each model family, with its own default variants.

These runs are also the smoke runs of those arguments (test_configs does not train them again), so each row
must report the metric its config's evaluation promises."""

import math
import os

import pytest

from attention_research.training import compare
from attention_research.training.config import ExperimentConfig
from tests.training.config_cases import COMPARED, CONFIGS, FAMILIES, ROOT, SMOKE

ARGS = COMPARED


def test_families_name_existing_config_files():
  assert set(FAMILIES) <= set(CONFIGS)


@pytest.mark.parametrize('arg', ARGS)
def test_compare_runs_with_the_configs_default_variants(arg, tmp_path):
  config = compare.load_config_file(os.path.join(ROOT, 'configs', arg))
  cfg = ExperimentConfig.from_config_dict(config)
  # One seed and one training step: the comparison's plumbing, not its numbers, is what is tested here.
  config.unlock()
  config.train.steps = 1
  config.train.checkpoint_every = 0
  config.lock()
  table = compare.compare(config, str(tmp_path), seeds=1, quiet=True)
  assert [r.variant for r in table.rows] == compare.parse_list(cfg.compare.variants)
  for row in table.rows:
    assert row.error is None, (row.variant, row.error)
    headline = table.metric_names[0][0]
    assert len(row.metrics[headline]) == 1 and math.isfinite(row.metrics[headline][0]), row.metrics
  assert (tmp_path / 'results.md').exists()
  metric = dict(SMOKE).get(arg)
  for row in table.rows:
    if metric:
      assert math.isfinite(row.metrics[metric][0]) and math.isfinite(row.metrics['loss'][0]), row.metrics
    if arg.startswith('captioning.py'):  # digit_scenes knows where each named digit is
      assert 0.0 <= row.metrics['attention_hit'][0] <= 1.0
    assert list((tmp_path / row.variant).rglob('result.json')), row.variant
  names = [m for m, _ in table.metric_names]
  if arg.startswith('translation.py'):  # AER against number_phrases' gold alignment, a column of the table
    assert 'aer' in names and 'aer ↓' in (tmp_path / 'results.md').read_text()
    for row in table.rows:  # the RNN without attention has no alignment to score
      assert ('aer' in row.metrics) == (row.variant != 'none'), (row.variant, sorted(row.metrics))
  if arg.startswith('asr.py'):
    assert 'frame_agreement' in names and all(0 <= r.metrics['frame_agreement'][0] <= 1 for r in table.rows)
  if any('bleu' in r.metrics for r in table.rows):  # how BLEU tokenised, as sacrebleu signs it
    tok = 'none' if arg.startswith('translation.py') else '13a'
    assert any(f'signature nrefs:1|case:mixed|eff:no|tok:{tok}|' in n for n in table.notes), table.notes
