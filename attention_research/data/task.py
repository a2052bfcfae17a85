"""`Task`: one dataset ready to batch, whatever produced it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from attention_research.data.pipeline import BatchIterator, Dense, Ragged
from attention_research.data.tokenizers import Tokenizer

KINDS = ('seq2seq', 'classification', 'token_classification', 'lm', 'captioning', 'asr', 'segmentation',
         'detection', 'span_qa')
PAD_SCOPES = ('task', 'split')


@dataclasses.dataclass
class Task:
  """A named dataset held in memory as columns, split by split.

  `info` holds what a model needs to be built: vocab sizes, special ids,
  number of classes, max lengths (over all splits, so shapes agree between
  training and evaluation), image shape, sample rate.
  `tokenizers` maps a batch key ('inputs', 'targets', 'caption') to the
  tokenizer of its ids; `tokenizer` is the one for what the model outputs.
  """
  name: str
  kind: str
  info: dict
  tokenizers: dict[str, Tokenizer]
  columns: dict[str, dict[str, Dense | Ragged]]
  length_key: str | None = None
  main_tokenizer_key: str | None = None

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f'Unknown task kind {self.kind!r}; known: {KINDS}.')

  @property
  def splits(self) -> tuple[str, ...]:
    return tuple(self.columns)

  @property
  def tokenizer(self) -> Tokenizer | None:
    if self.main_tokenizer_key is not None:
      return self.tokenizers[self.main_tokenizer_key]
    return next(iter(self.tokenizers.values()), None)

  def num_examples(self, split: str) -> int:
    return len(next(iter(self._split(split).values())))

  def _split(self, split: str) -> Mapping[str, Dense | Ragged]:
    if split not in self.columns:
      raise ValueError(f'Unknown split {split!r} for task {self.name!r}; known: {list(self.columns)}.')
    return self.columns[split]

  def batches(self, split: str, *, batch_size: int, seed: int = 0, shuffle: bool = True,
              repeat: bool = True, drop_remainder: bool = True, pad: str = 'max',
              pad_multiple: int = 1, bucket_window: int = 0, pad_scope: str = 'task') -> BatchIterator:
    """Batches of one split; pad='max' pads to `info['pad_lengths']`, the longest sequence of any split.

    pad_scope='split' pads to this split's own longest sequence instead: training on short sequences then
    does not pay for the longest evaluation split (one more compilation per split, and only for models
    whose shapes do not depend on the length, e.g. RoPE or sinusoidal positions, not Linformer).
    """
    if pad_scope not in PAD_SCOPES:
      raise ValueError(f'pad_scope must be one of {list(PAD_SCOPES)}, got {pad_scope!r}.')
    columns = self._split(split)
    lengths = dict(self.info.get('pad_lengths', {}))
    if pad_scope == 'split':
      lengths = {k: min(n, columns[k].max_length) if isinstance(columns.get(k), Ragged) else n
                 for k, n in lengths.items()}
    return BatchIterator(
        columns, batch_size=batch_size, seed=seed, shuffle=shuffle, repeat=repeat,
        drop_remainder=drop_remainder, pad=pad, pad_lengths=lengths,
        pad_multiple=pad_multiple, bucket_window=bucket_window, length_key=self.length_key)


def pad_lengths(columns: Mapping[str, Mapping[str, Dense | Ragged]]) -> dict[str, int]:
  """Longest sequence of each ragged key over all splits."""
  out: dict[str, int] = {}
  for split_columns in columns.values():
    for key, column in split_columns.items():
      if isinstance(column, Ragged):
        out[key] = max(out.get(key, 0), column.max_length)
  return out
