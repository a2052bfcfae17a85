"""Summarization: the seq2seq objective (teacher-forced training, greedy or beam decoding) scored with ROUGE.

Metrics: rouge1, rouge2, rougeL: the mean F-measure over summaries (x100, like BLEU) from Google's `rouge-score`
package (its default tokenisation: lower case, runs of letters and digits; no stemming); exact_match,
token_accuracy and loss as in seq2seq.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from attention_research.training.objectives import seq2seq

ROUGE_TYPES = ('rouge1', 'rouge2', 'rougeL')


def rouge(hypotheses: Sequence[str], references: Sequence[str], types: Sequence[str] = ROUGE_TYPES,
          *, use_stemmer: bool = False) -> dict[str, float]:
  """Mean ROUGE F-measure (x100) of each type over hypothesis/reference pairs."""
  from rouge_score import rouge_scorer  # pylint: disable=g-import-not-at-top
  if len(hypotheses) != len(references):
    raise ValueError(f'{len(hypotheses)} hypotheses and {len(references)} references: one each expected.')
  unknown = sorted(set(types) - set(ROUGE_TYPES))
  if unknown:
    raise ValueError(f'unknown ROUGE types {unknown}; known: {list(ROUGE_TYPES)}.')
  scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=use_stemmer)
  scores = [scorer.score(r, h) for h, r in zip(hypotheses, references)]  # score(target, prediction)
  return {t: 100.0 * float(np.mean([s[t].fmeasure for s in scores])) if scores else 0.0 for t in types}


class Summarization(seq2seq.Seq2Seq):
  """batch {'inputs' [B, S] (the document), 'targets' [B, T] (the summary, ending in EOS)}."""

  kind = 'summarization'
  metric_names = (('rougeL', 'max'), ('rouge1', 'max'), ('rouge2', 'max'), ('exact_match', 'max'),
                  ('token_accuracy', 'max'), ('loss', 'min'))

  def _eval_fn(self, model, batch):
    tokens, *rest = super()._eval_fn(model, batch)
    return (tokens, *rest, tokens)  # the tokens again as an extra output, for on_batch to collect

  def evaluate(self, model, batches):
    hyps, refs = [], []
    tokenizer = self.task.tokenizer

    def collect(batch, n, tokens):
      hyps.extend(tokenizer.decode(t) for t in tokens)
      refs.extend(tokenizer.decode(t) for t in np.asarray(batch['targets'])[:n])

    names = [m for m in self.info.get('metrics', ()) if m in seq2seq.TEXT_METRICS]
    out = seq2seq.score_generations(self, model, batches, name='summarize', fn=self._eval_fn, target_key='targets',
                                    metrics=names, on_batch=collect)
    out.update(rouge(hyps, refs))
    return out
