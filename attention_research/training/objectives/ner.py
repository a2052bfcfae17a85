"""Named-entity tagging: the token classification objective with entity-level F1 (seqeval, CoNLL-2000 style).

batch {'inputs' [B, L], 'targets' [B, L]}: target 0 pads, t > 0 is the tag info['tags'][t - 1] (BIO).
Option word_dropout: the share of words read as <unk> in training (Lample et al. 2016), so the model learns to
tag words it has not seen from their context. Beside the model, evaluation reports the baselines of
text_baselines (majority tag per word, logistic regression on a word window) on the same sentences: majority_f1,
bow_f1.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from seqeval.metrics import f1_score, precision_score, recall_score

from attention_research.training.objectives import classification
from attention_research.training.objectives.text_baselines import TaggingBaselines


def entity_scores(true_tags: list[list[str]], pred_tags: list[list[str]]) -> dict[str, float]:
  """Entity-level precision, recall and F1 over sentences of BIO tags (seqeval's default, conlleval rules:
  an I- tag that does not continue an entity of its type starts one)."""
  if len(true_tags) != len(pred_tags) or any(len(t) != len(p) for t, p in zip(true_tags, pred_tags)):
    raise ValueError(f'true and predicted tags differ in shape: {[len(t) for t in true_tags]} vs '
                     f'{[len(p) for p in pred_tags]}.')
  kw = dict(zero_division=0)
  return {'f1': float(f1_score(true_tags, pred_tags, **kw)),
          'precision': float(precision_score(true_tags, pred_tags, **kw)),
          'recall': float(recall_score(true_tags, pred_tags, **kw))}


@dataclasses.dataclass(frozen=True)
class NEROptions(classification.ClassificationOptions):
  word_dropout: float = 0.1

  def __post_init__(self):
    super().__post_init__()
    if not 0.0 <= self.word_dropout < 1.0:
      raise ValueError(f'config.objective.word_dropout must be in [0, 1), got {self.word_dropout!r}.')


class NamedEntities(classification.TokenClassification):
  """Tagging with seqeval entity F1 as the headline; token accuracy, loss and the baselines beside it."""

  kind = 'ner'
  Options = NEROptions
  metric_names = (('f1', 'max'), ('precision', 'max'), ('recall', 'max'), ('accuracy', 'max'), ('loss', 'min'),
                  ('majority_f1', 'max'), ('bow_f1', 'max'))

  def __init__(self, task, options=None):
    super().__init__(task, options)
    self._baselines = None

  def loss(self, model, batch, rng):
    if self.options.word_dropout:
      inputs = batch['inputs']
      unk = self.info.get('unk_id', 3)
      drop = jax.random.bernoulli(rng, self.options.word_dropout, inputs.shape) & (inputs > unk)
      batch = {**batch, 'inputs': jnp.where(drop, unk, inputs)}
    return super().loss(model, batch, rng)

  def _tag_names(self, ids) -> list[str]:
    tags = self.info['tags']
    return [tags[i - 1] if 0 < i <= len(tags) else 'O' for i in np.asarray(ids).tolist()]

  def baselines(self) -> TaggingBaselines:
    if self._baselines is None:
      train = self.task.columns['train']
      inputs, targets = train['inputs'], train['targets']
      rows = [(inputs.values[inputs.offsets[i]:inputs.offsets[i + 1]],
               targets.values[targets.offsets[i]:targets.offsets[i + 1]]) for i in range(len(inputs))]
      self._baselines = TaggingBaselines([r[0] for r in rows], [r[1] for r in rows], self.info['vocab_size'])
    return self._baselines

  def evaluate(self, model, batches):
    out = {'accuracy': 0.0, 'loss': 0.0}
    counted = rows = 0
    true, pred, base = [], [], {'majority': [], 'bow': []}
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('tag', model, self._eval_fn)
      p, ce = fn(state, batch)
      p, ce = np.asarray(p)[:n], np.asarray(ce)[:n]
      inputs, targets = np.asarray(batch['inputs'])[:n], np.asarray(batch['targets'])[:n]
      w = targets != 0
      out['accuracy'] += float(((p == targets) & w).sum())
      out['loss'] += float((ce * w).sum())
      counted += int(w.sum())
      rows += n
      lengths = w.sum(-1)
      sentences = [inputs[i, :lengths[i]] for i in range(n)]
      true += [self._tag_names(targets[i, :lengths[i]]) for i in range(n)]
      pred += [self._tag_names(p[i, :lengths[i]]) for i in range(n)]
      for name, tags in self.baselines().predict(sentences).items():
        base[name] += [self._tag_names(t) for t in tags]
    out = {k: v / max(counted, 1) for k, v in out.items()}
    out.update(entity_scores(true, pred))
    for name, tags in base.items():
      out[f'{name}_f1'] = entity_scores(true, tags)['f1']
    out['examples'] = rows
    return out
