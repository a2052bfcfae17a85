r"""Speed and memory of the attention variants against jax.nn, PyTorch SDPA and Flax's layer, in one process.

  python -m experiments.benchmark --quick                      # every workload, small sizes (< 2 minutes)
  python -m experiments.benchmark                              # the full sizes (B=1, N=8, H=64, float32)
  python -m experiments.benchmark --workloads=dense --lengths=4096 --repeats=7
  python -m experiments.benchmark --workloads=recurrent,recurrent_decode --lengths=1024,4096,16384
  python -m experiments.benchmark --workloads=models --lengths=512,2048   # whole-model steps vs PyTorch
  python -m experiments.benchmark --workloads=ring_memory --lengths=65536 # per-device memory of ring attention

Prints a markdown table and writes benchmark.md, benchmark.csv, benchmark.json and scaling.png (log-log
time against sequence length; recurrent_scaling.png for the recurrent workload) into --out_dir. Timings on a
shared machine drift: compare the speedup columns, which come from cases timed interleaved in the same group,
rather than absolute times across runs.

Two workloads run only when named: `models` (a training step of the project's 4-layer encoder and 256 tokens of
cached decoding beside the same architectures in PyTorch, `benchmarking.model_steps`; default lengths 512 and
2048) and `ring_memory` (per-device temporary memory of ring attention on 1-8 simulated devices,
`benchmarking.ring_memory`; default length 16384). Their tables go to models.md and ring_memory.md.
"""

import os

from absl import app, flags
import jax.numpy as jnp

from attention_research import benchmarking
from attention_research.benchmarking import model_steps, report, ring_memory, workloads

ON_REQUEST = ('models', 'ring_memory')  # slow or multi-process: not in the default list
_WORKLOADS = flags.DEFINE_list('workloads', list(benchmarking.WORKLOADS),
                               f'Workloads to run, from {", ".join(benchmarking.WORKLOADS + ON_REQUEST)}.')
_VARIANTS = flags.DEFINE_list('variants', list(benchmarking.VARIANTS),
                              'Project variants to time (baselines always run); each workload uses those it suits.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16', 'float16'], 'Dtype of q, k, v.')
_QUICK = flags.DEFINE_bool('quick', False, 'Small sizes: every workload in under two minutes.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed repeats per case (median reported).', lower_bound=1)
_LENGTHS = flags.DEFINE_list('lengths', None, 'Override every workload\'s sequence lengths (e.g. 128,1024).')
_HEAD_DIM = flags.DEFINE_integer('head_dim', 64, 'Head size of the attention workloads (dense, gqa, local, '
                                 'decode, linear, memory).', lower_bound=1)
_CASE_BUDGET = flags.DEFINE_float('case_budget_s', 120.0, 'recurrent workload: skip a case whose warm-up and '
                                  'repeats, extrapolated from its last length, would take longer (seconds).')
_OUT_DIR = flags.DEFINE_string('out_dir', 'benchmark_results', 'Directory for the table, CSV, JSON and plot.')


def _write(table: str, name: str):
  print('\n' + table + '\n')
  with open(os.path.join(_OUT_DIR.value, name), 'w') as f:
    f.write(table + '\n')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    lengths = [int(x) for x in _LENGTHS.value] if _LENGTHS.value else None
  except ValueError:
    raise app.UsageError(f'--lengths must be integers; got {_LENGTHS.value}') from None
  extra = [w for w in _WORKLOADS.value if w in ON_REQUEST]
  names = [w for w in _WORKLOADS.value if w not in ON_REQUEST]
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  if 'models' in extra:
    tables = model_steps.table(model_steps.run(tuple(lengths or (512, 2048)), repeats=_REPEATS.value)
                               + model_steps.run_decode(256, repeats=_REPEATS.value))
    _write(tables, 'models.md')
  if 'ring_memory' in extra:
    _write(ring_memory.table(ring_memory.measure((lengths or [16384])[0])), 'ring_memory.md')
  if extra and not names:
    return
  rows, summary = benchmarking.run(names, _VARIANTS.value, dtype=jnp.dtype(_DTYPE.value),
                                   quick=_QUICK.value, repeats=_REPEATS.value, lengths=lengths,
                                   case_budget_s=_CASE_BUDGET.value, head_dim=_HEAD_DIM.value)
  table = report.write_all(rows, summary, _OUT_DIR.value)
  print('\n' + table + '\n')
  if summary['matmul_gflops_median']:
    print(f"matmul ceiling (2048x2048, {summary['dtype']}): {summary['matmul_gflops_median']:.0f} GFLOP/s")
  for name, T in summary['crossovers'].items():
    print(f'{name} overtakes flash at T={T}' if T else f'{name} never overtakes flash at the lengths run')
  for name, tuned in summary['chunk_sizes'].items():
    print(f"{name}: chunk {tuned['chunk']} (forward ms at T={tuned['T']}: "
          + ', '.join(f'{C}: {ms:.1f}' for C, ms in tuned['ms'].items()) + ')')
  for pass_, found in summary['recurrent_crossovers'].items():
    for name, T in found.items():
      found_at = f'beats flash from T={T}' if T else 'never beats flash at the lengths run'
      print(f'recurrent {pass_}: {name} {found_at}')
  for pass_ in (workloads.FWD, workloads.FWD_BWD):
    flash = [r for r in rows if r['workload'] == 'recurrent' and r['pass'] == pass_ and r['variant'] == 'flash']
    timed = [r['T'] for r in flash if r['ms'] is not None]
    for r in (r for r in flash if r['ms'] is None):  # no time is extrapolated: crossovers use lengths both ran
      print(f'recurrent {pass_}: flash timed up to T={max(timed) if timed else None}; at T={r["T"]} {r["note"]}')
  for name, by_position in summary['decode_flatness'].items():
    print(f'{name}: ' + ', '.join(f'{ms * 1e3:.0f} us after {P} tokens' for P, ms in sorted(by_position.items())))
  print(f'written to {os.path.abspath(_OUT_DIR.value)}/')


if __name__ == '__main__':
  app.run(main)
