"""Matplotlib plumbing: figures without pyplot's global state, saved as PNGs of a predictable pixel size.

Figures are `matplotlib.figure.Figure` objects created directly (no pyplot), so library calls never open
windows, never leak figures into pyplot's registry, and work with any backend. The saved PNG has exactly
round(figsize * dpi) pixels: constrained layout, not bbox_inches='tight', which would change the size.
In a notebook `display(fig)` shows a returned figure.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

MAX_TICK_LABELS = 48
MAX_FIGURE_INCHES = 30.0


def new_figure(figsize, dpi: int) -> Figure:
  # Whole pixels, so the PNG is exactly figsize * dpi (Agg truncates fractional sizes).
  w, h = (round(min(float(x), MAX_FIGURE_INCHES) * dpi) / dpi for x in figsize)
  figsize = (w, h)
  return Figure(figsize=figsize, dpi=dpi, layout='constrained')


def save(fig: Figure, path) -> Path | None:
  if path is None:
    return None
  path = Path(os.fspath(path))
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=fig.dpi, format='png')
  return path


def fontsize(n: int, lo: float = 5.0, hi: float = 10.0) -> float:
  """Tick label size that shrinks as the number of labels grows."""
  return float(np.clip(240.0 / max(n, 1), lo, hi))


def set_tick_labels(ax, axis: str, labels, n: int, *, rotation: float = 0.0, show: bool = True):
  """Labels every position, or every k-th one when there are too many to read."""
  step = max(1, int(np.ceil(n / MAX_TICK_LABELS)))
  ticks = np.arange(0, n, step)
  setter = ax.set_xticks if axis == 'x' else ax.set_yticks
  if not show:
    setter(ticks, [''] * len(ticks))
    return
  text = [labels[i] for i in ticks] if labels is not None else [str(i) for i in ticks]
  kw = dict(fontsize=fontsize(len(ticks)))
  if axis == 'x':
    setter(ticks, text, rotation=rotation, ha='right' if 0 < rotation < 90 else 'center',
           rotation_mode='anchor' if 0 < rotation < 90 else 'default', **kw)
  else:
    setter(ticks, text, **kw)


def value_range(arrays, vmin, vmax):
  """A shared colour scale starting at 0 (weights are non-negative), extended below 0 only if needed:
  reconstructed weights of low-rank variants can be slightly negative."""
  lo = min(float(np.min(a)) for a in arrays)
  hi = max(float(np.max(a)) for a in arrays)
  vmin = min(0.0, lo) if vmin is None else vmin
  vmax = (hi if hi > vmin else vmin + 1.0) if vmax is None else vmax
  return vmin, vmax


def wrap(text: str | None, fig, fontsize: float = 12.0, fraction: float = 1.0) -> str | None:
  """Breaks a title into lines that fit `fraction` of the figure's width."""
  if not text:
    return text
  chars = max(12, int(fig.get_figwidth() * fraction * 72 / (0.6 * fontsize)))
  return textwrap.fill(text, chars, break_long_words=False, break_on_hyphens=False)
