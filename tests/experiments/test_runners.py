"""The absl runners end to end, as a user calls them (subprocesses from the repository root)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = 'configs/classification.py:task=mqar,smoke'


def run(*args, timeout=300):
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''), JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', *args], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


def test_train_runs_then_a_rerun_resumes_from_the_final_checkpoint(tmp_path):
  first = run('experiments.train', f'--config={SMOKE}', f'--workdir={tmp_path}', '--config.train.steps=4')
  assert first.returncode == 0, first.stderr[-3000:]
  assert 'steps/s' in first.stdout and 'final metrics' in first.stdout
  assert 'CheckpointManager' not in first.stderr  # orbax's INFO lines stay quiet
  final = json.load(open(tmp_path / 'result.json'))['final_metrics'][0]
  second = run('experiments.train', f'--config={SMOKE}', f'--workdir={tmp_path}', '--config.train.steps=4')
  assert second.returncode == 0, second.stderr[-3000:]
  assert 'resumed from step 4' in second.stdout
  assert json.load(open(tmp_path / 'result.json'))['final_metrics'][0] == final


def test_compare_writes_a_table_of_every_variant(tmp_path):
  proc = run('experiments.compare', f'--config={SMOKE}', '--variants=dot_product,linear', '--seeds=2',
             '--seed_mode=vmap', f'--workdir={tmp_path}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  md = open(tmp_path / 'results.md').read()
  assert md in proc.stdout
  for variant in ('dot_product', 'linear'):
    row = next(line for line in md.splitlines() if line.startswith(f'| {variant} |'))
    assert ' ± ' in row
  assert (tmp_path / 'results.csv').exists() and (tmp_path / 'results.json').exists()


@pytest.mark.parametrize('args, message', [
    (['experiments.compare', f'--config={SMOKE}', '--seed_mode=parallel'], 'value should be one of'),
    (['experiments.compare', '--variants=linear'], 'need --config'),
    (['experiments.train', f'--config={SMOKE}', '--workdir=/tmp/x', '--config.train.steps=abc'],
     "invalid literal for int() with base 10: 'abc'"),
    (['experiments.train', f'--config={SMOKE}'], 'Flag --workdir must have a value'),
])
def test_bad_flags_fail_with_a_clear_message(args, message):
  proc = run(*args, timeout=120)
  assert proc.returncode != 0
  assert message in proc.stderr + proc.stdout
