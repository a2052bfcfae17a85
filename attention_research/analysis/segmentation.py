"""Segmentation: predicted class maps beside the attention of each class's mask token over the patches.

  masks_figure(images, true_masks, pred_masks, token_attention, class_names)   one row per example
  attention_on_class(token_attention, true_masks)   how much of each present class's token attention lands on
                                                    patches that hold that class

token_attention: [B, K, gh, gw], the attention of the K mask tokens over the gh x gw patch grid (e.g. the
Segmenter's last cross-attention layer, averaged over heads).
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap

from attention_research.analysis import _plot


def _class_cmap(num_classes: int) -> ListedColormap:
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  colours = colormaps['tab10'](np.arange(max(num_classes - 1, 1)) % 10)
  return ListedColormap(np.concatenate([[[0.0, 0.0, 0.0, 1.0]], colours]))  # background black


def _check(images, true_masks, pred_masks, token_attention):
  images = np.asarray(images, np.float32)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  true_masks, pred_masks = np.asarray(true_masks), np.asarray(pred_masks)
  att = np.asarray(token_attention, np.float32)
  if images.ndim != 3 or true_masks.shape != images.shape or pred_masks.shape != images.shape:
    raise ValueError(f'images [B, H, W], true_masks and pred_masks must agree; got {images.shape}, '
                     f'{true_masks.shape}, {pred_masks.shape}.')
  if att.ndim != 4 or att.shape[0] != images.shape[0]:
    raise ValueError(f'token_attention must be [B, K, gh, gw] with B = {images.shape[0]}; got {att.shape}.')
  return images, true_masks, pred_masks, att


def _patch_share(true_masks, grid) -> np.ndarray:
  """[B, K', gh, gw]: the share of each patch's pixels that hold class k (K' = max class + 1)."""
  B, H, W = true_masks.shape
  gh, gw = grid
  if H % gh or W % gw:
    raise ValueError(f'the patch grid {grid} does not divide the {H}x{W} masks.')
  K = int(true_masks.max()) + 1
  onehot = true_masks[..., None] == np.arange(K)
  return onehot.reshape(B, gh, H // gh, gw, W // gw, K).mean((2, 4)).transpose(0, 3, 1, 2)


def attention_on_class(token_attention, true_masks) -> float:
  """Mean over examples and the digit classes present (class > 0) of the attention mass that class's token puts
  on patches holding any of that class's pixels. A token attending uniformly scores the share of such patches."""
  att = np.asarray(token_attention, np.float32)
  masks = np.asarray(true_masks)
  share = _patch_share(masks, att.shape[2:])
  scores = [float(att[b, k][share[b, k] > 0].sum()) for b in range(masks.shape[0])
            for k in np.unique(masks[b]) if k > 0 and k < att.shape[1]]
  return float(np.mean(scores)) if scores else float('nan')


def masks_figure(images, true_masks, pred_masks, token_attention, class_names=None, *, max_tokens: int = 5,
                 title: str | None = None, path=None, dpi: int = 100):
  """One row per example: image, true classes, predicted classes, then the attention over the patches of the mask
  tokens of the background and of each digit class in the example (at most max_tokens panels), overlaid on the
  image. Each attention panel is scaled to its own maximum, given in its title with the token's class.

  Returns the matplotlib Figure (saved as PNG when path is given).
  """
  images, true_masks, pred_masks, att = _check(images, true_masks, pred_masks, token_attention)
  B, K = att.shape[:2]
  names = list(class_names) if class_names is not None else [str(k) for k in range(K)]
  if len(names) != K:
    raise ValueError(f'{len(names)} class_names for {K} mask tokens.')
  H, W = images.shape[1:]
  cmap = _class_cmap(K)
  cols = 3 + max_tokens
  fig = _plot.new_figure((cols * 1.45, B * 1.6 + (0.4 if title else 0.0)), dpi)
  axes = fig.subplots(B, cols, squeeze=False)
  for b in range(B):
    row = axes[b]
    for ax in row:
      ax.set_axis_off()
    row[0].imshow(images[b], cmap='gray', vmin=0, vmax=1)
    for ax, m, label in ((row[1], true_masks[b], 'true'), (row[2], pred_masks[b], 'predicted')):
      ax.imshow(m, cmap=cmap, vmin=-0.5, vmax=K - 0.5, interpolation='nearest')
      present = [names[k] for k in np.unique(m) if k > 0]
      ax.set_title(f"{label}: {' '.join(present) or '-'}", fontsize=7)
    row[0].set_title('image', fontsize=7)
    tokens = [0] + [int(k) for k in np.unique(true_masks[b]) if k > 0]
    for ax, k in zip(row[3:], tokens[:max_tokens]):
      ax.imshow(images[b], cmap='gray', vmin=0, vmax=1)
      ax.imshow(att[b, k], cmap='jet', alpha=0.55, extent=(-0.5, W - 0.5, H - 0.5, -0.5), interpolation='nearest',
                vmin=0, vmax=max(float(att[b, k].max()), 1e-9))
      ax.set_title(f'token {names[k]} (max {att[b, k].max():.2f})', fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  _plot.save(fig, path)
  return fig
