"""Task metrics over lists of strings or arrays: exact match, BLEU, chrF, CER, WER, accuracy.

Every function takes (predictions, references) in that order and returns a
float; BLEU and chrF are on sacrebleu's 0-100 scale, the others are fractions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check(predictions: Sequence, references: Sequence) -> None:
  if len(predictions) != len(references):
    raise ValueError(f'{len(predictions)} predictions but {len(references)} references.')
  if len(predictions) == 0:
    raise ValueError('No predictions to score.')


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
  _check(predictions, references)
  return float(np.mean([p.strip() == r.strip() for p, r in zip(predictions, references)]))


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
  import sacrebleu
  _check(predictions, references)
  return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
  import sacrebleu
  _check(predictions, references)
  return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def _jiwer_inputs(predictions, references):
  _check(predictions, references)
  if any(not r.strip() for r in references):
    raise ValueError('Error rates are undefined for an empty reference.')
  return list(references), list(predictions)


def cer(predictions: Sequence[str], references: Sequence[str]) -> float:
  """Character error rate over the corpus (edits / reference characters)."""
  import jiwer
  refs, hyps = _jiwer_inputs(predictions, references)
  return float(jiwer.cer(refs, hyps))


def wer(predictions: Sequence[str], references: Sequence[str]) -> float:
  """Word error rate over the corpus (edits / reference words)."""
  import jiwer
  refs, hyps = _jiwer_inputs(predictions, references)
  return float(jiwer.wer(refs, hyps))


def accuracy(predictions, labels, weights=None) -> float:
  """Fraction of equal entries; `weights` (e.g. targets != 0) selects which count."""
  predictions, labels = np.asarray(predictions), np.asarray(labels)
  if predictions.shape != labels.shape:
    raise ValueError(f'predictions {predictions.shape} and labels {labels.shape} differ in shape.')
  correct = (predictions == labels).astype(np.float64)
  if weights is None:
    if correct.size == 0:
      raise ValueError('No predictions to score.')
    return float(correct.mean())
  weights = np.broadcast_to(np.asarray(weights, np.float64), correct.shape)
  if weights.sum() == 0:
    raise ValueError('All weights are zero.')
  return float((correct * weights).sum() / weights.sum())
