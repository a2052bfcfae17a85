"""Benchmark rows -> a markdown table, CSV, JSON and a log-log plot of time against sequence length."""

from __future__ import annotations

import csv
import json
import math
import os

from attention_research.analysis import _plot

# (key, header) in table order.
COLUMNS = (
    ('workload', 'workload'), ('variant', 'variant'), ('pass', 'pass'), ('T', 'T'), ('S', 'S'),
    ('causal', 'causal'), ('ms', 'ms'), ('compile_s', 'compile s'), ('gflops', 'GFLOP/s'),
    ('pct_matmul', '% matmul'), ('vs_jax', 'vs jax'), ('vs_torch', 'vs torch'), ('vs_flash', 'vs flash'),
    ('temp_mb', 'temp MB'), ('note', 'note'),
)
LEGEND = (
    'ms: median of interleaved repeats after warm-up; compile s: jit(...).lower().compile(), apart. '
    'GFLOP/s: useful FLOPs of exact attention (4 B N T S H, half when causal, the band when local; fwd+bwd '
    'counts 3.5x the forward, FlashAttention\'s convention, 2.5x before) per second, an effective rate for the '
    'linear-time variants; % matmul: of a 2048x2048 matmul timed in the same group. vs jax / vs torch / '
    'vs flash: speedup over jax.nn.dot_product_attention (its value_and_grad for fwd+bwd; Flax\'s '
    'nnx.MultiHeadAttention for layer rows; one step per seed for seed rows, where a call advances every seed), torch F.scaled_dot_product_attention and flash, timed together. '
    'temp MB: XLA temporary buffers of one call (memory_analysis). recurrent rows are causal (flash and linear '
    'too) and the recurrent variants run their chunked form; recurrent_decode times one jitted step against the '
    'state after T=S tokens beside flash with one query against an S-long cache.')


def _cell(value, key):
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return ''
  if key in ('vs_jax', 'vs_torch', 'vs_flash'):
    return f'{value:.2f}x'
  if key in ('ms', 'gflops', 'temp_mb'):
    return f'{value:.3g}' if value < 100 else f'{value:.0f}'
  if key in ('compile_s', 'pct_matmul'):
    return f'{value:.1f}'
  return str(value)


def markdown(rows) -> str:
  lines = ['| ' + ' | '.join(h for _, h in COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
  for row in rows:
    lines.append('| ' + ' | '.join(_cell(row.get(k), k) for k, _ in COLUMNS) + ' |')
  return '\n'.join(lines)


def write_csv(rows, path):
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=[k for k, _ in COLUMNS], extrasaction='ignore')
    writer.writeheader()
    for row in rows:
      writer.writerow({k: '' if row.get(k) is None else row.get(k) for k, _ in COLUMNS})


def write_json(rows, summary, path):
  with open(path, 'w') as f:
    json.dump({'rows': rows, 'summary': summary, 'legend': LEGEND}, f, indent=1, default=str)


def plot_scaling(rows, path):
  """Log-log forward time of non-causal attention against sequence length, one line per variant."""
  series = {}
  for row in rows:
    if row['pass'] != 'fwd' or row['causal'] or row['ms'] is None or row['T'] != row['S']:
      continue
    if row['workload'] not in ('dense', 'linear', 'local'):
      continue
    name = row['variant'] if row['workload'] != 'local' else f"{row['variant']} (window)"
    if row['workload'] == 'local' and row['variant'] != 'local':
      continue
    series.setdefault(name, {})[row['T']] = row['ms']
  fig = _plot.new_figure((6.4, 4.4), 100)
  ax = fig.add_subplot()
  for name, points in sorted(series.items()):
    xs = sorted(points)
    ax.plot(xs, [points[x] for x in xs], marker='o', label=name)
  ax.set_xscale('log', base=2)
  ax.set_yscale('log')
  ax.set_xlabel('sequence length T = S')
  ax.set_ylabel('forward time (ms)')
  ax.set_title('Attention forward time, B=1 N=8 H=64')
  ax.grid(True, which='both', alpha=0.3)
  if series:
    ax.legend(fontsize=8)
  return _plot.save(fig, path)


def crossovers(rows, reference='flash', candidates=('linear', 'performer')):
  """Shortest length at which each candidate's forward time beats `reference` in the linear workload."""
  out = {}
  times = {}
  for row in rows:
    if row['workload'] == 'linear' and row['ms'] is not None:
      times.setdefault(row['variant'], {})[row['T']] = row['ms']
  ref = times.get(reference, {})
  for name in candidates:
    faster = [T for T, ms in sorted(times.get(name, {}).items()) if T in ref and ms < ref[T]]
    if name in times and ref:
      out[name] = faster[0] if faster else None
  return out


def recurrent_crossovers(rows, reference='flash'):
  """{pass: {variant: shortest T where it beats `reference`, or None}} over the recurrent workload."""
  times = {}
  for row in rows:
    if row['workload'] == 'recurrent' and row['ms'] is not None:
      times.setdefault(row['pass'], {}).setdefault(row['variant'], {})[row['T']] = row['ms']
  out = {}
  for pass_, by_variant in times.items():
    ref = by_variant.get(reference, {})
    out[pass_] = {name: next((T for T, ms in sorted(points.items()) if T in ref and ms < ref[T]), None)
                  for name, points in by_variant.items() if name != reference and ref}
  return out


def decode_flatness(rows):
  """{step case: {cache length: ms}} of the recurrent steps: flat in the position when the times agree."""
  out = {}
  for row in rows:
    if row['workload'] == 'recurrent_decode' and row['variant'].endswith('.step') and row['ms'] is not None:
      out.setdefault(row['variant'], {})[row['S']] = row['ms']
  return out


def plot_recurrent(rows, path):
  """Log-log causal forward time of the recurrent workload against length, one line per variant."""
  series = {}
  for row in rows:
    if row['workload'] == 'recurrent' and row['pass'] == 'fwd' and row['ms'] is not None:
      series.setdefault(row['variant'], {})[row['T']] = row['ms']
  fig = _plot.new_figure((6.4, 4.4), 100)
  ax = fig.add_subplot()
  for name, points in sorted(series.items()):
    xs = sorted(points)
    ax.plot(xs, [points[x] for x in xs], marker='o', label=name, linestyle='--' if name == 'flash' else '-')
  ax.set_xscale('log', base=2)
  ax.set_yscale('log')
  ax.set_xlabel('sequence length T')
  ax.set_ylabel('causal forward time (ms)')
  ax.set_title('Recurrent (chunked) vs flash, B=1 N=8 H=64')
  ax.grid(True, which='both', alpha=0.3)
  if series:
    ax.legend(fontsize=8)
  return _plot.save(fig, path)


def write_all(rows, summary, out_dir):
  os.makedirs(out_dir, exist_ok=True)
  table = markdown(rows)
  with open(os.path.join(out_dir, 'benchmark.md'), 'w') as f:
    f.write(table + '\n\n' + LEGEND + '\n')
  write_csv(rows, os.path.join(out_dir, 'benchmark.csv'))
  write_json(rows, summary, os.path.join(out_dir, 'benchmark.json'))
  plot_scaling(rows, os.path.join(out_dir, 'scaling.png'))
  if any(row['workload'] == 'recurrent' for row in rows):
    plot_recurrent(rows, os.path.join(out_dir, 'recurrent_scaling.png'))
  return table
