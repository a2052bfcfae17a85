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


def bleu(predictions: Sequence[str], references: Sequence[str], *, tokenize: str = '13a') -> float:
  """Corpus BLEU with one reference per prediction. tokenize: sacrebleu's tokeniser; 'none' scores the
  space-separated units of texts already segmented (e.g. into morphemes)."""
  import sacrebleu
  _check(predictions, references)
  return float(sacrebleu.corpus_bleu(list(predictions), [list(references)], tokenize=tokenize).score)


def bleu_signature(tokenize: str = '13a') -> str:
  """sacrebleu's signature of `bleu` with this tokeniser, e.g. 'nrefs:1|case:mixed|eff:no|tok:none|...'."""
  import sacrebleu
  metric = sacrebleu.BLEU(tokenize=tokenize)
  metric.corpus_score(['a'], [['a']])  # sacrebleu knows the number of references only after scoring
  return str(metric.get_signature())


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
