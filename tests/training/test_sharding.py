"""Data parallelism: 4 fake CPU devices train to the same losses as 1 (in a subprocess, since the device
count is fixed when JAX starts)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from attention_research.training.sharding import DataParallel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent('''
    import json, sys
    import jax
    import training_fakes as fakes
    from flax import nnx
    from attention_research.training import loop, seeds
    assert len(jax.devices()) == 4, jax.devices()
    task = fakes.ParityTask()
    cfg = fakes.tiny_config(**{'train.steps': 20, 'train.log_every': 5, 'train.checkpoint_every': 0,
                               'data.eval_batch_size': 30})
    out = {}
    for name, devices in (('one', jax.devices()[:1]), ('four', jax.devices())):
      r = loop.train_and_evaluate(cfg, sys.argv[1] + '/' + name, task=task, devices=devices, quiet=True,
                                  tensorboard=False)
      losses = [json.loads(l)['loss'] for l in open(sys.argv[1] + '/' + name + '/metrics.jsonl')]
      out[name] = {'losses': losses, 'final': r.final_metrics[0]}
    # FSDP: parameters and optimiser state split over 2 and 4 of the devices, batches over all four
    for fsdp in (2, 4):
      c = fakes.tiny_config(**{'train.steps': 20, 'train.log_every': 5, 'train.checkpoint_every': 0,
                               'data.eval_batch_size': 30, 'train.fsdp': fsdp})
      r = loop.train_and_evaluate(c, sys.argv[1] + f'/fsdp{fsdp}', task=task, devices=jax.devices(), quiet=True,
                                  tensorboard=False)
      losses = [json.loads(l)['loss'] for l in open(sys.argv[1] + f'/fsdp{fsdp}/metrics.jsonl')]
      specs = [str(x.sharding.spec) for x in jax.tree.leaves(nnx.state(r.model(0), nnx.Param))]
      out[f'fsdp{fsdp}'] = {'losses': losses, 'final': r.final_metrics[0], 'split': sum('fsdp' in s for s in specs),
                            'leaves': len(specs)}
    # vmapped seeds shard the batch axis (axis 1) the same way
    r = loop.train_and_evaluate(cfg, sys.argv[1] + '/vmap', task=task, devices=jax.devices(), quiet=True,
                                members=seeds.make_members(2), vmap=True, tensorboard=False)
    out['vmap_final'] = r.final_metrics[0]
    try:
      loop.train_and_evaluate(fakes.tiny_config(**{'train.batch_size': 10}), sys.argv[1] + '/bad', task=task)
    except ValueError as e:
      out['error'] = str(e)
    print('RESULT' + json.dumps(out))
''')


def test_four_devices_give_the_same_loss_as_one(tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'tests', 'training')]))
  proc = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split('RESULT')[-1])
  one, four = out['one'], out['four']
  assert len(one['losses']) == 5  # 4 train logs + the test evaluation
  assert four['losses'] == pytest.approx(one['losses'], rel=1e-5)
  assert four['final']['accuracy'] == one['final']['accuracy']
  assert out['vmap_final']['loss'] == pytest.approx(one['final']['loss'], rel=1e-5)
  for fsdp in ('fsdp2', 'fsdp4'):
    assert out[fsdp]['losses'] == pytest.approx(one['losses'], rel=1e-5), fsdp
    assert out[fsdp]['final']['accuracy'] == one['final']['accuracy']
    assert out[fsdp]['split'] >= out[fsdp]['leaves'] // 2, out[fsdp]  # most arrays are split, not replicated
  assert 'config.train.batch_size=10 must be divisible by the 4 devices' in out['error']


def test_batch_size_must_divide_over_devices():
  dp = DataParallel()
  assert dp.num_devices == len(jax.devices()) and dp.mesh.axis_names == ('data', 'fsdp')
  assert dp.batch_sharding(1).spec == P(None, ('data', 'fsdp'))  # vmapped seeds: the batch is axis 1
  dp.num_devices = 4  # the check reads only the count; the subprocess test above runs 4 real devices
  dp.check_batch_size(8)
  with pytest.raises(ValueError, match='config.train.batch_size=10 must be divisible by the 4 devices'):
    dp.check_batch_size(10)
  with pytest.raises(ValueError, match='config.data.eval_batch_size=6 must be divisible'):
    dp.check_batch_size(6, 'data.eval_batch_size')


@pytest.mark.parametrize('fsdp', [0, 3, True, 1.5])
def test_fsdp_must_divide_the_devices(fsdp):
  devices = jax.devices() * 4  # the check reads only the count
  with pytest.raises(ValueError, match=f'config.train.fsdp={fsdp!r} must be a positive int that divides the 4'):
    DataParallel(devices, fsdp=fsdp)


def test_fsdp_splits_the_largest_divisible_dimension():
  dp = DataParallel(jax.devices())
  dp.fsdp = 2  # the rule reads only the size; the subprocess test trains on real meshes
  assert dp.leaf_sharding(np.zeros((6, 8))).spec == P(None, 'fsdp')
  assert dp.leaf_sharding(np.zeros((8, 3))).spec == P('fsdp')
  assert dp.leaf_sharding(np.zeros((3, 5))).spec == P() and dp.leaf_sharding(np.float32(1)).spec == P()
