"""Attention as an alignment, measured against gold: alignment error rate for text, frame agreement for speech.

Alignment format. An alignment of one sentence pair is a set of links (target index, source index), 0-based
positions in the target (output) and source (input) sequences, given as any of
  - an iterable of (t, s) pairs, e.g. {(0, 0), (1, 2)} or [[0, 0], [1, 2]] or an int array [K, 2];
  - a boolean matrix [T, S], True where target t is linked to source s (the layout of the cross-attention).
Positions are those of the weights the alignment is compared with: slice away padding, and BOS/EOS when the gold
alignment has none, before comparing.

Alignment error rate (Och and Ney 2003), with sure links S, possible links P (S is a subset of P; P = S when only
sure links are annotated) and predicted links A:
    AER = 1 - (|A & S| + |A & P|) / (|A| + |S|),   with P = S: AER = 1 - 2 |A & S| / (|A| + |S|).
Over a corpus the counts are summed before dividing (corpus_alignment_error_rate), as in the paper.

Speech. Gold spans and CTC segments are per output token, in encoder frames (end exclusive): [(first, end), ...].
`ctc_segments` gives them from the CTC head, by forced alignment to the token ids (Viterbi over the CTC
topology, one segment per token) or from the best path (per-frame argmax; a token the path misses has None).
  peak_frame_distance  frames between each token's attention peak and its span (0 inside it)
  frame_agreement      share of tokens whose attention peak falls inside their span / CTC segment
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from attention_research.analysis import _checks
from attention_research.analysis.asr import ctc_greedy_segments, log_softmax


def links(alignment, name: str = 'alignment') -> frozenset[tuple[int, int]]:
  """The links of an alignment in either format (see the module docstring) as a frozenset of (t, s) pairs."""
  if isinstance(alignment, np.ndarray) and alignment.dtype == np.bool_:
    if alignment.ndim != 2:
      raise ValueError(f'{name} as a boolean matrix must be [T, S]; got shape {alignment.shape}.')
    return frozenset((int(t), int(s)) for t, s in zip(*np.nonzero(alignment)))
  pairs = list(alignment)
  if not pairs:
    return frozenset()
  a = np.asarray(pairs)
  if a.ndim != 2 or a.shape[1] != 2 or not np.issubdtype(a.dtype, np.integer) or (a < 0).any():
    raise ValueError(f'{name} must be (target, source) pairs of non-negative ints or a bool matrix [T, S]; '
                     f'got an array of shape {a.shape} and dtype {a.dtype}.')
  return frozenset((int(t), int(s)) for t, s in a)


def alignment_counts(predicted, sure, possible=None) -> tuple[int, int, int, int]:
  """(|A & S|, |A & P|, |A|, |S|) of one sentence pair; P defaults to S and always includes S."""
  a, s = links(predicted, 'predicted'), links(sure, 'sure')
  p = s if possible is None else links(possible, 'possible') | s
  return len(a & s), len(a & p), len(a), len(s)


def _aer(counts) -> float:
  a_s, a_p, n_a, n_s = counts
  if n_a + n_s == 0:
    raise ValueError('alignment error rate of empty predicted and sure alignments is undefined.')
  return 1.0 - (a_s + a_p) / (n_a + n_s)


def alignment_error_rate(predicted, sure, possible=None) -> float:
  """AER of one sentence pair, in [0, 1] (0 = A holds every sure link and nothing outside the possible ones)."""
  return _aer(alignment_counts(predicted, sure, possible))


def corpus_alignment_error_rate(predicted: Sequence, sure: Sequence, possible: Sequence | None = None) -> float:
  """AER of a corpus: per-sentence counts summed, then one ratio (Och and Ney 2003)."""
  if len(predicted) != len(sure) or (possible is not None and len(possible) != len(sure)):
    raise ValueError(f'need one alignment per sentence: {len(predicted)} predicted, {len(sure)} sure'
                     + ('' if possible is None else f', {len(possible)} possible') + '.')
  total = np.zeros(4, np.int64)
  for i in range(len(sure)):
    total += alignment_counts(predicted[i], sure[i], None if possible is None else possible[i])
  return _aer(tuple(int(c) for c in total))


def _rows(weights, name='weights', layout='[T, S] or [N, T, S] (heads averaged)'):
  w = _checks.as_array(weights, name, ranks=(2, 3), layout=layout)
  return w.mean(0) if w.ndim == 3 else w


def attention_links(weights, *, threshold: float | None = None) -> frozenset[tuple[int, int]]:
  """Links read from cross-attention [T, S] or [N, T, S] (heads averaged): each target's argmax source (one link
  per target), or with threshold every (t, s) whose weight is at least threshold (none or several per target)."""
  w = _rows(weights)
  if threshold is None:
    return frozenset((t, int(s)) for t, s in enumerate(w.argmax(-1)) if w[t].max() > 0)
  if not 0.0 < threshold <= 1.0:
    raise ValueError(f'threshold must be in (0, 1]; got {threshold}.')
  return links(w >= threshold)


def attention_alignment_error_rate(weights, sure, possible=None, *, threshold: float | None = None) -> float:
  """AER of the links read from one sentence pair's cross-attention (see attention_links)."""
  return alignment_error_rate(attention_links(weights, threshold=threshold), sure, possible)


