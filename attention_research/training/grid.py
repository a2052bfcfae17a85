"""Grids of comparisons: one `compare` per cell of a grid of config values, scored by the best sweep value.

    records = run_grid(config, workdir, grid='seq_len+num_kv_pairs=64+4,128+8;d_model=32,64',
                       sweep='learning_rate=1e-3,3e-3,1e-2', seeds=3)

A grid is axes separated by ';'. An axis is 'key=value,value,...'; keys joined by '+' move together
('d_model+mlp_dim=32+64,64+128'). A key is a dotted config field, a builder option of config.data.options
('seq_len'), or a field name that one config section has ('d_model', like --sweep). Each cell trains every
variant over the sweep (a learning rate sweep, say) and seeds, as `compare` does, in <workdir>/cells/<cell>/;
a cell's score for a variant is the best sweep value's mean ± std over seeds, the best chosen by that mean
on the table's split (the test split: the maximum over learning rates that Zoology reports too).
Writes results.md, results.csv and grid.json (every sweep value's per-seed scores) in <workdir>.

A grid runs one variant of one cell at a time and keeps each one's table in <workdir>/cells/<cell>/<variant>/
table.json with the config it ran; run again with the same workdir, it reuses every (cell, variant) whose saved
config is the same and that did not crash, so a stopped grid resumes where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import os
import time
from typing import Any, Sequence

from attention_research.training import compare as compare_lib, loop, results, seeds as seeds_lib
from attention_research.training.config import ExperimentConfig, get_dotted

Axis = tuple[tuple[str, ...], list[tuple[Any, ...]]]


def _resolve_key(key: str, cfg: ExperimentConfig) -> str:
  if '.' in key:
    get_dotted(cfg, key)  # raises when it does not exist
    return key
  if key in cfg.data.options:
    return f'data.options.{key}'
  try:
    return seeds_lib.parse_sweep(f'{key}=0', cfg)[0]
  except ValueError:
    raise ValueError(f'--grid: unknown field {key!r}: not a data option ({sorted(cfg.data.options)}) nor a field '
                     'of exactly one config section; name it with its section, e.g. model.d_model.') from None


def parse_grid(spec: str, cfg: ExperimentConfig) -> list[Axis]:
  """'seq_len+num_kv_pairs=64+4,128+8;d_model=32,64' -> [(('data.options.seq_len', ...), [(64, 4), ...]), ...]."""
  axes: list[Axis] = []
  for part in (p.strip() for p in spec.split(';')):
    if not part:
      continue
    names, sep, raw = part.partition('=')
    if not sep or not raw.strip() or not names.strip():
      raise ValueError(f"--grid axis must look like 'd_model=32,64' or 'seq_len+num_kv_pairs=64+4,128+8', "
                       f'got {part!r}.')
    keys = tuple(_resolve_key(k.strip(), cfg) for k in names.split('+'))
    values = []
    for item in (v.strip() for v in raw.split(',') if v.strip()):
      parts = item.split('+')
      if len(parts) != len(keys):
        raise ValueError(f'--grid: value {item!r} of axis {names!r} needs {len(keys)} parts joined by +.')
      values.append(tuple(seeds_lib._convert(p.strip(), get_dotted(cfg, k), k)  # pylint: disable=protected-access
                          for p, k in zip(parts, keys)))
    if len(set(values)) != len(values):
      raise ValueError(f'--grid: axis {names!r} repeats a value.')
    axes.append((keys, values))
  if not axes:
    raise ValueError(f'--grid is empty: {spec!r}.')
  flat = [k for keys, _ in axes for k in keys]
  if len(set(flat)) != len(flat):
    raise ValueError(f'--grid names a field twice: {flat}.')
  return axes


def expand(axes: Sequence[Axis]) -> list[dict[str, Any]]:
  """Every cell of the grid (the product of the axes, first axis slowest) as {dotted key: value}."""
  cells = []
  for combo in itertools.product(*[values for _, values in axes]):
    cell = {}
    for (keys, _), values in zip(axes, combo):
      cell.update(zip(keys, values))
    cells.append(cell)
  return cells


def cell_label(cell: dict[str, Any]) -> str:
  return ','.join(f'{k.rsplit(".", 1)[-1]}={v}' for k, v in cell.items())


def cell_config(cfg: ExperimentConfig, cell: dict[str, Any]) -> ExperimentConfig:
  return cfg.replace(**cell)


@dataclasses.dataclass
class Record:
  """One variant in one cell: the best sweep value and, for the record, every sweep value's scores."""
  cell: dict[str, Any]
  variant: str
  best: str | None  # sweep label of the best value; None when every value crashed
  scores: list[float]  # per seed, of the best value
  state_size: float | None = None
  params: int | None = None
  sweep: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # label -> per-seed scores
  errors: dict[str, str] = dataclasses.field(default_factory=dict)

  @property
  def mean_std(self) -> tuple[float | None, float | None]:
    return results.mean_std(self.scores)


