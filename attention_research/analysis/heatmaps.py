"""Heatmaps of one example's attention weights: a single map, or a layers x heads grid with token labels.

Rows are queries (the tokens doing the attending), columns are keys (the tokens attended to).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from attention_research.analysis import _checks, _plot
from attention_research.analysis import maps as maps_lib


def _cell_inches(n: int) -> float:
  return float(np.clip(0.22 * n + 0.9, 1.8, 6.0))


def draw_heatmap(ax, w: np.ndarray, *, x_labels=None, y_labels=None, vmin=0.0, vmax=None, cmap='viridis',
                 annotate=False, show_x=True, show_y=True, x_rotation=90.0):
  """Draws a validated [T, S] map into ax and returns the image (for a colorbar)."""
  T, S = w.shape
  im = ax.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax, aspect='auto', interpolation='nearest')
  _plot.set_tick_labels(ax, 'x', x_labels, S, rotation=x_rotation, show=show_x)
  _plot.set_tick_labels(ax, 'y', y_labels, T, show=show_y)
  if annotate:
    mid = (vmin + (vmax if vmax is not None else w.max())) / 2
    for t in range(T):
      for s in range(S):
        ax.text(s, t, f'{w[t, s]:.2f}', ha='center', va='center', fontsize=_plot.fontsize(S * 2, 5, 8),
                color='black' if w[t, s] > mid else 'white')
  return im


def heatmap(weights, *, x_labels=None, y_labels=None, title: str | None = None, xlabel: str = 'keys',
            ylabel: str = 'queries', cmap: str = 'viridis', vmin: float | None = None, vmax: float | None = None,
            annotate: bool | None = None, colorbar: bool = True, ax=None, path=None, figsize=None,
            dpi: int = 100):
  """One attention map [T, S] (a [1, T, S] map is squeezed) with token labels; saves a PNG if path is given.

  Args:
    weights: [T, S] weights of one head (or averaged heads) of one example.
    x_labels, y_labels: S key labels and T query labels (tokens); their counts must match the weights.
    annotate: write each weight in its cell (default: when T * S <= 64).
    ax: draw into an existing Axes instead of a new figure.
    path: where to save the PNG (its parent directories are created).
    figsize, dpi: the PNG is round(figsize * dpi) pixels; figsize defaults to a size that fits the labels.

  Returns:
    the matplotlib Figure.
  """
  w = _checks.as_array(weights, 'weights', ranks=(2, 3), layout='[T, S]')
  if w.ndim == 3:
    if w.shape[0] != 1:
      raise ValueError(f'heatmap draws one map [T, S]; got weights of shape {w.shape} '
                       '(use attention_grid for several heads or layers).')
    w = w[0]
  T, S = w.shape
  xl = _checks.labels(x_labels, S, 'x_labels', 'key positions (S)', w.shape)
  yl = _checks.labels(y_labels, T, 'y_labels', 'query positions (T)', w.shape)
  if ax is None:
    fig = _plot.new_figure(figsize or (_cell_inches(S) + 1.4, _cell_inches(T) + 0.8), dpi)
    ax = fig.add_subplot()
  else:
    fig = ax.figure
  vmin, vmax = _plot.value_range([w], vmin, vmax)
  annotate = (T * S <= 64) if annotate is None else annotate
  im = draw_heatmap(ax, w, x_labels=xl, y_labels=yl, vmin=vmin, vmax=vmax, cmap=cmap, annotate=annotate)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(_plot.wrap(title, fig, 12.0, 0.8))
  if colorbar:
    fig.colorbar(im, ax=ax, label='attention weight', shrink=0.9)
  _plot.save(fig, path)
  return fig


def as_layers(weights) -> list[np.ndarray]:
  """One example's weights -> a list of [N, T, S] arrays, one per layer.

  Accepts [T, S] (one head), [N, T, S] (one layer), [L, N, T, S], a sequence of [N, T, S] (or [T, S]) arrays,
  or a dict tree of them holding one stack of layers (see `maps.flatten`).
  """
  if isinstance(weights, Mapping) or (not hasattr(weights, 'shape') and any(
      isinstance(x, Mapping) or x is None for x in weights)):
    groups = maps_lib.group_layers(maps_lib.flatten(weights))
    if len(groups) != 1:
      raise ValueError(f'attention_grid draws one stack of layers; got {sorted(groups)} (plot each group).')
    weights = [w for _, _, w in next(iter(groups.values()))]
  if isinstance(weights, Sequence) and not hasattr(weights, 'shape'):
    layers = [_checks.as_array(w, f'weights[{i}]', ranks=(2, 3), layout='[N, T, S]') for i, w in enumerate(weights)]
    layers = [w[None] if w.ndim == 2 else w for w in layers]
  else:
    w = _checks.as_array(weights, 'weights', ranks=(2, 3, 4), layout='[T, S], [N, T, S] or [L, N, T, S]')
    layers = list(w[None, None] if w.ndim == 2 else w[None] if w.ndim == 3 else w)
  if not layers:
    raise ValueError('no attention weights to plot.')
  ts = layers[0].shape[-2:]
  for i, w in enumerate(layers):
    if w.shape[-2:] != ts:
      raise ValueError(f'layer {i} weights have shape {w.shape}, layer 0 has {layers[0].shape}: '
                       'the grid needs the same [T, S] in every layer.')
  return layers


def attention_grid(weights, *, x_labels=None, y_labels=None, layer_names: Sequence[str] | None = None,
                   max_heads: int | None = None, max_layers: int | None = None, title: str | None = None,
                   xlabel: str = 'keys', ylabel: str = 'queries', cmap: str = 'viridis',
                   vmin: float | None = None, vmax: float | None = None, path=None, figsize=None,
                   dpi: int = 100):
  """A grid of heatmaps, one row per layer and one column per head, for one example, on one colour scale.

  Args:
    weights: [N, T, S], [L, N, T, S], a list of per-layer [N, T, S] arrays, or a dict tree of them (see
      `as_layers`). Layers may have different numbers of heads (missing cells are left empty).
    x_labels, y_labels: S key and T query labels; drawn on the bottom row and the left column.
    layer_names: one name per layer (default 'layer 0', 'layer 1', ...).
    max_heads, max_layers: draw only the first heads / layers (the title says how many were left out).
    path, figsize, dpi: as in `heatmap`.

  Returns:
    the matplotlib Figure.
  """
  layers = as_layers(weights)
  T, S = layers[0].shape[-2:]
  xl = _checks.labels(x_labels, S, 'x_labels', 'key positions (S)', layers[0].shape)
  yl = _checks.labels(y_labels, T, 'y_labels', 'query positions (T)', layers[0].shape)
  if layer_names is not None and len(layer_names) != len(layers):
    raise ValueError(f'{len(layer_names)} layer_names for {len(layers)} layers of weights.')
  names = list(layer_names) if layer_names is not None else [f'layer {i}' for i in range(len(layers))]
  total_heads, total_layers = max(w.shape[0] for w in layers), len(layers)
  L = len(layers) if max_layers is None else min(len(layers), max_layers)
  N = total_heads if max_heads is None else min(total_heads, max_heads)
  layers, names = [w[:N] for w in layers[:L]], names[:L]
  vmin, vmax = _plot.value_range(layers, vmin, vmax)
  cw, ch = min(_cell_inches(S) * 0.8, 3.6), min(_cell_inches(T) * 0.8, 3.6)
  fig = _plot.new_figure(figsize or (N * cw + 1.6, L * ch + 1.0), dpi)
  axes = fig.subplots(L, N, squeeze=False)
  im = None
  for l, w in enumerate(layers):
    for n in range(N):
      ax = axes[l, n]
      if n >= w.shape[0]:
        ax.set_axis_off()
        continue
      im = draw_heatmap(ax, w[n], x_labels=xl, y_labels=yl, vmin=vmin, vmax=vmax, cmap=cmap,
                        show_x=l == L - 1, show_y=n == 0)
      ax.set_title(f'{names[l]} · head {n}', fontsize=8)
      if n == 0:
        ax.set_ylabel(ylabel, fontsize=8)
      if l == L - 1:
        ax.set_xlabel(xlabel, fontsize=8)
  fig.colorbar(im, ax=axes.ravel().tolist(), label='attention weight', shrink=0.8)
  left_out = []
  if N < total_heads:
    left_out.append(f'{N} of {total_heads} heads')
  if L < total_layers:
    left_out.append(f'{L} of {total_layers} layers')
  full_title = title or ''
  if left_out:
    full_title = f'{full_title} (showing {", ".join(left_out)})'.strip()
  if full_title:
    fig.suptitle(_plot.wrap(full_title, fig))
  _plot.save(fig, path)
  return fig
