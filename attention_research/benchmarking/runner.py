"""Runs the workload groups one after another, each timed interleaved with its baselines and a matmul."""

from __future__ import annotations

import gc

import jax.numpy as jnp

from attention_research.benchmarking import baselines, recurrent, report, timing, workloads

MATMUL = '__matmul__'
# Per-case limits of the groups that name a scaling exponent: the predicted time of all its calls (warm-up and
# repeats), and the XLA temporaries of one call.
CASE_BUDGET_S = 120.0
MAX_TEMP_BYTES = 16 << 30
# A speedup column is left empty on the rows of the implementation it compares with.
_SELF = {'vs_jax': ('jax.nn', 'flax', 'sequential'), 'vs_torch': ('torch',), 'vs_flash': ('flash',)}


def _rows(group: workloads.Group, results: dict[str, timing.Timed], matmul_flops: float):
  mm = results.pop(MATMUL, None)
  ceiling = matmul_flops / mm.median_s / 1e9 if mm is not None and mm.median_s else None
  base = {name: results[name].median_s for name in ('jax.nn', 'flax', 'sequential', 'torch', 'flash')
          if name in results}
  jax_base = base.get('jax.nn') or base.get('flax') or base.get('sequential')
  rows = []
  for name, r in results.items():
    s = group.shape
    row = dict(workload=group.workload, variant=name, T=s.T, S=s.S, causal=s.causal, ms=None,
               compile_s=r.compile_s, gflops=None, pct_matmul=None, vs_jax=None, vs_torch=None, vs_flash=None,
               temp_mb=None if r.temp_bytes is None else r.temp_bytes / 2**20,
               note='; '.join(x for x in (r.note, r.skipped) if x),
               matmul_gflops=ceiling, times_ms=[t * 1e3 for t in r.times_s])
    row['pass'] = group.pass_
    if s.K != s.N:
      row['note'] = f'K={s.K} kv heads' + (f'; {row["note"]}' if row['note'] else '')
    if s.window is not None:
      what = 'no window: all keys' if name == 'flash' else f'window {s.window}'
      row['note'] = what + (f'; {row["note"]}' if row['note'] else '')
    t = r.median_s
    if t is not None and group.pass_ != workloads.MEMORY:
      row['ms'] = t * 1e3
      if group.flops:
        row['gflops'] = group.flops / t / 1e9
        if ceiling:
          row['pct_matmul'] = 100.0 * row['gflops'] / ceiling
      for key, ref in (('vs_jax', jax_base), ('vs_torch', base.get('torch')), ('vs_flash', base.get('flash'))):
        if ref and name not in _SELF[key]:
          row[key] = ref / t
    rows.append(row)
  return rows


def _over_budget(group, history, repeats, budget_s):
  """{case: skip reason} for the cases whose calls, extrapolated from their last length, exceed the budget."""
  out = {}
  for name, exponent in group.scaling.items():
    last = history.get((group.workload, group.pass_, name))
    if last is None:
      continue
    T, seconds = last
    predicted = seconds * (group.shape.T / T) ** exponent
    if predicted * (repeats + 1) > budget_s:
      out[name] = (f'skipped: ~{predicted:.0f} s per call (from {seconds:.2g} s at T={T}) x {repeats + 1} calls '
                   f'exceeds the {budget_s:.0f} s case budget')
  return out


def _build(name, build, limited):
  case = build()
  if limited and isinstance(case, timing.Prepared) and (case.temp_bytes or 0) > MAX_TEMP_BYTES:
    return f'skipped: {case.temp_bytes / 2**30:.1f} GiB of XLA temporaries'
  return case


def run(workload_names, variant_names, *, dtype=jnp.float32, quick=False, repeats=5, lengths=None, log=print,
        case_budget_s=CASE_BUDGET_S, head_dim=64):
  """Benchmarks every group; returns (rows, summary)."""
  rows = []
  history = {}  # (workload, pass, case) -> (T, median seconds) of its last timed length
  torch_missing = baselines.torch_module() is None
  if torch_missing:
    log(baselines.TORCH_MISSING)
  mm_case = matmul_flops = None
  for group in workloads.groups(workload_names, variant_names, dtype=dtype, quick=quick, lengths=lengths,
                                head_dim=head_dim):
    s = group.shape
    log(f'{group.workload} {group.pass_} T={s.T} S={s.S}{" causal" if s.causal else ""}: '
        f'{", ".join(group.cases)}')
    skips = _over_budget(group, history, repeats, case_budget_s)
    prepared = {name: skips.get(name) or _build(name, build, name in group.scaling)
                for name, build in group.cases.items()}
    if group.pass_ != workloads.MEMORY:
      if mm_case is None:
        mm_case, matmul_flops = timing.matmul_case(dtype)
      prepared[MATMUL] = mm_case
      results = timing.run_interleaved(prepared, repeats)
    else:
      results = timing.run_interleaved(prepared, 0, warmup=0)  # compile-only: memory, never run
    for name, r in results.items():
      if r.median_s:
        history[(group.workload, group.pass_, name)] = (s.T, r.median_s)
    new = _rows(group, results, matmul_flops or 0.0)
    for row in new:
      log(f'  {row["variant"]:28s} ' + (f'{row["ms"]:10.2f} ms' if row['ms'] is not None else '') +
          (f'  temp {row["temp_mb"]:.1f} MB' if row['temp_mb'] is not None else '') + f'  {row["note"]}')
    rows.extend(new)
    del prepared
    gc.collect()
  ceilings = [r['matmul_gflops'] for r in rows if r.get('matmul_gflops')]
  summary = dict(dtype=str(jnp.dtype(dtype)), quick=quick, repeats=repeats, torch_installed=not torch_missing,
                 matmul_gflops_median=sorted(ceilings)[len(ceilings) // 2] if ceilings else None,
                 crossovers=report.crossovers(rows), chunk_sizes=recurrent.tuning_summary(),
                 recurrent_crossovers=report.recurrent_crossovers(rows), decode_flatness=report.decode_flatness(rows))
  return rows, summary