def best_of_sweep(rows: Sequence[results.Row], metric: str, direction: str = 'max') -> results.Row | None:
  """The row with the best mean of `metric` over seeds (the first on ties); crashed rows never win."""
  if direction not in ('max', 'min'):
    raise ValueError(f"direction must be 'max' or 'min', got {direction!r}.")
  scored = [(results.mean_std(r.metrics[metric])[0], i, r) for i, r in enumerate(rows)
            if not r.error and r.metrics.get(metric)]
  if not scored:
    return None
  sign = -1 if direction == 'max' else 1
  return min(scored, key=lambda t: (sign * t[0], t[1]))[2]


def records_of_table(cell: dict[str, Any], table: results.Table) -> list[Record]:
  metric, direction = table.metric_names[0]
  out = []
  for variant in dict.fromkeys(r.variant for r in table.rows):
    rows = [r for r in table.rows if r.variant == variant]
    best = best_of_sweep(rows, metric, direction)
    out.append(Record(cell=dict(cell), variant=variant, best=None if best is None else best.sweep,
                      scores=[] if best is None else list(best.metrics[metric]),
                      state_size=next((r.state_size for r in rows if r.state_size is not None), None),
                      params=next((r.params for r in rows if r.params), None),
                      sweep={r.sweep: list(r.metrics.get(metric, [])) for r in rows if not r.error},
                      errors={r.sweep: r.error for r in rows if r.error}))
  return out


TABLE_FILE = 'table.json'


def _fingerprint(cfg: ExperimentConfig, variant: str, seeds: int, seed_mode: str | None, sweep: str | None) -> str:
  """What a (cell, variant) run depends on: the config it trains (not the grid's own compare section, so the
  axes may be reordered or extended), the seeds and the sweep."""
  config = compare_lib.variant_config(cfg, variant).model_dump()
  config.pop('compare')
  return json.dumps({'config': config, 'seeds': seeds, 'seed_mode': seed_mode, 'sweep': sweep}, sort_keys=True,
                    default=str)


def _saved_table(path: str, fingerprint: str) -> results.Table | None:
  """The table a finished run of this (cell, variant) saved, if its config is `fingerprint` and nothing crashed."""
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError):
    return None
  if saved.get('fingerprint') != fingerprint:
    return None
  fields = {f.name for f in dataclasses.fields(results.Row)}
  t = saved['table']
  rows = [results.Row(**{k: v for k, v in r.items() if k in fields}) for r in t['rows']]
  if not rows or any(r.error for r in rows):
    return None
  return results.Table(t['title'], rows, [tuple(m) for m in t['metric_names']], list(t['notes']))


def run_cell(ccfg: ExperimentConfig, cell_dir: str, *, variants, seeds: int, seed_mode: str | None,
             sweep: str | None, quiet: bool = False, task=None, title: str | None = None) -> results.Table:
  """`compare` over the variants of one cell, one variant at a time, reusing the tables saved by an earlier run
  of the same config; writes the cell's merged table in cell_dir."""
  variants = compare_lib.parse_list(variants) or compare_lib.parse_list(ccfg.compare.variants)
  tables = []
  for variant in variants:
    path = os.path.join(cell_dir, variant, TABLE_FILE)
    fingerprint = _fingerprint(ccfg, variant, seeds, seed_mode, sweep)
    table = _saved_table(path, fingerprint)
    if table is None:
      task = task if task is not None else loop.load_task(ccfg)
      table = compare_lib.compare(ccfg, cell_dir, variants=[variant], seeds=seeds, seed_mode=seed_mode, sweep=sweep,
                                  quiet=quiet, task=task, title=title)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, 'w') as f:
        json.dump({'fingerprint': fingerprint, 'table': table.to_json()}, f, indent=1, default=str)
    elif not quiet:
      print(f'{title or cell_dir}: {variant} reused from {path}', flush=True)
    tables.append(table)
  merged = results.Table(tables[0].title, [r for t in tables for r in t.rows], tables[0].metric_names,
                         list(dict.fromkeys(n for t in tables for n in t.notes)))
  merged.write(cell_dir)
  return merged


