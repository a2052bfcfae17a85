import dataclasses
import json
import os

import numpy as np
import pytest
import training_fakes as fakes

from attention_research.training import loop, seeds


@pytest.fixture(scope='module')
def task():
  return fakes.ParityTask()


def _read_events(path):
  """Reads the TensorBoard records back with TensorFlow's reader, which checks both CRCs of every record."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return [r.numpy() for r in tf.data.TFRecordDataset([str(path)])]


def _scalars(records, tag):
  from tensorflow.core.util import event_pb2  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  events = [event_pb2.Event.FromString(r) for r in records]
  return {e.step: float(tf.make_ndarray(v.tensor)) for e in events for v in e.summary.value if v.tag == tag}


def test_train_writes_metrics_events_checkpoints_and_result(task, tmp_path, capsys):
  result = loop.train_and_evaluate(fakes.tiny_config(), str(tmp_path), task=task)
  assert result.steps == 40 and not result.stopped_early
  assert set(result.final_metrics[0]) >= {'accuracy', 'loss'}
  assert result.steps_per_second > 0 and result.compile_seconds > 0 and result.peak_memory_bytes > 0
  lines = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert [l['step'] for l in lines if l['split'] == 'train'] == [10, 20, 30, 40]
  assert lines[-1]['split'] == 'test' and lines[-1]['accuracy'] == result.final_metrics[0]['accuracy']
  # keep_checkpoints=3 of the saves at 10, 20, 30 and the final 40
  assert sorted(int(d) for d in os.listdir(tmp_path / 'checkpoints') if d.isdigit()) == [20, 30, 40]
  (events,) = os.listdir(tmp_path / 'tb' / 'seed=0')
  records = _read_events(tmp_path / 'tb' / 'seed=0' / events)
  assert b'brain.Event:2' in records[0] and any(b'train/loss' in r for r in records)
  logged = {l['step']: l['loss'] for l in lines if l['split'] == 'train'}
  np.testing.assert_allclose([_scalars(records, 'train/loss')[k] for k in logged], list(logged.values()), rtol=1e-6)
  assert json.load(open(tmp_path / 'result.json'))['steps'] == 40
  out = capsys.readouterr().out
  assert 'steps/s' in out and 'left' in out


def test_killed_run_resumes_to_the_same_final_metrics(task, tmp_path):
  cfg = fakes.tiny_config()
  uninterrupted = loop.train_and_evaluate(cfg, str(tmp_path / 'a'), task=task, quiet=True)
  # "Killed" at step 15: the checkpoint at 10 exists, steps 11-15 are lost and redone on resume.
  partial = loop.train_and_evaluate(cfg, str(tmp_path / 'b'), task=task, quiet=True, stop_after_steps=15)
  assert partial.stopped_early and partial.final_metrics == []
  resumed = loop.train_and_evaluate(cfg, str(tmp_path / 'b'), task=task, quiet=True)
  assert resumed.resumed_from == 10
  assert resumed.final_metrics == uninterrupted.final_metrics
  train_a = [l for l in map(json.loads, open(tmp_path / 'a' / 'metrics.jsonl'))]
  train_b = [l for l in map(json.loads, open(tmp_path / 'b' / 'metrics.jsonl'))]
  assert [(l['step'], l['split']) for l in train_b] == [(l['step'], l['split']) for l in train_a]
  np.testing.assert_allclose([l['loss'] for l in train_b], [l['loss'] for l in train_a], rtol=1e-6)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(task, tmp_path):
  cfg = fakes.tiny_config(**{'train.log_every': 5})
  task.poison_after = 23  # the same task object, so the compiled step is reused
  try:
    with pytest.raises(loop.NonFiniteLossError,
                       match=r'loss became nan at step 24.*last good checkpoint is step 20'):
      loop.train_and_evaluate(cfg, str(tmp_path), task=task, quiet=True)
  finally:
    task.poison_after = None
  steps = sorted(int(d) for d in os.listdir(tmp_path / 'checkpoints') if d.isdigit())
  assert steps[-1] == 20


def test_vmap_and_sequential_seeds_give_the_same_metrics(task, tmp_path):
  cfg = fakes.tiny_config()
  members = seeds.make_members(2)
  vmapped = loop.train_and_evaluate(cfg, str(tmp_path / 'v'), task=task, members=members, vmap=True, quiet=True)
  for i, m in enumerate(members):
    alone = loop.train_and_evaluate(cfg, str(tmp_path / f's{i}'), task=task, members=[m], quiet=True)
    for k, v in alone.final_metrics[0].items():
      assert vmapped.final_metrics[i][k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
  assert vmapped.final_metrics[0] != vmapped.final_metrics[1]


def test_vmapped_learning_rate_sweep_equals_separate_runs(task, tmp_path):
  cfg = fakes.tiny_config()
  from attention_research.training.config import ExperimentConfig
  spec = seeds.parse_sweep('learning_rate=1e-2,1e-3', ExperimentConfig.from_config_dict(cfg))
  assert spec == ('optim.learning_rate', [1e-2, 1e-3])
  members = seeds.make_members(1, spec)
  vmapped = loop.train_and_evaluate(cfg, str(tmp_path / 'v'), task=task, members=members, vmap=True, quiet=True)
  alone = loop.train_and_evaluate(cfg, str(tmp_path / 's'), task=task, members=[members[1]], quiet=True)
  assert vmapped.final_metrics[1]['loss'] == pytest.approx(alone.final_metrics[0]['loss'], rel=1e-4)
  assert vmapped.final_metrics[0]['loss'] != pytest.approx(vmapped.final_metrics[1]['loss'], rel=1e-4)


def test_vmap_refuses_sweeps_that_change_shapes(task, tmp_path):
  from attention_research.training.config import ExperimentConfig
  cfg = ExperimentConfig.from_config_dict(fakes.tiny_config())
  members = seeds.make_members(1, seeds.parse_sweep('width=8,16', cfg))
  with pytest.raises(ValueError, match=r'config\.model\.width needs --seed_mode=sequential'):
    loop.train_and_evaluate(cfg, str(tmp_path), task=task, members=members, vmap=True)
  with pytest.raises(ValueError, match='ambiguous|unknown'):
    seeds.parse_sweep('colour=1,2', cfg)
  with pytest.raises(ValueError, match="must look like"):
    seeds.parse_sweep('learning_rate', cfg)


def test_bad_runs_fail_before_compiling(task, tmp_path):
  with pytest.raises(ValueError, match=r"config\.data\.eval_split='dev' is not a split"):
    loop.train_and_evaluate(fakes.tiny_config(**{'data.eval_split': 'dev'}), str(tmp_path), task=task)
  with pytest.raises(ValueError, match=r'unknown field config\.objective\.beam_size'):
    cfg = fakes.tiny_config()
    with cfg.unlocked():
      cfg.objective.beam_size = 4
    loop.train_and_evaluate(cfg, str(tmp_path), task=task)
  with pytest.raises(ValueError, match='unknown attention variant'):
    loop.train_and_evaluate(fakes.tiny_config(**{'model.attention': 'nope'}), str(tmp_path), task=task)
  assert not os.path.exists(tmp_path / 'checkpoints')


def test_a_workdir_of_other_members_is_refused(task, tmp_path):
  cfg = fakes.tiny_config()
  loop.train_and_evaluate(cfg, str(tmp_path), task=task, quiet=True, members=[seeds.Member(0)], stop_after_steps=10)
  with pytest.raises(ValueError, match='holds a run of members'):
    loop.train_and_evaluate(cfg, str(tmp_path), task=task, quiet=True, members=[seeds.Member(1)])


def test_only_test_split_data_options_may_change_on_resume(tmp_path):
  """A checkpoint may be scored on another test split (spoken_digits' test_voices), never trained on other data."""
  from attention_research.training.config import ExperimentConfig

  def cfg(**options):
    return ExperimentConfig.from_config_dict(fakes.tiny_config(**{'data.options': options}))

  os.makedirs(tmp_path / 'checkpoints' / '40')
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump({'config': cfg(voices=['a', 'b']).model_dump(), 'members': ['seed=0'], 'vmap': False}, f)
  changed = loop.check_workdir(str(tmp_path), cfg(voices=['a', 'b'], test_voices=['c']), ['seed=0'], False)
  assert changed == [f"config.data.options.test_voices: '<absent>' in {tmp_path / 'config.json'}, ['c'] now"]
  with pytest.raises(ValueError, match='data.options.voices'):
    loop.check_workdir(str(tmp_path), cfg(voices=['a'], test_voices=['c']), ['seed=0'], False)


def test_a_config_field_added_after_the_run_reads_as_its_default_on_resume(tmp_path):
  """A run saved before data.pad_scope existed reads as the default there; padding may change on resume."""
  from attention_research.training.config import ExperimentConfig
  cfg = ExperimentConfig.from_config_dict(fakes.tiny_config())
  saved = cfg.model_dump()
  del saved['data']['pad_scope']
  os.makedirs(tmp_path / 'checkpoints' / '40')
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump({'config': saved, 'members': ['seed=0'], 'vmap': False}, f)
  assert loop.check_workdir(str(tmp_path), cfg, ['seed=0'], False) == []
  split = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, pad_scope='split'))
  assert loop.check_workdir(str(tmp_path), split, ['seed=0'], False) == [
      f"config.data.pad_scope: 'task' in {tmp_path / 'config.json'}, 'split' now"]
