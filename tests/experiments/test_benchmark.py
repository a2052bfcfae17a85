"""The benchmark runner end to end on tiny shapes: its files, its table and its speedup columns."""

import csv
import json

import pytest

from attention_research.benchmarking import report, workloads
from tests.experiments.test_runners import run


@pytest.fixture
def run_main(tmp_path):
  # A subprocess, as a user runs it: absl flags are process-global, and other runners define the same names.
  def go(*args):
    done = run('experiments.benchmark', f'--out_dir={tmp_path}', '--repeats=2', *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path, done.stdout
  return go


def test_tiny_run_writes_table_csv_json_and_plot(run_main):
  out, printed = run_main('--workloads=dense,decode,memory', '--lengths=128')
  md = (out / 'benchmark.md').read_text()
  header = md.splitlines()[0]
  for _, name in report.COLUMNS:
    assert f' {name} |' in header
  assert header in printed and 'matmul ceiling' in printed
  rows = json.loads((out / 'benchmark.json').read_text())['rows']
  with open(out / 'benchmark.csv') as f:
    assert len(list(csv.DictReader(f))) == len(rows)
  assert (out / 'scaling.png').stat().st_size > 1000
  flash = [r for r in rows if r['variant'] == 'flash' and r['workload'] == 'dense']
  assert {(r['pass'], r['causal']) for r in flash} == {('fwd', False), ('fwd', True), ('fwd+bwd', False),
                                                       ('fwd+bwd', True)}
  for r in flash:
    assert r['ms'] > 0 and r['gflops'] > 0 and r['vs_jax'] > 0 and r['temp_mb'] > 0
    assert (r['vs_torch'] is None) == ('skipped: torch not installed' in printed)
  memory = [r for r in rows if r['workload'] == 'memory']
  assert memory and all(r['ms'] is None and r['temp_mb'] > 0 for r in memory)


def test_unknown_workload_is_refused():
  with pytest.raises(ValueError, match='unknown workloads'):
    workloads.groups(['dense', 'warp_speed'], ['flash'])


def test_seed_modes_are_timed_against_each_other():
  from attention_research import benchmarking  # pylint: disable=g-import-not-at-top
  rows, _ = benchmarking.run(['seeds'], ['flash'], repeats=1, lengths=[8], log=lambda *_: None)
  by_name = {r['variant']: r for r in rows}
  assert set(by_name) == {'sequential', 'vmap'}
  assert by_name['sequential']['vs_jax'] is None and by_name['vmap']['vs_jax'] > 0
  assert all(r['ms'] > 0 and r['pass'] == workloads.TRAIN for r in rows)
