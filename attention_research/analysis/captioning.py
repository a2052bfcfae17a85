"""Show, Attend and Tell figures: per generated word, its attention over the image regions on the image.

alphas are [T, R] (one example) over a grid of R = rows * cols regions in row-major order, as the captioner's
encoder lays them out. `upsample` turns a word's [rows, cols] attention into a smooth [H, W] map (bilinear
interpolation, then a Gaussian blur about half a region wide, much like the paper's `pyramid_expand`).
`peak_in_cell_score` measures, on digit_scenes, whether the attention peak falls in the named digit's cell.
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from attention_research.analysis import _checks, _plot


def _interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] bilinear weights with pixel centres aligned (half-pixel convention), edges clamped."""
  x = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
  x = np.clip(x, 0.0, n_in - 1)
  lo = np.floor(x).astype(int)
  hi = np.minimum(lo + 1, n_in - 1)
  frac = x - lo
  m = np.zeros((n_out, n_in))
  m[np.arange(n_out), lo] += 1.0 - frac
  m[np.arange(n_out), hi] += frac
  return m


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
  if sigma <= 0:
    return np.eye(n)
  d = np.arange(n)[:, None] - np.arange(n)[None, :]
  g = np.exp(-0.5 * (d / sigma) ** 2)
  return g / g.sum(1, keepdims=True)


def upsample(attention_grid, size, *, smooth: bool = True) -> np.ndarray:
  """[rows, cols] region attention -> [H, W] map, bilinear, plus a Gaussian blur when smooth."""
  a = _checks.as_array(attention_grid, 'attention_grid', ranks=(2,), layout='[rows, cols]')
  H, W = (int(size), int(size)) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))
  if H < 1 or W < 1:
    raise ValueError(f'size must be positive; got {size!r}.')
  rows, cols = a.shape
  my, mx = _interpolation_matrix(rows, H), _interpolation_matrix(cols, W)
  if smooth:
    my = _blur_matrix(H, 0.5 * H / rows) @ my
    mx = _blur_matrix(W, 0.5 * W / cols) @ mx
  return my @ a @ mx.T


def _image(image) -> np.ndarray:
  img = _checks.as_array(image, 'image', ranks=(2, 3), layout='[H, W] or [H, W, C]')
  if img.ndim == 3:
    if img.shape[-1] not in (1, 3, 4):
      raise ValueError(f'image must be [H, W] or [H, W, C] with C in (1, 3, 4); got shape {img.shape}.')
    if img.shape[-1] == 1:
      img = img[..., 0]
  lo, hi = img.min(), img.max()
  return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def _cells(cells) -> tuple[int, int]:
  return _checks.grid_shape(cells, None, 'cells')


def region_to_cell(regions, grid, cells=3) -> np.ndarray:
  """Row-major region indices -> row-major cell indices of a cells x cells partition of the image.

  A region belongs to the cell containing its centre, so grids that cells do not divide evenly still work.
  """
  gr, gc = grid
  cr, cc = _cells(cells)
  regions = np.asarray(regions)
  r, c = regions // gc, regions % gc
  return (((r + 0.5) * cr / gr).astype(int) * cc + ((c + 0.5) * cc / gc).astype(int)).astype(int)


def peak_in_cell_score(alphas, token_cells, grid, *, cells=3) -> float:
  """Fraction of digit-naming tokens whose attention peak lies in the named digit's ground-truth cell.

  Args:
    alphas: [B, T, R] (or [T, R]) attention of each generated token over R regions.
    token_cells: [B, T] (or [T]) row-major index of the digit's cell in a cells x cells partition of the
      image, -1 for tokens that name no digit (digit_scenes' token_cells).
    grid: the region grid, rows * cols == R (an int for a square grid).
    cells: the partition of the image into cells (3 for digit_scenes' 3 x 3 layout).

  Returns:
    the fraction in [0, 1]; NaN when no token names a digit.
  """
  a = _checks.as_array(alphas, 'alphas', ranks=(2, 3), layout='[B, T, R]')
  tc = np.asarray(token_cells)
  if a.ndim == 2:
    a = a[None]
  if tc.ndim == 1:
    tc = tc[None]
  if tc.shape != a.shape[:2]:
    raise ValueError(f'token_cells of shape {tc.shape} must match alphas [B, T, R] = {a.shape} in [B, T].')
  if not np.issubdtype(tc.dtype, np.integer):
    raise ValueError(f'token_cells must be integer cell indices (-1 = no digit); got dtype {tc.dtype}.')
  g = _checks.grid_shape(grid, a.shape[-1])
  cr, cc = _cells(cells)
  if tc.size and (tc.min() < -1 or tc.max() >= cr * cc):
    raise ValueError(f'token_cells values must be -1 or in [0, {cr * cc}); got range [{tc.min()}, {tc.max()}].')
  named = tc >= 0
  if not named.any():
    return float('nan')
  peak_cells = region_to_cell(a.argmax(-1), g, (cr, cc))
  return float((peak_cells[named] == tc[named]).mean())


