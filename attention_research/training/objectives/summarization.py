"""Summarization: the seq2seq objective (teacher-forced training, greedy or beam decoding) scored with ROUGE.

Metrics: rouge1, rouge2, rougeL: the mean F-measure over summaries (x100, like BLEU) from Google's `rouge-score`
package (its default tokenisation: lower case, runs of letters and digits; no stemming); exact_match,
token_accuracy and loss as in seq2seq. Baselines on the same documents (text_baselines.SummaryBaselines):
majority_rougeL, the most frequent training summary; bow_rougeL, the training summary of the nearest training
document by bag of words (a retrieval summary, which gets the template and often the teams but not the goals).
Where the source has goal sentences (the reports task): scorer_mass, the mass the last decoder layer's
cross-attention (teacher-forced, heads averaged) puts on a scorer's own goal sentence while writing the scorer's
name, averaged over names and summaries (analysis.summaries.scorer_mass); scorer_share, uniform attention's mass
there.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from attention_research.training.objectives import base, seq2seq
from attention_research.training.objectives.text_baselines import SummaryBaselines

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
                  ('token_accuracy', 'max'), ('loss', 'min'), ('majority_rougeL', 'max'), ('bow_rougeL', 'max'),
                  ('scorer_mass', 'max'), ('scorer_share', 'min'))

  def __init__(self, task, options=None):
    super().__init__(task, options)
    self._baselines = None

  def baselines(self) -> SummaryBaselines:
    if self._baselines is None:
      train = self.task.columns['train']
      documents = train['inputs'].take(np.arange(len(train['inputs'])))
      targets = train['targets'].take(np.arange(len(train['targets'])))
      tokenizer = self.task.tokenizer
      self._baselines = SummaryBaselines(documents, [tokenizer.decode(t) for t in targets],
                                         self.info['vocab_size'])
    return self._baselines

  def _eval_fn(self, model, batch):
    """(tokens, *teacher_forced, tokens again for on_batch, the last decoder layer's cross-attention [B, T, S]
    teacher-forced on the reference and averaged over heads, left out for a model that sows none)."""
    logits, maps, tokens = self._forward_and_generate(model, batch, capture=True)
    last = base.last_layer(maps, 'cross')
    cross = () if last is None else (last.astype(jnp.float32).mean(1) if last.ndim == 4 else last.astype(jnp.float32),)
    return (tokens,) + seq2seq.teacher_forced(logits, batch['targets']) + (tokens,) + cross

  def evaluate(self, model, batches):
    hyps, refs = [], []
    guesses = {'majority': [], 'bow': []}
    tokenizer = self.task.tokenizer

    scorer = []

    def collect(batch, n, tokens, cross=None):
      hyps.extend(tokenizer.decode(t) for t in tokens)
      refs.extend(tokenizer.decode(t) for t in np.asarray(batch['targets'])[:n])
      if cross is not None:
        scorer.extend(self._scorer_mass(np.asarray(batch['inputs'])[:n], np.asarray(batch['targets'])[:n], cross))
      for name, summaries in self.baselines().predict(np.asarray(batch['inputs'])[:n]).items():
        guesses[name].extend(summaries)

    names = [m for m in self.info.get('metrics', ()) if m in seq2seq.TEXT_METRICS]
    out = seq2seq.score_generations(self, model, batches, name='summarize', fn=self._eval_fn, target_key='targets',
                                    metrics=names, on_batch=collect)
    out.update(rouge(hyps, refs))
    for name, summaries in guesses.items():
      out[f'{name}_rougeL'] = rouge(summaries, refs, ('rougeL',))['rougeL']
    found = [m for m in scorer if np.isfinite(m['own_goal'])]
    if found:  # a source with goal sentences (the reports task)
      out['scorer_mass'] = float(np.mean([m['own_goal'] for m in found]))
      out['scorer_share'] = float(np.mean([m['own_goal_share'] for m in found]))
    return out

  def _scorer_mass(self, inputs_BS, targets_BT, cross_BTS):
    """Per example, analysis.summaries.scorer_mass of its teacher-forced cross-attention."""
    from attention_research.analysis import summaries  # pylint: disable=g-import-not-at-top
    pad = self.info.get('pad_id', 0)
    source_tok, target_tok = self.tokenizer_for('inputs'), self.tokenizer_for('targets')
    out = []
    for src, tgt, w in zip(inputs_BS, targets_BT, np.asarray(cross_BTS)):
      s, t = base.real_length(src, pad), base.real_length(tgt, pad)
      out.append(summaries.scorer_mass(w[:t, :s], base.token_labels(source_tok, src[:s]),
                                       base.token_labels(target_tok, tgt[:t])))
    return out
