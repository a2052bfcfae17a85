"""Input checks shared by the analysis modules: arrays in, clear ValueErrors out.

Every public function accepts numpy or jax arrays (anything `np.asarray` takes) and works in float64 numpy,
so it runs the same for every attention variant and every model, on any device.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def as_array(x, name: str, ranks: Sequence[int] | None = None, *, min_rank: int | None = None,
             layout: str = '') -> np.ndarray:
  """np.float64 copy of x, checking its rank; the error names the shape and the expected layout."""
  try:
    a = np.asarray(x)
  except Exception as e:  # e.g. ragged nested lists
    raise ValueError(f'{name} must be an array; got {type(x).__name__} ({e}).') from e
  if a.dtype == object:
    raise ValueError(f'{name} must be a numeric array; got dtype object (shape {a.shape}).')
  hint = f' {layout}' if layout else ''
  if ranks is not None and a.ndim not in ranks:
    allowed = ', '.join(map(str, ranks[:-1])) + ' or ' + str(ranks[-1]) if len(ranks) > 1 else str(ranks[0])
    raise ValueError(f'{name} must have rank {allowed}{hint}; got shape {a.shape}.')
  if min_rank is not None and a.ndim < min_rank:
    raise ValueError(f'{name} must have rank >= {min_rank}{hint}; got shape {a.shape}.')
  a = a.astype(np.float64)
  if not np.all(np.isfinite(a)):
    raise ValueError(f'{name} of shape {a.shape} contains NaN or infinite values.')
  return a


def labels(values, n: int, name: str, what: str, shape) -> list[str] | None:
  """Token labels as strings; their number must equal the length of the axis they annotate."""
  if values is None:
    return None
  if isinstance(values, str):
    raise ValueError(f'{name} must be a sequence of labels, not the single string {values!r}.')
  out = [str(v) for v in np.asarray(values, dtype=object).reshape(-1)] if hasattr(values, 'shape') \
      else [str(v) for v in values]
  if len(out) != n:
    raise ValueError(f'{name} has {len(out)} labels but the weights of shape {tuple(shape)} have {n} {what}.')
  return out


def grid_shape(grid, num_regions: int | None = None, name: str = 'grid') -> tuple[int, int]:
  """(rows, cols) from an int (square) or a pair; checks rows * cols == num_regions when given."""
  if grid is None:
    if num_regions is None:
      raise ValueError(f'{name} is required.')
    side = int(round(np.sqrt(num_regions)))
    if side * side != num_regions:
      raise ValueError(f'{num_regions} regions do not form a square grid; pass {name}=(rows, cols).')
    return side, side
  g = (int(grid), int(grid)) if np.ndim(grid) == 0 else tuple(int(v) for v in grid)
  if len(g) != 2 or min(g) < 1:
    raise ValueError(f'{name} must be a positive int or a pair (rows, cols); got {grid!r}.')
  if num_regions is not None and g[0] * g[1] != num_regions:
    raise ValueError(f'{name}={g} has {g[0] * g[1]} regions but the attention has R={num_regions} regions.')
  return g
