"""In-memory columns and a deterministic, resumable batch iterator.

A split lives in memory as columns (one per batch key). The order of an epoch
is a pure function of (seed, epoch), so the iterator's position is just
(epoch, batch) and a restored run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Batch = dict[str, np.ndarray]


class Dense:
  """One fixed-shape array per example (labels, images, digit cells)."""

  def __init__(self, array: np.ndarray, *, dtype=None, scale: float | None = None):
    self.array = np.asarray(array)
    self.dtype = np.dtype(dtype) if dtype is not None else self.array.dtype
    self.scale = scale

  def __len__(self):
    return len(self.array)

  def take(self, idx: np.ndarray, pad_to: int | None = None) -> np.ndarray:
    del pad_to
    out = self.array[idx]
    if self.scale is not None:
      return out.astype(self.dtype) * self.dtype.type(self.scale)
    return out.astype(self.dtype, copy=False)


class Ragged:
  """Variable-length 1-D sequences stored flat, padded per batch."""

  def __init__(self, sequences: Sequence[np.ndarray], *, dtype, pad_value=0, scale: float | None = None,
               storage_dtype=None):
    storage_dtype = storage_dtype or dtype
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    self.values = (np.concatenate([np.asarray(s, dtype=storage_dtype) for s in sequences])
                   if len(sequences) else np.zeros((0,), storage_dtype))
    self.lengths = lengths
    self.dtype = np.dtype(dtype)
    self.pad_value = pad_value
    self.scale = scale

  def __len__(self):
    return len(self.lengths)

  @property
  def max_length(self) -> int:
    return int(self.lengths.max(initial=0))

  def take(self, idx: np.ndarray, pad_to: int | None = None) -> np.ndarray:
    lengths = self.lengths[idx]
    width = int(lengths.max(initial=0)) if pad_to is None else int(pad_to)
    if lengths.max(initial=0) > width:
      raise ValueError(f'A sequence of length {int(lengths.max())} does not fit pad_to={width}.')
    out = np.full((len(idx), width), self.pad_value, dtype=self.dtype)
    for row, (i, n) in enumerate(zip(idx, lengths)):
      seq = self.values[self.offsets[i]:self.offsets[i] + n]
      out[row, :n] = seq if self.scale is None else seq.astype(self.dtype) * self.dtype.type(self.scale)
    return out


class BatchIterator:
  """Iterator of dicts of numpy arrays over one split.

  pad='max' pads every ragged key to the task-wide length in `pad_lengths`
  (one shape for the whole run, so jit compiles once); pad='batch' pads to the
  longest sequence in the batch rounded up to `pad_multiple`.
  bucket_window=k > 0 sorts each window of k batches by `length_key` before
  cutting it into batches (less padding); the batch order within a window is
  shuffled from (seed, epoch), so bucketing stays deterministic.
  """

  def __init__(self, columns: Mapping[str, Dense | Ragged], *, batch_size: int, seed: int = 0,
               shuffle: bool = True, repeat: bool = True, drop_remainder: bool = True,
               pad: str = 'max', pad_lengths: Mapping[str, int] | None = None, pad_multiple: int = 1,
               bucket_window: int = 0, length_key: str | None = None):
    if not columns:
      raise ValueError('No columns to batch.')
    sizes = {len(c) for c in columns.values()}
    if len(sizes) != 1:
      raise ValueError(f'Columns have different numbers of examples: { {k: len(c) for k, c in columns.items()} }.')
    self._n = sizes.pop()
    if batch_size < 1:
      raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
    if drop_remainder and batch_size > self._n:
      raise ValueError(f'batch_size={batch_size} is larger than the split ({self._n} examples) '
                       'and drop_remainder=True would yield no batch.')
    if pad not in ('max', 'batch'):
      raise ValueError(f"pad must be 'max' or 'batch', got {pad!r}.")
    if bucket_window and (length_key not in columns or not isinstance(columns[length_key], Ragged)):
      raise ValueError(f'Bucketing needs a ragged length_key; got {length_key!r}.')
    self._columns = dict(columns)
    self._batch_size = batch_size
    self._seed = int(seed)
    self._shuffle = shuffle
    self._repeat = repeat
    self._drop_remainder = drop_remainder
    self._pad = pad
    self._pad_lengths = dict(pad_lengths or {})
    self._pad_multiple = max(1, int(pad_multiple))
    self._bucket_window = int(bucket_window)
    self._length_key = length_key
    self._epoch = 0
    self._batch = 0
    self._plan_epoch = None
    self._plan: list[np.ndarray] = []

  @property
  def num_examples(self) -> int:
    return self._n

  def _order(self, epoch: int) -> np.ndarray:
    if not self._shuffle:
      return np.arange(self._n)
    return np.random.default_rng([self._seed & 0xFFFFFFFF, epoch]).permutation(self._n)

  def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
    if self._plan_epoch == epoch:
      return self._plan
    order = self._order(epoch)
    bs = self._batch_size
    if self._bucket_window:
      lengths = self._columns[self._length_key].lengths
      gen = np.random.default_rng([self._seed & 0xFFFFFFFF, epoch, 1])
      batches = []
      window = bs * self._bucket_window
      for start in range(0, self._n, window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind='stable')]
        cut = [chunk[i:i + bs] for i in range(0, len(chunk), bs)]
        if self._shuffle:
          cut = [cut[i] for i in gen.permutation(len(cut))]
        batches.extend(cut)
    else:
      batches = [order[i:i + bs] for i in range(0, self._n, bs)]
    if self._drop_remainder:
      batches = [b for b in batches if len(b) == bs]
    self._plan_epoch, self._plan = epoch, batches
    return batches

  def _width(self, key: str, column: Ragged, idx: np.ndarray) -> int:
    if self._pad == 'max' and key in self._pad_lengths:
      return self._pad_lengths[key]
    longest = int(column.lengths[idx].max(initial=1))
    m = self._pad_multiple
    return -(-longest // m) * m

  def __iter__(self):
    return self

  def __next__(self) -> Batch:
    plan = self._epoch_plan(self._epoch)
    if self._batch >= len(plan):
      if not self._repeat:
        raise StopIteration
      self._epoch += 1
      self._batch = 0
      plan = self._epoch_plan(self._epoch)
    idx = plan[self._batch]
    self._batch += 1
    out = {}
    for key, column in self._columns.items():
      if isinstance(column, Ragged):
        out[key] = column.take(idx, self._width(key, column, idx))
      else:
        out[key] = column.take(idx)
    return out

  def get_state(self) -> dict:
    """Position as plain ints: store it in a checkpoint, JSON is fine."""
    return {'epoch': self._epoch, 'batch': self._batch, 'seed': self._seed,
            'num_examples': self._n, 'batch_size': self._batch_size}

  def set_state(self, state: Mapping) -> None:
    for key in ('seed', 'num_examples', 'batch_size'):
      mine = {'seed': self._seed, 'num_examples': self._n, 'batch_size': self._batch_size}[key]
      if key in state and int(state[key]) != mine:
        raise ValueError(f'Iterator state is for {key}={state[key]}, this iterator has {key}={mine}.')
    self._epoch = int(state['epoch'])
    self._batch = int(state['batch'])
