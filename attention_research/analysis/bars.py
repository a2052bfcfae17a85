"""A bar chart of one query's attention weights over the key positions."""

from __future__ import annotations

import numpy as np

from attention_research.analysis import _checks, _plot


def bar_chart(weights, labels=None, *, title: str | None = None, xlabel: str = 'key position',
              ylabel: str = 'attention weight', color: str = 'tab:blue', highlight_max: bool = True,
              annotate: bool | None = None, ax=None, path=None, figsize=None, dpi: int = 100):
  """Bars of one query's weights [S] (a [1, S] row is squeezed), one bar per key position.

  Args:
    weights: [S] weights of one query; they sum to 1 for exact variants, and the default title says so.
    labels: S key labels (tokens).
    highlight_max: draw the largest weight in a darker colour.
    annotate: print each weight above its bar (default: when S <= 24).
    ax, path, figsize, dpi: as in `heatmaps.heatmap`.

  Returns:
    the matplotlib Figure.
  """
  w = _checks.as_array(weights, 'weights', ranks=(1, 2), layout='[S]')
  if w.ndim == 2:
    if w.shape[0] != 1:
      raise ValueError(f'bar_chart draws one query [S]; got weights of shape {w.shape}.')
    w = w[0]
  S = w.shape[0]
  names = _checks.labels(labels, S, 'labels', 'key positions (S)', w.shape)
  if ax is None:
    fig = _plot.new_figure(figsize or (float(np.clip(0.45 * S + 1.5, 3.5, 16.0)), 3.2), dpi)
    ax = fig.add_subplot()
  else:
    fig = ax.figure
  colors = [color] * S
  if highlight_max and S:
    colors[int(np.argmax(w))] = 'tab:red'
  bars = ax.bar(np.arange(S), w, color=colors)
  _plot.set_tick_labels(ax, 'x', names, S, rotation=45.0 if names else 0.0)
  if annotate if annotate is not None else S <= 24:
    ax.bar_label(bars, labels=[f'{v:.2f}' for v in w], fontsize=_plot.fontsize(S, 6, 9), padding=2)
  ax.set_ylim(min(0.0, float(w.min()) * 1.1), max(float(w.max()) * 1.18, 1e-6))
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  title = title if title is not None else f'attention over {S} positions (sum = {w.sum():.3f})'
  ax.set_title(_plot.wrap(title, fig, 12.0, 0.9))
  ax.grid(axis='y', alpha=0.3)
  _plot.save(fig, path)
  return fig