# ---------------------------------------------------------------------------------------------------- speech
def _spans(spans, T: int, F: int, name: str) -> list:
  spans = list(spans)
  if len(spans) != T:
    raise ValueError(f'{name} has {len(spans)} entries but the weights have T={T} tokens.')
  out = []
  for i, span in enumerate(spans):
    if span is None:
      out.append(None)
      continue
    first, end = (int(v) for v in span)
    if not 0 <= first < end <= F:
      raise ValueError(f'{name}[{i}] = {span} is not a frame span [first, end) within the F={F} frames.')
    out.append((first, end))
  return out


def attention_peaks(weights) -> np.ndarray:
  """Frame of the largest weight of each output token: [T, F] or [N, T, F] (heads averaged) -> int [T]."""
  return _rows(weights, layout='[T, F] or [N, T, F] (heads averaged)').argmax(-1)


def peak_frame_distance(weights, spans) -> np.ndarray:
  """Frames from each token's attention peak to its gold span [(first, end), ...] (0 inside; NaN for None)."""
  peaks = attention_peaks(weights)
  w = np.shape(weights)
  out = np.full(len(peaks), np.nan)
  for t, span in enumerate(_spans(spans, len(peaks), w[-1], 'spans')):
    if span is not None:
      first, end = span
      out[t] = max(first - peaks[t], peaks[t] - (end - 1), 0)
  return out


def frame_agreement(weights, segments) -> float:
  """Share of output tokens whose attention peak lies inside their segment [(first, end) or None, ...]; a token
  without a segment (a best path that missed it) counts as a disagreement."""
  peaks = attention_peaks(weights)
  spans = _spans(segments, len(peaks), np.shape(weights)[-1], 'segments')
  if not len(peaks):
    raise ValueError('frame_agreement needs at least one output token.')
  hits = [span is not None and span[0] <= p < span[1] for p, span in zip(peaks, spans)]
  return float(np.mean(hits))


def ctc_forced_alignment(ctc_logits, token_ids, *, blank_id: int = 0) -> list[tuple[int, int]]:
  """Viterbi alignment of token_ids to the frames under the CTC topology: one (first, end) per token.

  ctc_logits: [F, V] logits or log-probabilities. Raises ValueError when the F frames cannot hold the tokens
  (each needs a frame, and a repeated token a blank between).
  """
  lp = log_softmax(_checks.as_array(ctc_logits, 'ctc_logits', ranks=(2,), layout='[F, V]'))
  ids = np.asarray(token_ids, np.int64).reshape(-1)
  F, V = lp.shape
  if ids.size and (ids.min() < 0 or ids.max() >= V or (ids == blank_id).any()):
    raise ValueError(f'token_ids must be non-blank ids < V={V}; got {ids.tolist()} with blank_id={blank_id}.')
  if not ids.size:
    return []
  ext = np.full(2 * len(ids) + 1, blank_id)
  ext[1::2] = ids
  L = len(ext)
  skip = np.zeros(L, bool)  # state l may be entered from l - 2: a token after a blank, unless it repeats
  skip[3::2] = ids[1:] != ids[:-1]
  score = np.full(L, -np.inf)
  score[:2] = lp[0, ext[:2]]
  back = np.zeros((F, L), np.int64)
  for f in range(1, F):
    stay, step = score, np.concatenate([[-np.inf], score[:-1]])
    jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
    cand = np.stack([stay, step, jump])
    back[f] = cand.argmax(0)
    score = cand.max(0) + lp[f, ext]
  end = L - 1 if score[L - 1] >= score[L - 2] else L - 2
  if not np.isfinite(score[end]):
    raise ValueError(f'{F} frames cannot hold the {len(ids)} tokens {ids.tolist()} under CTC.')
  state, path = end, np.zeros(F, np.int64)
  for f in range(F - 1, -1, -1):
    path[f] = state
    state -= back[f, state]
  out = []
  for u in range(len(ids)):
    frames = np.nonzero(path == 2 * u + 1)[0]
    out.append((int(frames[0]), int(frames[-1]) + 1))
  return out


def ctc_segments(ctc_logits, token_ids: Iterable[int] | None = None, *, forced: bool = True,
                 blank_id: int = 0) -> list:
  """CTC segments of the output tokens: [(first, end), ...] per token.

  forced=True: `ctc_forced_alignment` of token_ids (a segment for every token). forced=False: the best path
  (per-frame argmax, repeats merged, blanks dropped), matched to token_ids in order; a token it does not emit
  gets None. Without token_ids the best path's own (token_id, first, end) triples are returned.
  """
  if token_ids is None:
    return ctc_greedy_segments(ctc_logits, blank_id=blank_id)
  ids = [int(i) for i in np.asarray(token_ids).reshape(-1)]
  if forced:
    return ctc_forced_alignment(ctc_logits, ids, blank_id=blank_id)
  out, row = [None] * len(ids), 0
  for tok, first, end in ctc_greedy_segments(ctc_logits, blank_id=blank_id):
    j = row
    while j < len(ids) and ids[j] != tok:
      j += 1
    if j < len(ids):
      out[j], row = (first, end), j + 1
  return out
