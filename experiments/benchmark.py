r"""Speed and memory of the attention variants against jax.nn, PyTorch SDPA and Flax's layer, in one process.

  python -m experiments.benchmark --quick                      # every workload, small sizes (< 2 minutes)
  python -m experiments.benchmark                              # the full sizes (B=1, N=8, H=64, float32)
  python -m experiments.benchmark --workloads=dense --lengths=4096 --repeats=7

Prints a markdown table and writes benchmark.md, benchmark.csv, benchmark.json and scaling.png (log-log
time against sequence length) into --out_dir. Timings on a shared machine drift: compare the speedup
columns, which come from cases timed interleaved in the same group, rather than absolute times across runs.
"""

import os

from absl import app, flags
import jax.numpy as jnp

from attention_research import benchmarking
from attention_research.benchmarking import report

_WORKLOADS = flags.DEFINE_list('workloads', list(benchmarking.WORKLOADS),
                               f'Workloads to run, from {", ".join(benchmarking.WORKLOADS)}.')
_VARIANTS = flags.DEFINE_list('variants', list(benchmarking.VARIANTS),
                              'Project variants to time (baselines always run); each workload uses those it suits.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16', 'float16'], 'Dtype of q, k, v.')
_QUICK = flags.DEFINE_bool('quick', False, 'Small sizes: every workload in under two minutes.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed repeats per case (median reported).', lower_bound=1)
_LENGTHS = flags.DEFINE_list('lengths', None, 'Override every workload\'s sequence lengths (e.g. 128,1024).')
_OUT_DIR = flags.DEFINE_string('out_dir', 'benchmark_results', 'Directory for the table, CSV, JSON and plot.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    lengths = [int(x) for x in _LENGTHS.value] if _LENGTHS.value else None
  except ValueError:
    raise app.UsageError(f'--lengths must be integers; got {_LENGTHS.value}') from None
  rows, summary = benchmarking.run(_WORKLOADS.value, _VARIANTS.value, dtype=jnp.dtype(_DTYPE.value),
                                   quick=_QUICK.value, repeats=_REPEATS.value, lengths=lengths)
  table = report.write_all(rows, summary, _OUT_DIR.value)
  print('\n' + table + '\n')
  if summary['matmul_gflops_median']:
    print(f"matmul ceiling (2048x2048, {summary['dtype']}): {summary['matmul_gflops_median']:.0f} GFLOP/s")
  for name, T in summary['crossovers'].items():
    print(f'{name} overtakes flash at T={T}' if T else f'{name} never overtakes flash at the lengths run')
  print(f'written to {os.path.abspath(_OUT_DIR.value)}/')


if __name__ == '__main__':
  app.run(main)