def overlay_figure(image, alphas, words, *, grid=None, cells=None, true_cells=None, max_cols: int = 5,
                   smooth: bool = True, cmap: str = 'jet', alpha: float = 0.45, title: str | None = None,
                   path=None, figsize=None, dpi: int = 100):
  """The image, then one panel per word with that word's attention upsampled and overlaid on the image.

  Args:
    image: [H, W] or [H, W, C] (any value range; shown min-max scaled).
    alphas: [T, R] attention of each word over the R regions.
    words: T generated words (panel titles).
    grid: region grid (rows, cols), rows * cols == R (default: square).
    cells: draw a cells x cells partition (3 on digit_scenes) over every panel.
    true_cells: [T] ground-truth cell per word (-1 for none), outlined in green; needs cells.
    max_cols: panels per row.  smooth: blur the upsampled map.  cmap, alpha: the overlay's colours.
    path, figsize, dpi: as in `heatmaps.heatmap`.

  Each panel is scaled to its own maximum (given in the title), so where a word looks is visible even when
  its attention is spread thin; a cross marks the peak region.

  Returns:
    the matplotlib Figure.
  """
  img = _image(image)
  a = _checks.as_array(alphas, 'alphas', ranks=(2,), layout='[T, R]')
  T, R = a.shape
  names = _checks.labels(words, T, 'words', 'words (T)', a.shape)
  gr, gc = _checks.grid_shape(grid, R)
  H, W = img.shape[:2]
  if true_cells is not None:
    if cells is None:
      raise ValueError('true_cells needs cells (the partition the cell indices refer to).')
    true_cells = np.asarray(true_cells).reshape(-1)
    if true_cells.shape[0] != T:
      raise ValueError(f'true_cells has {true_cells.shape[0]} entries but alphas {a.shape} have T={T} words.')
  cols = max(1, min(max_cols, T + 1))
  rows = int(np.ceil((T + 1) / cols))
  panel = 2.1
  fig = _plot.new_figure(figsize or (cols * panel, rows * (panel + 0.3) + (0.4 if title else 0.0)), dpi)
  axes = fig.subplots(rows, cols, squeeze=False)
  gray = dict(cmap='gray') if img.ndim == 2 else {}
  for i, ax in enumerate(axes.ravel()):
    ax.set_axis_off()
    if i > T:
      continue
    ax.imshow(img, vmin=0.0, vmax=1.0, **gray)
    if i == 0:
      ax.set_title('image', fontsize=9)
      continue
    t = i - 1
    grid_map = a[t].reshape(gr, gc)
    peak = float(grid_map.max())
    up = upsample(grid_map, (H, W), smooth=smooth)
    up = up / up.max() if up.max() > 0 else up
    ax.imshow(up, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    r, c = divmod(int(grid_map.argmax()), gc)
    ax.plot((c + 0.5) * W / gc - 0.5, (r + 0.5) * H / gr - 0.5, 'x', color='white', markersize=7, mew=2)
    if cells is not None:
      cr, cc = _cells(cells)
      for k in range(1, cr):
        ax.axhline(k * H / cr - 0.5, color='white', lw=0.6, alpha=0.7)
      for k in range(1, cc):
        ax.axvline(k * W / cc - 0.5, color='white', lw=0.6, alpha=0.7)
      if true_cells is not None and true_cells[t] >= 0:
        y, x = divmod(int(true_cells[t]), cc)
        ax.add_patch(Rectangle((x * W / cc - 0.5, y * H / cr - 0.5), W / cc, H / cr, fill=False,
                               edgecolor='lime', lw=2))
    ax.set_title(f'{names[t]} (max {peak:.2f})', fontsize=9)
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
  if title:
    fig.suptitle(_plot.wrap(title, fig))
  _plot.save(fig, path)
  return fig

