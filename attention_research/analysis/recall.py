"""Recall accuracy against state size: one curve per variant over the model widths of a grid, error bars over seeds.

    fig = recall_vs_state_size(records, path='runs/recall_grid/recall_vs_state_size.png')

`records` are the cells of a grid run (training.grid.Record, or the dicts of its grid.json): each has `cell`
(config values), `variant`, `scores` (per seed, the best learning rate's) and `state_size` (floats per
sequence per layer that decoding keeps, from the attention registry). One panel per value of `panel_key`
(the sequence length by default); in a panel each variant's points, sorted by state size, are joined.
Softmax attention's state is its key/value cache, which grows with the length, so its points move right
from panel to panel while a fixed-state mixer's stay put.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from attention_research.analysis import _plot

PANEL_KEY = 'data.options.seq_len'


def _get(record, name: str):
  return record[name] if isinstance(record, Mapping) else getattr(record, name)


def points(records: Sequence[Any], panel_key: str = PANEL_KEY) -> dict[Any, dict[str, list[tuple]]]:
  """{panel value: {variant: [(state size, mean, std, n seeds), ...] sorted by state size}}; records without
  scores or state size are left out."""
  out: dict[Any, dict[str, list[tuple]]] = {}
  for r in records:
    scores, size = _get(r, 'scores'), _get(r, 'state_size')
    if not scores or size is None:
      continue
    v = np.asarray(scores, np.float64)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    panel = _get(r, 'cell').get(panel_key)
    out.setdefault(panel, {}).setdefault(_get(r, 'variant'), []).append((float(size), float(v.mean()), std, len(v)))
  for curves in out.values():
    for line in curves.values():
      line.sort()
  return dict(sorted(out.items(), key=lambda kv: (kv[0] is None, kv[0] if kv[0] is not None else 0)))


def recall_vs_state_size(records: Sequence[Any], *, panel_key: str = PANEL_KEY, metric: str = 'accuracy',
                         title: str | None = None, path=None, dpi: int = 100):
  """Draws the figure (one panel per `panel_key` value); returns the matplotlib Figure."""
  data = points(records, panel_key)
  if not data:
    raise ValueError('recall_vs_state_size: no record has both scores and a state size.')
  variants = sorted({v for curves in data.values() for v in curves})
  colors = {v: f'C{i % 10}' for i, v in enumerate(variants)}
  fig = _plot.new_figure((4.2 * len(data) + 1.0, 3.8), dpi)
  axes = fig.subplots(1, len(data), sharey=True, squeeze=False)[0]
  name = panel_key.rsplit('.', 1)[-1]
  handles = {}
  for ax, (panel, curves) in zip(axes, data.items()):
    for variant, line in sorted(curves.items()):
      x, mean, std, _ = (np.asarray(c) for c in zip(*line))
      handles[variant] = ax.errorbar(x, mean, yerr=std, marker='o', capsize=3, color=colors[variant], label=variant)
    ax.set_xscale('log')
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel('state size (floats per sequence per layer)')
    ax.set_title(f'{name} = {panel}' if panel is not None else 'all cells')
    ax.grid(alpha=0.3)
  axes[0].set_ylabel(f'{metric} (best learning rate, mean ± std)')
  fig.legend([handles[v] for v in variants], variants, fontsize=8, loc='outside right upper')  # every panel's
  if title:
    fig.suptitle(_plot.wrap(title, fig, 12.0))
  _plot.save(fig, path)
  return fig
