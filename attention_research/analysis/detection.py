"""What each object query of a detector looks at: its cross-attention on the image, with the box it predicts.

    fig = detection.query_figure(image, attention, boxes, labels, scores, true_boxes=..., path='queries.png')

image [H, W]; attention [Q, h, w] (each query's weights over the feature grid, e.g. the last decoder layer's
cross-attention averaged over heads); boxes [Q, 4] (x0, y0, x1, y1) in pixels; labels [Q]; scores [Q].
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from attention_research.analysis import _plot


def _rect(ax, box, colour, style='-'):
  x0, y0, x1, y1 = (float(v) for v in box)
  # Pixel centres sit on integers in imshow, so pixel edges are at -0.5.
  ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5,
                         linestyle=style))


def query_figure(image, attention, boxes, labels, scores, *, true_boxes=None, true_labels=None,
                 min_score: float = 0.0, max_cols: int = 5, title: str | None = None, path=None, dpi: int = 100):
  """The image with the true boxes, then one panel per query: its attention (upsampled to the image, scaled to
  its own maximum) under the image, its box drawn solid when its score >= min_score, dashed otherwise.

  Returns the matplotlib Figure.
  """
  img = np.asarray(image, np.float32)
  att = np.asarray(attention, np.float32)
  if img.ndim != 2 or att.ndim != 3:
    raise ValueError(f'image must be [H, W] and attention [Q, h, w]; got {img.shape} and {att.shape}.')
  Q, (H, W) = att.shape[0], img.shape
  boxes, labels, scores = np.asarray(boxes).reshape(-1, 4), np.asarray(labels).reshape(-1), np.asarray(scores)
  if not len(boxes) == len(labels) == len(scores.reshape(-1)) == Q:
    raise ValueError(f'{Q} queries but boxes {boxes.shape}, labels {labels.shape}, scores {scores.shape}.')
  if H % att.shape[1] or W % att.shape[2]:
    raise ValueError(f'attention grid {att.shape[1:]} does not divide the image {img.shape}.')
  up = np.kron(att, np.ones((H // att.shape[1], W // att.shape[2]), np.float32))
  cols = max(1, min(max_cols, Q + 1))
  rows = int(np.ceil((Q + 1) / cols))
  panel = 2.1
  fig = _plot.new_figure((cols * panel, rows * (panel + 0.3) + (0.4 if title else 0.0)), dpi)
  axes = fig.subplots(rows, cols, squeeze=False)
  span = max(float(img.max() - img.min()), 1e-6)
  gray = (img - img.min()) / span
  for i, ax in enumerate(axes.ravel()):
    ax.set_axis_off()
    if i > Q:
      continue
    if i == 0:
      ax.imshow(gray, cmap='gray', vmin=0, vmax=1)
      for k, box in enumerate(np.asarray(true_boxes if true_boxes is not None else []).reshape(-1, 4)):
        _rect(ax, box, 'lime')
        if true_labels is not None:
          ax.text(float(box[0]), float(box[1]) - 1, str(int(np.asarray(true_labels)[k])), color='lime', fontsize=8)
      ax.set_title('image, true boxes', fontsize=9)
      continue
    q = i - 1
    ax.imshow(up[q] / max(float(up[q].max()), 1e-9), cmap='inferno', vmin=0, vmax=1)
    ax.imshow(gray, cmap='gray', vmin=0, vmax=1, alpha=0.35)
    _rect(ax, boxes[q], 'cyan', '-' if scores[q] >= min_score else ':')
    ax.set_title(f'query {q}: {int(labels[q])} ({float(scores[q]):.2f})', fontsize=9)
  if title:
    fig.suptitle(title, fontsize=10)
  _plot.save(fig, path)
  return fig
