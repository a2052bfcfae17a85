"""Data parallelism: 4 fake CPU devices train to the same losses as 1 (in a subprocess, since the device
count is fixed when JAX starts)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest
from jax.sharding import PartitionSpec as P

from attention_research.training.sharding import DataParallel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent('''
    import json, sys
    import jax
    import training_fakes as fakes
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
  assert 'config.train.batch_size=10 must be divisible by the 4 devices' in out['error']


def test_batch_size_must_divide_over_devices():
  dp = DataParallel()
  assert dp.num_devices == len(jax.devices()) and dp.mesh.axis_names == ('data',)
  assert dp.batch_sharding(1).spec == P(None, 'data')  # vmapped seeds: the batch is axis 1
  dp.num_devices = 4  # the check reads only the count; the subprocess test above runs 4 real devices
  dp.check_batch_size(8)
  with pytest.raises(ValueError, match='config.train.batch_size=10 must be divisible by the 4 devices'):
    dp.check_batch_size(10)
  with pytest.raises(ValueError, match='config.data.eval_batch_size=6 must be divisible'):
    dp.check_batch_size(6, 'data.eval_batch_size')
