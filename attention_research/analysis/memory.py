"""Attention of a memory network on the facts that matter: the mass each hop puts on the supporting facts."""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from attention_research.analysis import _plot

_HOP = re.compile(r'^(ood_)?support_mass_hop(\d+)$')


def support_mass_by_hop(metrics: Mapping[str, Sequence[float]], prefix: str = '') -> np.ndarray:
  """[hops, seeds] from a result row's metrics ('support_mass_hop1': [per seed], ...); prefix 'ood_' for OOD."""
  hops = sorted(int(m.group(2)) for k in metrics if (m := _HOP.match(k)) and (m.group(1) or '') == prefix)
  if not hops:
    raise ValueError(f'no {prefix}support_mass_hop<k> metrics among {sorted(metrics)}.')
  return np.asarray([metrics[f'{prefix}support_mass_hop{k}'] for k in hops], np.float64)


def support_mass_figure(series: Mapping[str, np.ndarray], *, chance: Mapping[str, float] | None = None,
                        title: str = 'attention mass on the supporting facts', path=None, dpi: int = 100):
  """Grouped bars: one group per hop, one bar per series (label -> [hops, seeds]), mean with the seeds' std.

  chance: label -> the mass of uniform attention over the story's sentences, drawn as a dashed line per series.
  """
  if not series:
    raise ValueError('support_mass_figure needs at least one series.')
  hops = max(v.shape[0] for v in series.values())
  fig = _plot.new_figure((1.6 + 1.3 * hops + 0.4 * len(series), 3.4), dpi)
  ax = fig.add_subplot()
  width = 0.8 / len(series)
  colors = [f'C{i}' for i in range(len(series))]
  for i, (label, values) in enumerate(series.items()):
    values = np.asarray(values, np.float64).reshape(values.shape[0], -1)
    x = np.arange(values.shape[0]) + (i - (len(series) - 1) / 2) * width
    ax.bar(x, values.mean(1), width, yerr=values.std(1), capsize=3, label=label, color=colors[i])
    if chance and label in chance:
      ax.hlines(chance[label], -0.5, hops - 0.5, colors=colors[i], linestyles='dashed', linewidth=1)
  ax.set_xticks(np.arange(hops), [f'hop {k + 1}' for k in range(hops)])
  ax.set_xlim(-0.5, hops - 0.5)
  ax.set_ylim(0, 1)
  ax.set_ylabel('mass on supporting facts')
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=8, loc='upper left')
  _plot.save(fig, path)
  return fig
