"""Translation alignments: target words (rows) against source words (columns), as in Bahdanau et al. (2015).

Works for the RNN decoder's alignment [T, S] and for encoder-decoder cross-attention [N, T, S], averaged over
heads or one head, or every head in a grid.
"""

from __future__ import annotations

import numpy as np

from attention_research.analysis import _checks, _plot, heatmaps


def alignment(weights, source_tokens, target_tokens, *, heads='mean', title: str | None = None,
              cmap: str = 'Greys', mark_argmax: bool = True, path=None, figsize=None, dpi: int = 100):
  """Source words (top axis) against target words (left axis) for one example.

  Args:
    weights: [T, S] (an RNN alignment) or [N, T, S] (cross-attention of one layer).
    source_tokens: S source words. target_tokens: T target words.
    heads: 'mean' averages the heads, an int picks one, 'all' draws every head side by side.
    mark_argmax: a red dot on each target word's most attended source word.
    path, figsize, dpi: as in `heatmaps.heatmap`.

  Returns:
    the matplotlib Figure.
  """
  w = _checks.as_array(weights, 'weights', ranks=(2, 3), layout='[T, S] or [N, T, S]')
  if w.ndim == 2:
    w = w[None]
  N, T, S = w.shape
  src = _checks.labels(source_tokens, S, 'source_tokens', 'source positions (S)', w.shape)
  tgt = _checks.labels(target_tokens, T, 'target_tokens', 'target positions (T)', w.shape)
  if heads == 'all':
    return heatmaps.attention_grid(w, x_labels=src, y_labels=tgt, layer_names=['cross-attention'], title=title,
                                   xlabel='source', ylabel='target', cmap=cmap, path=path, figsize=figsize,
                                   dpi=dpi)
  if heads == 'mean':
    a, what = w.mean(0), (f'mean of {N} heads' if N > 1 else '')
  elif isinstance(heads, (int, np.integer)) and -N <= heads < N:
    a, what = w[heads], f'head {int(heads) % N}'
  else:
    raise ValueError(f"heads must be 'mean', 'all' or a head index in [0, {N}) for weights of shape {w.shape}; "
                     f'got {heads!r}.')
  side_w = float(np.clip(0.42 * S + 1.6, 3.0, 18.0))
  side_h = float(np.clip(0.36 * T + 1.4, 2.5, 18.0))
  fig = _plot.new_figure(figsize or (side_w + 1.0, side_h), dpi)
  ax = fig.add_subplot()
  vmin, vmax = _plot.value_range([a], None, None)
  im = heatmaps.draw_heatmap(ax, a, x_labels=src, y_labels=tgt, vmin=vmin, vmax=vmax, cmap=cmap,
                             x_rotation=60.0)
  ax.xaxis.tick_top()
  ax.xaxis.set_label_position('top')
  for lbl in ax.get_xticklabels():
    lbl.set_ha('left')
  ax.set_xlabel('source')
  ax.set_ylabel('target')
  if mark_argmax:
    rows = np.flatnonzero(a.sum(-1) > 0)
    ax.plot(a[rows].argmax(-1), rows, 'o', color='tab:red', markersize=3, label='most attended')
  fig.colorbar(im, ax=ax, label='attention weight', shrink=0.9)
  full = ' · '.join(x for x in (title, what) if x)
  if full:
    fig.suptitle(_plot.wrap(full, fig))
  _plot.save(fig, path)
  return fig
