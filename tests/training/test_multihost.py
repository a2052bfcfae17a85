"""Two processes on this machine (jax.distributed with a localhost coordinator, gloo CPU collectives) train to the
losses of one process, and only process 0 writes the shared workdir's metrics and config."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORKER = textwrap.dedent('''
    import json, sys
    import jax
    import training_fakes as fakes
    from attention_research.training import loop, sharding
    pid, address, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if pid >= 0:
      sharding.maybe_initialize_distributed(address, 2, pid)
    cfg = fakes.tiny_config(**{'train.steps': 12, 'train.log_every': 4, 'train.checkpoint_every': 6,
                               'data.eval_batch_size': 30})
    r = loop.train_and_evaluate(cfg, workdir, task=fakes.ParityTask(), quiet=True, tensorboard=False)
    print('RESULT' + json.dumps({'processes': jax.process_count(), 'devices': len(jax.devices()),
                                 'final': r.final_metrics[0]}))
''')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [(row['step'], row['split'], row['loss']) for row in map(json.loads, f)]


def test_two_processes_train_like_one(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'tests', 'training')]))
  env.pop('XLA_FLAGS', None)
  address = f'localhost:{_free_port()}'
  procs = [subprocess.Popen([sys.executable, '-c', WORKER, str(pid), address, str(tmp_path / 'multi')], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for pid in (0, 1)]
  outs = []
  for p in procs:
    try:
      stdout, stderr = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail('the two-process run did not finish in 300 s')
    assert p.returncode == 0, stderr[-3000:]
    outs.append(json.loads(stdout.split('RESULT')[-1]))
  single = subprocess.run([sys.executable, '-c', WORKER, '-1', '', str(tmp_path / 'single')], env=env,
                          capture_output=True, text=True, timeout=300)
  assert single.returncode == 0, single.stderr[-3000:]
  one = json.loads(single.stdout.split('RESULT')[-1])
  assert [o['processes'] for o in outs] == [2, 2] and outs[0]['devices'] == 2 and one['processes'] == 1
  for o in outs:
    assert o['final']['loss'] == pytest.approx(one['final']['loss'], rel=1e-5)
    assert o['final']['accuracy'] == one['final']['accuracy']
  multi, ref = _losses(tmp_path / 'multi'), _losses(tmp_path / 'single')
  assert [m[:2] for m in multi] == [r[:2] for r in ref]  # one line per log: process 1 wrote nothing
  assert [m[2] for m in multi] == pytest.approx([r[2] for r in ref], rel=1e-5)
