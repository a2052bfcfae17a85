"""The benchmark runner end to end on tiny shapes: its files, its table and its speedup columns."""

import csv
import json

import pytest

from attention_research.benchmarking import gpu_paths, report, workloads
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
  out, printed = run_main('--workloads=dense,decode,memory', '--lengths=128', '--head_dim=32')
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


def test_recurrent_workloads_time_each_variant_beside_flash():
  from attention_research import benchmarking  # pylint: disable=g-import-not-at-top
  variants = ['flash', 'linear', 'ssd', 'gated_delta']
  rows, summary = benchmarking.run(['recurrent', 'recurrent_decode'], variants, quick=True, repeats=1,
                                   lengths=[16, 32], log=lambda *_: None)
  chunked = [r for r in rows if r['workload'] == 'recurrent']
  assert {(r['variant'], r['pass'], r['T']) for r in chunked} == {
      (v, p, T) for v in variants for p in (workloads.FWD, workloads.FWD_BWD) for T in (16, 32)}
  for r in chunked:
    assert r['causal'] and r['ms'] > 0 and r['gflops'] > 0
    assert (r['vs_flash'] is None) == (r['variant'] == 'flash')
    if r['variant'] in ('ssd', 'gated_delta'):
      assert r['note'] == f"chunk {summary['chunk_sizes'][r['variant']]['chunk']}"
  assert set(summary['chunk_sizes']) == {'ssd', 'gated_delta'}
  assert set(summary['recurrent_crossovers'][workloads.FWD]) == {'linear', 'ssd', 'gated_delta'}
  steps = {(r['variant'], r['S']): r for r in rows if r['workload'] == 'recurrent_decode'}
  assert set(steps) == {(v, S) for v in ('flash', 'ssd.step', 'gated_delta.step') for S in (16, 32)}
  assert all(r['ms'] > 0 for r in steps.values())
  assert steps[('ssd.step', 32)]['vs_flash'] > 0 and steps[('flash', 32)]['vs_flash'] is None
  assert {S for S in summary['decode_flatness']['ssd.step']} == {16, 32}


def test_recurrent_run_prints_crossovers_and_where_the_budget_stopped_flash(run_main):
  # A budget no second call fits: every case is timed at the first length and skipped, with its reason, after it.
  _, printed = run_main('--workloads=recurrent', '--variants=flash,ssd', '--lengths=16,32', '--quick',
                        '--case_budget_s=1e-9', '--repeats=1')
  assert 'recurrent fwd: ssd beats flash from T=16' in printed or 'recurrent fwd: ssd never beats' in printed
  assert 'recurrent fwd: flash timed up to T=16; at T=32 skipped:' in printed
  assert 'recurrent fwd+bwd: flash timed up to T=16; at T=32 skipped:' in printed


def test_backward_flops_follow_flash_attention_convention():
  shape = workloads.Shape(128, 128)
  forward = workloads.useful_flops(shape, workloads.FWD)
  assert forward == 4 * 8 * 64 * 128 * 128
  assert workloads.useful_flops(shape, workloads.FWD_BWD) == 3.5 * forward
  assert '3.5x' in report.LEGEND


def test_case_over_budget_is_skipped_with_a_note():
  from attention_research.benchmarking import runner  # pylint: disable=g-import-not-at-top
  group = workloads.Group('recurrent', workloads.FWD, workloads.Shape(4096, 4096), None, {},
                          {'flash': 2.0, 'ssd': 1.0})
  history = {('recurrent', workloads.FWD, 'flash'): (1024, 1.0), ('recurrent', workloads.FWD, 'ssd'): (1024, 1.0)}
  skips = runner._over_budget(group, history, repeats=3, budget_s=30.0)  # pylint: disable=protected-access
  assert set(skips) == {'flash'} and 'exceeds the 30 s case budget' in skips['flash']


def test_recurrent_crossover_is_the_shortest_length_that_beats_flash():
  def row(variant, T, ms):
    return dict(workload='recurrent', variant=variant, T=T, ms=ms, **{'pass': workloads.FWD})
  rows = [row('flash', 1024, 10.0), row('flash', 4096, 100.0), row('ssd', 1024, 20.0), row('ssd', 4096, 40.0),
          row('gla', 1024, 30.0), row('gla', 4096, 200.0)]
  assert report.recurrent_crossovers(rows) == {workloads.FWD: {'ssd': 4096, 'gla': None}}


def test_gpu_check_runs_its_cases_on_the_cpu_paths():
  all_cases = gpu_paths.cases(16, 8)
  for name in ('causal', 'decode T=1', 'causal local window L/4', 'grouped K=2, key padding, soft cap'):
    T, K, options = all_cases[name]
    result = gpu_paths.check(name, T, K, options, 16, 8)
    assert result['ok'] and 0 < result['worst error / tolerance'] <= 1, result
    assert result['path'] == ('decoding form' if T == 1 else 'blocked kernel'), result
