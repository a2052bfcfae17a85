import json
import os

import pytest
import training_fakes as fakes

from attention_research.training import compare
from attention_research.training.config import ExperimentConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def task():
  return fakes.ParityTask()


def test_compare_writes_every_variant_with_mean_and_std(task, tmp_path):
  # 'additive' needs learned parameters the tiny model does not pass: it crashes and stays a row.
  table = compare.compare(fakes.tiny_config(), str(tmp_path), variants='dot_product,linear,additive', seeds=2,
                          seed_mode='vmap', task=task, quiet=True)
  assert [r.variant for r in table.rows] == ['dot_product', 'linear', 'additive']
  ok, linear, crashed = table.rows
  assert ok.seeds == [0, 1] and len(ok.metrics['accuracy']) == 2 and ok.error is None
  assert crashed.error and 'additive' in crashed.error.lower() and 'params' in crashed.error  # why it crashed
  md = open(tmp_path / 'results.md').read()
  assert 'mean ± std over 2 seeds' in md and ' ± ' in md.split('| dot_product |')[1].split('\n')[0]
  assert '| additive |' in md and '**crashed**' in md
  data = json.load(open(tmp_path / 'results.json'))
  assert [r['variant'] for r in data['rows']] == ['dot_product', 'linear', 'additive']
  assert (tmp_path / 'additive' / 'error.txt').exists()
  assert open(tmp_path / 'results.csv').read().count('\n') == 4


def test_sequential_sweep_gives_a_row_per_value(task, tmp_path):
  table = compare.compare(fakes.tiny_config(), str(tmp_path), variants='dot_product', seeds=1,
                          seed_mode='sequential', sweep='learning_rate=1e-2,1e-3', task=task, quiet=True)
  assert [r.sweep for r in table.rows] == ['learning_rate=0.01', 'learning_rate=0.001']
  assert '| dot_product (learning_rate=0.001) |' in table.markdown()
  assert table.rows[0].metrics['loss'] != table.rows[1].metrics['loss']


@pytest.mark.parametrize('kwargs, match', [
    (dict(variants='dot_product,nope'), "unknown variant 'nope'"),
    (dict(variants='linear,linear'), 'repeats'),
    (dict(seeds=0), 'seeds must be a positive integer'),
    (dict(seed_mode='parallel'), "seed_mode must be 'vmap' or 'sequential'"),
    (dict(seed_mode='vmap', sweep='width=8,16'), 'needs --seed_mode=sequential'),
])
def test_bad_arguments_fail_before_training(task, tmp_path, kwargs, match):
  with pytest.raises(ValueError, match=match):
    compare.compare(fakes.tiny_config(), str(tmp_path), task=task, quiet=True, **kwargs)
  assert not (tmp_path / 'results.md').exists()


@pytest.mark.parametrize('arg, known, unknown', [
    ('translation.py:model=rnn', ['bahdanau', 'luong'], 'dot_product_rnn'),
    ('translation.py', ['dot_product', 'additive'], 'luong'),
    ('classification.py:task=digits', ['linear'], 'bahdanau'),
])
def test_variant_names_are_checked_without_the_tasks_sizes(arg, known, unknown):
  # The configs leave vocabulary and image sizes to the task, which is not loaded for this check.
  cfg = ExperimentConfig.from_config_dict(compare.load_config_file(os.path.join(ROOT, 'configs', arg)))
  compare.check_variants(cfg, known)
  with pytest.raises(ValueError, match=f"unknown variant '{unknown}' for {cfg.model['name']}.*known"):
    compare.check_variants(cfg, known + [unknown])


def test_hybrid_patterns_are_one_variant_and_checked_against_the_layer_count():
  cfg = ExperimentConfig.from_config_dict(compare.load_config_file(os.path.join(ROOT, 'configs',
                                                                                'classification.py')))
  assert compare.parse_list('dot_product,gated_delta+dot_product') == ['dot_product', 'gated_delta+dot_product']
  compare.check_variants(cfg, ['dot_product', 'gated_delta+dot_product'])  # two encoder layers
  with pytest.raises(ValueError, match="unknown variant 'gla\\+gla\\+gla'.*3 per-layer variants"):
    compare.check_variants(cfg, ['gla+gla+gla'])


def test_state_size_is_the_per_layer_mean_of_the_registry_sizes():
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from attention_research.models import transformer as tr  # pylint: disable=g-import-not-at-top
  base = dict(vocab_size=7, d_model=16, num_heads=4, num_kv_heads=2, num_decoder_layers=2, max_length=12)
  K, H, L = 2, 4, 12
  exact = tr.DecoderLM(tr.TransformerConfig(**base), rngs=nnx.Rngs(0))
  assert compare.state_size(exact) == K * (H + H) * L
  hybrid = tr.DecoderLM(tr.TransformerConfig(**base, attention='gated_delta+dot_product'), rngs=nnx.Rngs(0))
  assert compare.state_size(hybrid) == (K * H * H + K * (H + H) * L) / 2
  longer = tr.DecoderLM(tr.TransformerConfig(**dict(base, max_length=48), attention='gated_delta+gated_delta'),
                        rngs=nnx.Rngs(0))
  assert compare.state_size(longer) == K * H * H  # a recurrent state does not grow with the sequence
