"""Every config file: its smoke variant trains and evaluates on the built-in data; bad options fail early."""

import math
import os

import pytest

from attention_research.training import compare, loop
from attention_research.training.config import ExperimentConfig
from tests.training.config_cases import COMPARED, CONFIGS, ROOT, SMOKE

RECALL_TASKS = ['mqar_rebind', 'mqar_compositional', 'fuzzy_recall', 'noisy_recall', 'compression', 'memorization']


def load(arg):
  return compare.load_config_file(os.path.join(ROOT, 'configs', arg))


def test_every_config_file_has_a_smoke_test_and_a_run_command():
  assert CONFIGS == ['asr.py', 'captioning.py', 'classification.py', 'detection.py', 'lm.py', 'ner.py', 'qa.py',
                     'recall.py', 'segmentation.py', 'sentiment.py', 'span_qa.py', 'stn.py', 'summarization.py',
                     'translation.py', 'vqa.py']
  for name in CONFIGS:
    assert any(arg.startswith(name) for arg, _ in SMOKE), name
    source = open(os.path.join(ROOT, 'configs', name)).read()
    assert f'--config=configs/{name}' in source and 'python -m experiments.' in source


@pytest.mark.parametrize('arg', [a for a, _ in SMOKE] + ['classification.py:task=imdb,smoke', 'lm.py',
                                                          'classification.py:task=mqar,suite',
                                                          'classification.py:task=digits,suite', 'asr.py:suite',
                                                          'detection.py:model=grid,smoke',
                                                          'detection.py:queries=learned,smoke']
                         + ['recall.py:grid', 'recall.py:grid,full', 'recall.py:grid,smoke']
                         + [f'recall.py:task={t}' for t in RECALL_TASKS]
                         + [f'recall.py:task={t},smoke' for t in RECALL_TASKS])
def test_configs_are_locked_and_valid(arg):
  config = load(arg)
  assert config.is_locked
  cfg = ExperimentConfig.from_config_dict(config)
  assert cfg.train.steps >= 1 and cfg.compare.variants


@pytest.mark.parametrize('arg, match', [
    ('classification.py:task=cifar', "unknown task 'cifar'"),
    ('classification.py:task=mqar,smoke,attention=nope', "config.model .*unknown attention variant 'nope'"),
    ('asr.py:ctc_weight=1.5,smoke', r'config\.model \(asr\.ASR\): ctc_weight must be in \[0, 1\]'),
    ('asr.py:decode=viterbi', r'config\.objective\.decode_method must be one of'),
    ('asr.py:model=las,attention=bahdanau,smoke', r"unknown LAS attention 'bahdanau'; known: \['dot', "),
    ('translation.py:model=lstm', "unknown model 'lstm'"),
    ('lm.py:colour=red', "unknown config option 'colour'"),
    ('qa.py:task=4', 'unknown story_qa task 4'),
    ('qa.py:model=lstm', "unknown model 'lstm'"),
    ('ner.py:smoke,attention=nope', "config.model .*unknown attention variant 'nope'"),
    ('recall.py:task=copying', "unknown task 'copying'"),
    ('recall.py:full', 'full is an option of grid'),
    ('recall.py:grid,task=compression', 'grid is defined for task=mqar'),
    ('summarization.py:beam=0', 'beam must be >= 1'),
    ('vqa.py:image=maybe', "config option image='maybe' is not a bool"),
    ('vqa.py:smoke,attention=local', 'cannot be a cross-attention'),
    ('stn.py:backbone=resnet', "unknown backbone 'resnet'"),
    ('stn.py:backbone=vit,attention=nope,smoke', "config.model .*unknown attention variant 'nope'"),
    ('detection.py:model=yolo', "unknown model 'yolo'"),
    ('detection.py:queries=random', "unknown queries 'random'"),
    ('detection.py:smoke,attention=gated_delta', 'cannot be a cross-attention'),
])
def test_bad_config_options_fail_before_compiling(arg, match, tmp_path):
  # Options the config file checks fail when it loads; model fields (their dataclass needs the task's
  # vocabulary) fail when the run starts, before any model is built or compiled.
  with pytest.raises(ValueError, match=match):
    loop.train_and_evaluate(load(arg), str(tmp_path))
  assert not (tmp_path / 'checkpoints').exists()


# Smoke configs that test_compare_configs trains already (with their default variants) are not trained again.
@pytest.mark.parametrize('arg, metric', [(a, m) for a, m in SMOKE if a not in COMPARED])
def test_smoke_config_trains_and_evaluates(arg, metric, tmp_path):
  result = loop.train_and_evaluate(load(arg), str(tmp_path), quiet=True)
  (final,) = result.final_metrics
  assert metric in final and math.isfinite(final[metric]) and math.isfinite(final['loss'])
  if arg.startswith(('captioning.py', 'vqa.py')):  # digit_scenes and scene_vqa know where each digit is
    assert 0.0 <= final['attention_hit'] <= 1.0
  assert result.steps == ExperimentConfig.from_config_dict(load(arg)).train.steps
  assert os.path.exists(tmp_path / 'result.json')