def run_grid(config, workdir: str, *, grid: str | None = None, variants=None, seeds: int | None = None,
             seed_mode: str | None = None, sweep: str | None = None, quiet: bool = False, task_for=None,
             title: str | None = None) -> list[Record]:
  """Runs `compare` on every cell; task_for(cell_config) gives a cell's task (default: load it)."""
  cfg = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_config_dict(config)
  spec = grid or cfg.compare.grid
  if not spec:
    raise ValueError('run_grid needs a grid (--grid or config.compare.grid).')
  sweep = sweep or cfg.compare.sweep or None
  cells = expand(parse_grid(spec, cfg))
  seeds = cfg.compare.seeds if seeds is None else seeds
  records: list[Record] = []
  metric = None
  t0 = time.perf_counter()
  for i, cell in enumerate(cells):
    ccfg = cell_config(cfg, cell)
    t = time.perf_counter()
    table = run_cell(ccfg, os.path.join(workdir, 'cells', cell_label(cell)), variants=variants, seeds=seeds,
                     seed_mode=seed_mode, sweep=sweep, quiet=quiet, task=None if task_for is None else task_for(ccfg),
                     title=cell_label(cell))
    metric = metric or table.metric_names[0]
    records.extend(records_of_table(cell, table))
    write(records, workdir, metric=metric, seeds=seeds, sweep=sweep, title=title or cfg.name,
          wall_seconds=time.perf_counter() - t0, cells_done=i + 1, cells_total=len(cells))
    if not quiet:
      print(f'grid cell {i + 1}/{len(cells)} {cell_label(cell)}: {time.perf_counter() - t:.0f} s', flush=True)
  return records


def markdown(records: Sequence[Record], *, metric: tuple[str, str], seeds: int, sweep: str | None,
             title: str = '', notes: Sequence[str] = ()) -> str:
  keys = list(dict.fromkeys(k for r in records for k in r.cell))
  names = [k.rsplit('.', 1)[-1] for k in keys]
  name, direction = metric
  arrow = '↑' if direction == 'max' else '↓'
  head = ['variant'] + names + ['state size', f'{name} {arrow}', 'best', 'per sweep value']
  lines = [f'### {title}' if title else '### grid', '',
           f'Score: the best sweep value\'s {name}, mean ± std over {seeds} seeds; the best is the value with the '
           f'best mean ({sweep or "no sweep"}); "per sweep value" lists every value\'s mean.', '',
           '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for r in sorted(records, key=lambda r: (r.variant, [str(r.cell[k]).zfill(8) for k in keys])):
    mean, std = r.mean_std
    score = '**crashed**: ' + results.one_line(next(iter(r.errors.values()), '')) if mean is None else \
        f'{mean:.4f} ± {std:.4f}'
    per = ', '.join(f'{label.rsplit("=", 1)[-1]}: {results.mean_std(v)[0]:.3f}'
                    for label, v in r.sweep.items() if v)
    size = results._int(r.state_size)  # pylint: disable=protected-access
    lines.append('| ' + ' | '.join([r.variant] + [str(r.cell.get(k, '')) for k in keys]
                                   + [size, score, (r.best or '–'), per]) + ' |')
  lines += [''] + list(notes)
  return '\n'.join(lines).rstrip() + '\n'


def write(records: Sequence[Record], workdir: str, *, metric: tuple[str, str], seeds: int, sweep: str | None,
          title: str = '', wall_seconds: float | None = None, cells_done: int | None = None,
          cells_total: int | None = None) -> None:
  os.makedirs(workdir, exist_ok=True)
  notes = [compare_lib.STATE_SIZE_NOTE]
  if wall_seconds is not None:
    notes.append(f'Wall time: {wall_seconds:.0f} s for {cells_done} of {cells_total} cells (data, compilation, '
                 'training, evaluation).')
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(markdown(records, metric=metric, seeds=seeds, sweep=sweep, title=title, notes=notes))
  keys = list(dict.fromkeys(k for r in records for k in r.cell))
  out = io.StringIO()
  w = csv.writer(out)
  w.writerow(['variant'] + keys + ['state_size', 'params', 'best', f'{metric[0]}_mean', f'{metric[0]}_std', 'seeds'])
  for r in records:
    w.writerow([r.variant] + [r.cell.get(k) for k in keys] + [r.state_size, r.params, r.best, *r.mean_std,
                                                                 len(r.scores)])
  with open(os.path.join(workdir, 'results.csv'), 'w', newline='') as f:
    f.write(out.getvalue())
  with open(os.path.join(workdir, 'grid.json'), 'w') as f:
    json.dump({'title': title, 'metric': list(metric), 'seeds': seeds, 'sweep': sweep, 'wall_seconds': wall_seconds,
               'cells_done': cells_done, 'cells_total': cells_total,
               'records': [dataclasses.asdict(r) for r in records]}, f, indent=1, default=str)


def load(workdir_or_path: str) -> tuple[dict, list[Record]]:
  """grid.json of a grid run -> (its header, its records)."""
  path = workdir_or_path if workdir_or_path.endswith('.json') else os.path.join(workdir_or_path, 'grid.json')
  with open(path) as f:
    data = json.load(f)
  return data, [Record(**r) for r in data.pop('records')]
