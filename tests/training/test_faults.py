"""Fault injection: every damage ends in a resumed run equal to an uninterrupted one, or in an error naming it.

Runs of the tiny model on the fake task, 20 steps with a checkpoint every 5 (three kept: 10, 15, 20).
"""

import glob
import json
import logging
import os
import shutil

import jax
import numpy as np
import optax
import pytest
import training_fakes as fakes
from flax import nnx

from attention_research.training import checkpoint, loop
from attention_research.training import step as step_lib

STEPS = 20


def _cfg(**overrides):
  return fakes.tiny_config(**{'train.steps': STEPS, 'train.checkpoint_every': 5, 'train.log_every': 5,
                              **overrides})


@pytest.fixture(scope='module')
def task():
  return fakes.ParityTask()


@pytest.fixture(scope='module')
def reference(task, tmp_path_factory):
  """An uninterrupted run, and a finished workdir to copy and damage."""
  workdir = tmp_path_factory.mktemp('reference')
  return loop.train_and_evaluate(_cfg(), str(workdir), task=task, quiet=True)


def _copy(reference, tmp_path) -> str:
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference.workdir, workdir)
  return workdir


def _steps(workdir):
  return sorted(int(d) for d in os.listdir(os.path.join(workdir, 'checkpoints')) if d.isdigit())


def _resume_and_compare(task, workdir, reference, resumed_from, caplog=None, names=()):
  with caplog.at_level(logging.WARNING) if caplog is not None else _nothing():
    result = loop.train_and_evaluate(_cfg(), workdir, task=task, quiet=True)
  assert result.resumed_from == resumed_from
  assert result.final_metrics == reference.final_metrics
  if caplog is not None:
    text = '\n'.join(r.getMessage() for r in caplog.records)
    for name in names:
      assert name in text, text
  return result


class _nothing:

  def __enter__(self):
    return self

  def __exit__(self, *_):
    return False


def test_a_run_killed_while_saving_resumes_to_the_same_metrics(task, reference, tmp_path):
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(_cfg(), workdir, task=task, quiet=True, stop_after_steps=12)
  ckpts = os.path.join(workdir, 'checkpoints')
  assert _steps(workdir) == [5, 10]
  # Killed inside orbax: its temporary directory, half written.
  partial = os.path.join(ckpts, '15.orbax-checkpoint-tmp-1796000000')
  shutil.copytree(os.path.join(ckpts, '10'), partial)
  os.remove(os.path.join(partial, 'state', '_METADATA'))
  # Killed after orbax renamed its directory but before the checksum file was written, with a file missing.
  shutil.copytree(os.path.join(ckpts, '10'), os.path.join(ckpts, '15'))
  os.remove(os.path.join(ckpts, '15', 'meta', 'metadata'))
  _resume_and_compare(task, workdir, reference, resumed_from=10)


def test_a_run_killed_before_its_first_checkpoint_was_committed_starts_over(task, reference, tmp_path):
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(_cfg(), workdir, task=task, quiet=True, stop_after_steps=7)
  os.remove(os.path.join(workdir, 'checkpoints', '5.sha256.json'))  # as if killed between orbax and the checksum
  _resume_and_compare(task, workdir, reference, resumed_from=None)


def _flip_bytes(path, n=16):
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2)
    data = f.read(n)
    f.seek(os.path.getsize(path) // 2)
    f.write(bytes(b ^ 0xFF for b in data))


def test_corrupt_array_bytes_fall_back_to_the_newest_intact_checkpoint(task, reference, tmp_path, caplog):
  workdir = _copy(reference, tmp_path)
  arrays = max(glob.glob(os.path.join(workdir, 'checkpoints', '20', 'state', '**', 'd', '*'), recursive=True),
               key=os.path.getsize)
  _flip_bytes(arrays)
  _resume_and_compare(task, workdir, reference, resumed_from=15, caplog=caplog,
                      names=[os.path.join(workdir, 'checkpoints', '20', 'state')])
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '20.damaged'))  # set aside, not deleted
  assert _steps(workdir) == [10, 15, 20]


