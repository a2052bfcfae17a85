"""Result tables: one row per variant (and sweep value), metrics as mean ± std over seeds.

Parameters are compared with the first row; a difference over 10% is flagged, following Long Range
Arena's rule that compared models should have similar parameter counts. A crashed variant is a row
with its error. Rows may carry the decoding state size (floats per sequence per layer, see compare) and
attention statistics (per seed, like metrics); their columns appear after the others when any row has them.
Written as results.md, results.csv and results.json.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from typing import Any, Sequence

import numpy as np

PARAM_TOLERANCE = 0.10
# Attention statistics a row may carry (see training.plots), with their Markdown headers.
ATTENTION_COLUMNS = (('attn_normalised_entropy', 'attn entropy'), ('attn_mean_distance', 'attn distance'))


@dataclasses.dataclass
class Row:
  variant: str
  sweep: str = ''
  seeds: list[int] = dataclasses.field(default_factory=list)
  params: int | None = None
  metrics: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # per seed
  steps_per_second: float | None = None
  peak_memory_bytes: int | None = None
  compile_seconds: float | None = None
  seed_mode: str = ''
  error: str | None = None
  attention: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # per seed, ATTENTION_COLUMNS
  state_size: float | None = None  # floats per sequence per attention layer that decoding keeps

  @property
  def label(self) -> str:
    return f'{self.variant} ({self.sweep})' if self.sweep else self.variant


@dataclasses.dataclass
class Table:
  title: str
  rows: list[Row]
  metric_names: list[tuple[str, str]]  # (name, 'max' | 'min'), headline first
  notes: list[str] = dataclasses.field(default_factory=list)

  def params_diff(self, row: Row) -> float | None:
    base = next((r.params for r in self.rows if r.params), None)
    if not base or row.params is None:
      return None
    return (row.params - base) / base

  @property
  def has_state_size(self) -> bool:
    return any(r.state_size is not None for r in self.rows)

  @property
  def attention_names(self) -> list[str]:
    """The attention statistics some row has, in ATTENTION_COLUMNS order."""
    return [k for k, _ in ATTENTION_COLUMNS if any(k in r.attention for r in self.rows)]

  def to_json(self) -> dict:
    rows = []
    for r in self.rows:
      d = dataclasses.asdict(r)
      d['params_diff'] = self.params_diff(r)
      d['params_flag'] = _flag(d['params_diff'])
      d['summary'] = {k: mean_std(v) for k, v in r.metrics.items()}
      d['attention_summary'] = {k: mean_std(v) for k, v in r.attention.items()}
      rows.append(d)
    return {'title': self.title, 'metric_names': self.metric_names, 'notes': self.notes, 'rows': rows}

  def markdown(self) -> str:
    n_seeds = max((len(r.seeds) for r in self.rows), default=0)
    over = f'mean ± std over {n_seeds} seeds' if n_seeds > 1 else '1 seed'
    attention = self.attention_names
    state = self.has_state_size
    head = (['variant', 'params', 'Δ params'] + [f'{m} {"↑" if d == "max" else "↓"}' for m, d in self.metric_names]
            + ['steps/s', 'peak mem (MiB)', 'compile (s)'] + ['state size'] * state
            + [dict(ATTENTION_COLUMNS)[k] for k in attention])
    lines = [f'### {self.title}', '', f'Metrics: {over}.', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in self.rows:
      if r.error:
        cells = [r.label, _int(r.params), '', f'**crashed**: {one_line(r.error)}'] + [''] * (len(head) - 4)
      else:
        diff = self.params_diff(r)
        cells = ([r.label, _int(r.params), _pct(diff)]
                 + [_fmt_ms(r.metrics.get(m)) for m, _ in self.metric_names]
                 + [_num(r.steps_per_second, 1), _num(_mib(r.peak_memory_bytes), 2), _num(r.compile_seconds, 1)]
                 + [_int(r.state_size)] * state
                 + [_fmt_ms(r.attention.get(k)) for k in attention])
      lines.append('| ' + ' | '.join(cells) + ' |')
    if any(_flag(self.params_diff(r)) for r in self.rows):
      lines += ['', f'⚠ parameter count differs from the first row by more than {PARAM_TOLERANCE:.0%}.']
    lines += [''] + [f'{n}' for n in self.notes]
    return '\n'.join(lines).rstrip() + '\n'

  def csv(self) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    names = [m for m, _ in self.metric_names]
    attention = self.attention_names
    w.writerow(['variant', 'sweep', 'seeds', 'params', 'params_diff', 'params_flag']
               + [f'{m}_{s}' for m in names for s in ('mean', 'std')]
               + ['steps_per_second', 'peak_memory_mib', 'compile_seconds', 'seed_mode', 'error', 'state_size']
               + [f'{k}_{s}' for k in attention for s in ('mean', 'std')])
    for r in self.rows:
      diff = self.params_diff(r)
      stats = []
      for m in names:
        mean, std = mean_std(r.metrics.get(m))
        stats += [mean, std]
      extra = []
      for k in attention:
        extra += list(mean_std(r.attention.get(k)))
      w.writerow([r.variant, r.sweep, len(r.seeds), r.params, diff, _flag(diff)] + stats
                 + [r.steps_per_second, _mib(r.peak_memory_bytes), r.compile_seconds, r.seed_mode, r.error or '',
                    r.state_size] + extra)
    return out.getvalue()

  def write(self, directory: str) -> dict[str, str]:
    os.makedirs(directory, exist_ok=True)
    paths = {ext: os.path.join(directory, f'results.{ext}') for ext in ('md', 'csv', 'json')}
    with open(paths['md'], 'w') as f:
      f.write(self.markdown())
    with open(paths['csv'], 'w', newline='') as f:
      f.write(self.csv())
    with open(paths['json'], 'w') as f:
      json.dump(self.to_json(), f, indent=1, default=_json_default)
    return paths


def mean_std(values: Sequence[float] | None) -> tuple[float | None, float | None]:
  """Mean and sample standard deviation (ddof=1; 0 for a single seed)."""
  if not values:
    return None, None
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _flag(diff: float | None) -> bool:
  return diff is not None and abs(diff) > PARAM_TOLERANCE


def _fmt_ms(values) -> str:
  mean, std = mean_std(values)
  if mean is None:
    return '–'
  digits = 4 if abs(mean) < 10 else 2
  if len(values) == 1:
    return f'{mean:.{digits}f}'
  return f'{mean:.{digits}f} ± {std:.{digits}f}'


def _pct(diff: float | None) -> str:
  if diff is None:
    return ''
  if abs(diff) < 5e-4:
    return '0%'
  return f'{diff:+.1%}' + (' ⚠' if _flag(diff) else '')


def _int(n) -> str:
  if n is None:
    return '–'
  return f'{n / 1e6:.2f}M' if n >= 1e6 else (f'{n / 1e3:.1f}k' if n >= 1e4 else f'{n:g}')


def _num(x, digits) -> str:
  return '–' if x is None or (isinstance(x, float) and not math.isfinite(x)) else f'{x:.{digits}f}'


def _mib(b) -> float | None:
  return None if not b else b / 2**20


def one_line(text: str, limit: int = 160) -> str:
  line = ' '.join(str(text).split()).replace('|', '/')
  return line if len(line) <= limit else line[:limit - 1] + '…'


def _json_default(o: Any):
  if isinstance(o, (np.floating, np.integer)):
    return o.item()
  return str(o)
