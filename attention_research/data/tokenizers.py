"""Tokenizers with one contract: encode(str) -> ids, decode(ids) -> str.

Ids 0..3 are reserved in every tokenizer (pad, bos, eos, unk), so batches from
any task share pad_id=0 and models can build masks as `ids != 0`.
`decode` stops at the first EOS and skips pad/BOS, so it reads model outputs.

Built-in tasks use small, fully known vocabularies (pieces, words or
characters) serialised as JSON in the dataset's metadata; public text
datasets use a SentencePiece model trained on their training split.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

import numpy as np

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = ('<pad>', '<s>', '</s>', '<unk>')
UNK_TEXT = '\u2047'  # what sentencepiece prints for unknown pieces


class Tokenizer:
  pad_id = PAD_ID
  bos_id = BOS_ID
  eos_id = EOS_ID
  unk_id = UNK_ID

  @property
  def vocab_size(self) -> int:
    raise NotImplementedError

  def encode(self, text: str) -> list[int]:
    raise NotImplementedError

  def _decode_ids(self, ids: list[int]) -> str:
    raise NotImplementedError

  def decode(self, ids) -> str:
    kept = []
    for i in np.asarray(ids).reshape(-1).tolist():
      if i == self.eos_id:
        break
      if i in (self.pad_id, self.bos_id):
        continue
      kept.append(int(i))
    return self._decode_ids(kept)

  def to_json(self) -> str:
    raise NotImplementedError


class _VocabTokenizer(Tokenizer):
  kind = ''

  def __init__(self, tokens: Sequence[str]):
    tokens = list(tokens)
    if len(set(tokens)) != len(tokens) or any(t in SPECIALS for t in tokens):
      raise ValueError('Vocabulary tokens must be distinct and must not be special tokens.')
    self.tokens = tokens
    self._id = {t: i + len(SPECIALS) for i, t in enumerate(tokens)}
    self._text = list(SPECIALS) + tokens

  @property
  def vocab_size(self) -> int:
    return len(SPECIALS) + len(self.tokens)

  def id_to_token(self, i: int) -> str:
    return self._text[i] if 0 <= i < len(self._text) else UNK_TEXT

  def to_json(self) -> str:
    return json.dumps({'kind': self.kind, 'tokens': self.tokens}, ensure_ascii=False)


class WordTokenizer(_VocabTokenizer):
  """Whitespace-separated words; decode joins with single spaces."""
  kind = 'word'

  def encode(self, text: str) -> list[int]:
    return [self._id.get(w, UNK_ID) for w in text.split()]

  def _decode_ids(self, ids):
    return ' '.join(UNK_TEXT if i == UNK_ID else self.id_to_token(i) for i in ids)


class PieceTokenizer(_VocabTokenizer):
  """Greedy longest match of the raw text against a list of pieces.

  decode(encode(s)) == s whenever every character of s is covered, spaces
  included (pieces may carry a leading space). With single characters as
  pieces this is a character tokenizer.
  """
  kind = 'piece'

  def __init__(self, tokens: Sequence[str]):
    super().__init__(tokens)
    # An alternation tried longest piece first is a greedy longest match, run in C.
    alternatives = sorted(self.tokens, key=len, reverse=True)
    self._pattern = re.compile('|'.join([*map(re.escape, alternatives), '.']), re.DOTALL)

  def encode(self, text: str) -> list[int]:
    return [self._id.get(m, UNK_ID) for m in self._pattern.findall(text)]

  def pieces(self, text: str) -> list[str]:
    return [self.id_to_token(i) for i in self.encode(text)]

  def _decode_ids(self, ids):
    return ''.join(UNK_TEXT if i == UNK_ID else self.id_to_token(i) for i in ids)


def char_tokenizer(alphabet: str) -> PieceTokenizer:
  return PieceTokenizer(list(dict.fromkeys(alphabet)))


class SentencePieceTokenizer(Tokenizer):
  """A trained SentencePiece model, with the shared special ids."""

  def __init__(self, model_proto: bytes):
    import sentencepiece as spm  # only the public adapters need it
    self.model_proto = model_proto
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    if (self._sp.pad_id(), self._sp.bos_id(), self._sp.eos_id(), self._sp.unk_id()) != (PAD_ID, BOS_ID, EOS_ID, UNK_ID):
      raise ValueError('SentencePiece model does not use the reserved ids pad=0, bos=1, eos=2, unk=3.')

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def encode_batch(self, texts: list[str]) -> list[list[int]]:
    return self._sp.encode(texts)

  def _decode_ids(self, ids):
    return self._sp.decode(ids)

  def to_json(self) -> str:
    raise TypeError('SentencePiece models are saved as .model files, not JSON.')


def from_json(text: str) -> Tokenizer:
  try:
    spec = json.loads(text)
    kind, tokens = spec['kind'], spec['tokens']
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise ValueError(f'Saved tokenizer is unreadable: {e}') from e
  classes = {'word': WordTokenizer, 'piece': PieceTokenizer}
  if kind not in classes:
    raise ValueError(f'Unknown saved tokenizer kind {kind!r}; known: {sorted(classes)}.')
  return classes[kind](tokens)


def encode_all(tokenizer: Tokenizer, texts: Iterable[str], *, add_eos: bool = False,
               max_length: int | None = None) -> list[np.ndarray]:
  """Encodes texts to int32 arrays; truncation keeps the final EOS."""
  texts = list(texts)
  if isinstance(tokenizer, SentencePieceTokenizer):
    encoded = tokenizer.encode_batch(texts)
  else:
    encoded = [tokenizer.encode(t) for t in texts]
  out = []
  for ids in encoded:
    if max_length is not None:
      ids = ids[:max_length - 1] if add_eos else ids[:max_length]
    if add_eos:
      ids = list(ids) + [EOS_ID]
    out.append(np.asarray(ids, dtype=np.int32))
  return out