def test_deleted_array_metadata_falls_back_and_names_the_directory(task, reference, tmp_path, caplog):
  workdir = _copy(reference, tmp_path)
  os.remove(os.path.join(workdir, 'checkpoints', '20', 'state', '_METADATA'))
  _resume_and_compare(task, workdir, reference, resumed_from=15, caplog=caplog,
                      names=[os.path.join(workdir, 'checkpoints', '20', 'state')])


def test_truncated_run_metadata_falls_back_and_names_the_directory(task, reference, tmp_path, caplog):
  workdir = _copy(reference, tmp_path)
  path = os.path.join(workdir, 'checkpoints', '20', 'meta', 'metadata')
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)
  _resume_and_compare(task, workdir, reference, resumed_from=15, caplog=caplog,
                      names=[os.path.join(workdir, 'checkpoints', '20', 'meta')])


def test_no_intact_checkpoint_is_refused_naming_each_one(task, reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  for step in _steps(workdir):
    os.remove(os.path.join(workdir, 'checkpoints', str(step), 'state', '_METADATA'))
  with pytest.raises(checkpoint.CheckpointError, match='no intact checkpoint') as e:
    loop.train_and_evaluate(_cfg(), workdir, task=task, quiet=True)
  for step in (10, 15, 20):
    assert os.path.join(workdir, 'checkpoints', str(step), 'state') in str(e.value)
  assert _steps(workdir) == [10, 15, 20]  # nothing deleted


def test_a_diverged_run_names_a_checkpoint_that_resumes(task, tmp_path):
  """Learning rate 1e6 after one warmup step: the later parameters are finite but huge, their loss then NaN."""
  workdir = str(tmp_path / 'run')
  diverging = {'optim.learning_rate': 1e6, 'optim.warmup_steps': 2, 'train.checkpoint_every': 1,
               'train.log_every': 1, 'train.steps': 10}
  with pytest.raises(loop.NonFiniteLossError, match=r'last good checkpoint is step 1 in') as e:
    loop.train_and_evaluate(fakes.tiny_config(**diverging), workdir, task=task, quiet=True)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'))
  assert ckpt.committed_steps() == ckpt.all_steps() == [1], e.value  # diverged checkpoints are not kept
  ckpt.close()
  # The same workdir at a sane learning rate resumes from it and stays finite.
  sane = fakes.tiny_config(**{**diverging, 'optim.learning_rate': 3e-3,
                              'train.allow_changes': 'optim.learning_rate'})
  result = loop.train_and_evaluate(sane, workdir, task=task, quiet=True)
  assert result.resumed_from == 1
  assert all(np.isfinite(v) for v in result.final_metrics[0].values())
  lines = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert all(np.isfinite(l['loss']) and l['loss'] < 10 for l in lines)


def test_a_run_diverged_from_its_first_step_names_no_checkpoint(task, tmp_path):
  workdir = str(tmp_path / 'run')
  cfg = fakes.tiny_config(**{'optim.learning_rate': 1e6, 'optim.warmup_steps': 0, 'train.checkpoint_every': 1,
                             'train.log_every': 1, 'train.steps': 10})
  with pytest.raises(loop.NonFiniteLossError, match='no checkpoint that resumes was saved'):
    loop.train_and_evaluate(cfg, workdir, task=task, quiet=True)
  assert _steps(workdir) == []


def test_non_finite_parameters_are_never_saved(tmp_path):
  model = fakes.TinyClassifier(fakes.TinyConfig(vocab_size=6, num_classes=2), rngs=nnx.Rngs(0))
  _, _, state = step_lib.init_state(model, optax.adam(1e-3), 0)
  state = state.replace(params=jax.tree.map(lambda x: x * np.nan, state.params))
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  with pytest.raises(checkpoint.NonFiniteStateError, match='not finite at step 3'):
    ckpt.save(3, state, [], {})
  ckpt.close()
  assert ckpt.all_steps() == []


def test_a_changed_config_is_refused_before_the_workdir_is_touched(task, reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  before = {name: open(os.path.join(workdir, name), 'rb').read() for name in ('config.json', 'metrics.jsonl')}
  with pytest.raises(ValueError, match=r'config\.model\.width: 16 in .*config\.json, 32 now') as e:
    loop.train_and_evaluate(_cfg(**{'model.width': 32, 'optim.learning_rate': 1e-3}), workdir, task=task)
  assert 'config.optim.learning_rate' in str(e.value) and 'train.restart' in str(e.value)
  for name, content in before.items():
    assert open(os.path.join(workdir, name), 'rb').read() == content
  # allow_changes names optimiser fields only; other fields need a restart
  with pytest.raises(ValueError, match='may only name optim'):
    _cfg(**{'train.allow_changes': 'model.width'})
  # Training further and logging / evaluating differently resume.
  further = loop.train_and_evaluate(_cfg(**{'train.steps': 25, 'train.log_every': 1, 'data.eval_examples': 16}),
                                    workdir, task=task, quiet=True)
  assert further.resumed_from == 20 and further.steps == 25
  # Starting over on purpose.
  fresh = loop.train_and_evaluate(_cfg(**{'model.width': 32, 'train.restart': True}), workdir, task=task,
                                  quiet=True)
  assert fresh.resumed_from is None and fresh.num_params != reference.num_params
  assert json.load(open(os.path.join(workdir, 'config.json')))['config']['model']['width'] == 32


def test_fewer_steps_than_the_workdir_holds_are_refused(task, reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  with pytest.raises(ValueError, match='checkpoint at step 20, beyond config.train.steps=15'):
    loop.train_and_evaluate(_cfg(**{'train.steps': 15}), workdir, task=task, quiet=True)


def test_a_corrupt_data_cache_is_rebuilt(tmp_path, caplog):
  from attention_research import data  # pylint: disable=g-import-not-at-top
  from attention_research.data import cache  # pylint: disable=g-import-not-at-top
  options = dict(size='small', data_dir=str(tmp_path), num_train=32, num_validation=8, num_test=8)
  first = data.load_task('mqar', **options)
  (directory,) = glob.glob(str(tmp_path / 'mqar' / '*' / '*'))
  os.remove(os.path.join(directory, cache.MANIFEST))
  (shard,) = glob.glob(os.path.join(directory, '*-train.tfrecord-*'))
  with open(shard, 'r+b') as f:  # cut after the first record: every remaining record passes its CRC
    f.truncate(8 + 4 + int.from_bytes(f.read(8), 'little') + 4)
  with caplog.at_level(logging.ERROR):
    second = data.load_task('mqar', **options)
  assert any('Corrupt cache' in r.getMessage() and shard in r.getMessage() for r in caplog.records)
  assert second.num_examples('train') == first.num_examples('train') == 32


def test_re_evaluating_a_finished_run_keeps_its_training_speed(task, reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  again = loop.train_and_evaluate(_cfg(), workdir, task=task, quiet=True)
  assert again.resumed_from == STEPS and again.final_metrics == reference.final_metrics
  assert again.steps_per_second == reference.steps_per_second > 0
  assert again.peak_memory_bytes == reference.peak_memory_bytes
  assert json.load(open(os.path.join(workdir, 'result.json')))['steps_per_second'] == reference.steps_per_second
  # Without the earlier result.json (or with a corrupt one) the speed is unmeasured, not invented.
  with open(os.path.join(workdir, 'result.json'), 'w') as f:
    f.write('{not json')
  blind = loop.train_and_evaluate(_cfg(), workdir, task=task, quiet=True)
  assert np.isnan(blind.steps_per_second) and blind.final_metrics == reference.final_metrics


def test_a_comparison_workdir_is_refused_naming_its_runs(task, reference, tmp_path):
  workdir = str(tmp_path / 'comparison')
  shutil.copytree(reference.workdir, os.path.join(workdir, 'dot_product'))
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump({'rows': []}, f)
  before = sorted(os.listdir(workdir))
  with pytest.raises(loop.WorkdirError, match=r"holds a comparison .*\['dot_product'\].*--workdir=.*dot_product"):
    loop.train_and_evaluate(_cfg(), workdir, task=task, quiet=True)
  assert sorted(os.listdir(workdir)) == before  # nothing started beside the runs
  resumed = loop.train_and_evaluate(_cfg(), os.path.join(workdir, 'dot_product'), task=task, quiet=True)
  assert resumed.resumed_from == STEPS and resumed.final_metrics == reference.final_metrics
