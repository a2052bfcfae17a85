"""rectified_figure: a spatial transformer's inputs above what it made of them (numpy in, figure out)."""

from __future__ import annotations

import numpy as np

from attention_research.analysis import _plot


def _as_images(name: str, images) -> np.ndarray:
  images = np.asarray(images, np.float32)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim != 3:
    raise ValueError(f'{name} must be [N, H, W] or [N, H, W, 1]; got shape {images.shape}.')
  return images


def rectified_figure(inputs, outputs, *, labels=None, title: str | None = None, path=None, dpi: int = 100):
  """inputs [N, H, W(, 1)] in the top row, the transformer's outputs [N, h, w(, 1)] below, one column each;
  labels (N strings or ints) title the columns. Saved as PNG when given a path."""
  inputs, outputs = _as_images('inputs', inputs), _as_images('outputs', outputs)
  n = len(inputs)
  if len(outputs) != n or n == 0 or (labels is not None and len(labels) != n):
    raise ValueError(f'need as many outputs (and labels) as inputs, at least one: got {n} inputs, '
                     f'{len(outputs)} outputs, {None if labels is None else len(labels)} labels.')
  fig = _plot.new_figure((1.2 * n, 2.7 if title else 2.5), dpi)
  axes = fig.subplots(2, n, squeeze=False)
  for i in range(n):
    for row, (images, name) in enumerate(((inputs, 'input'), (outputs, 'rectified'))):
      ax = axes[row, i]
      ax.imshow(images[i], cmap='gray', vmin=0.0, vmax=max(1.0, float(images.max())), interpolation='nearest')
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0:
        ax.set_ylabel(name, fontsize=9)
    if labels is not None:
      axes[0, i].set_title(str(labels[i]), fontsize=9)
  if title:
    fig.suptitle(_plot.wrap(title, fig, 10), fontsize=10)
  _plot.save(fig, path)
  return fig
