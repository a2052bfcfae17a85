"""Review sentiment: accuracy, the attention mass on the sentiment-bearing tokens, and baselines.

batch {'inputs' [B, L], 'sentiment' [B, L] (1 on the tokens the label rests on), 'label' [B]}; the model is a
pooling token Encoder (transformer.Encoder, head='pool').

Metrics: accuracy, loss; sentiment_mass: the attention mass the last encoder layer puts on the sentiment-bearing
tokens (mean over heads; the cls token's query row with pooling='cls', the mean over real query rows with
pooling='mean'), averaged over reviews; sentiment_share: the mass uniform attention over the real tokens would put
there (the chance level of sentiment_mass). Beside the model, on the same reviews: majority_accuracy (the most
frequent training label) and bow_accuracy (logistic regression on word counts, which cannot tell which adjective a
negation belongs to or which side of 'but' a clause is on).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from attention_research.layers.capture import capture_attention
from attention_research.training.objectives import base, classification
from attention_research.training.objectives.base import salient_mass
from attention_research.training.objectives.text_baselines import _fit, word_counts


class BagOfWordsBaselines:
  """Majority label, and logistic regression on counts of the review's words (order thrown away)."""

  def __init__(self, inputs_NL, label_N, vocab_size: int):
    self.vocab_size = vocab_size
    self.majority = int(np.bincount(np.asarray(label_N)).argmax())
    self.bow = _fit(self.features(inputs_NL), np.asarray(label_N))

  def features(self, inputs_NL):
    return word_counts(inputs_NL, self.vocab_size)

  def predict(self, inputs_NL) -> dict[str, np.ndarray]:
    return {'majority': np.full(len(inputs_NL), self.majority), 'bow': self.bow.predict(self.features(inputs_NL))}


class Sentiment(classification.Classification):
  kind = 'sentiment'
  metric_names = (('accuracy', 'max'), ('loss', 'min'), ('sentiment_mass', 'max'), ('sentiment_share', 'min'),
                  ('majority_accuracy', 'max'), ('bow_accuracy', 'max'))

  def __init__(self, task, options=None):
    super().__init__(task, options)
    self._baselines = None

  def baselines(self) -> BagOfWordsBaselines:
    if self._baselines is None:
      train = self.task.columns['train']
      inputs = train['inputs'].take(np.arange(len(train['inputs'])))
      self._baselines = BagOfWordsBaselines(inputs, train['label'].array, self.info['vocab_size'])
    return self._baselines

  def _eval_fn(self, model, batch):
    tokens = batch['inputs']
    logits, maps = capture_attention(lambda m: m(tokens, deterministic=True), model)
    per_row = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch['label'])
    valid = tokens != self.info.get('pad_id', 0)
    last = base.last_layer(maps, 'self')
    if last is None:  # a variant without attention weights
      return jnp.argmax(logits, -1), per_row, jnp.full(per_row.shape, jnp.nan)
    use_cls = last.shape[-1] == tokens.shape[1] + 1
    return jnp.argmax(logits, -1), per_row, salient_mass(last, batch['sentiment'], valid, use_cls)

  def evaluate(self, model, batches):
    sums = {'accuracy': 0.0, 'loss': 0.0, 'sentiment_mass': 0.0, 'sentiment_share': 0.0, 'majority_accuracy': 0.0,
            'bow_accuracy': 0.0}
    rows = 0
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('sentiment', model, self._eval_fn)
      pred, ce, mass = (np.asarray(x)[:n] for x in fn(state, batch))
      labels = np.asarray(batch['label'])[:n]
      inputs = np.asarray(batch['inputs'])[:n]
      salient = np.asarray(batch['sentiment'])[:n]
      sums['accuracy'] += float((pred == labels).sum())
      sums['loss'] += float(ce.sum())
      sums['sentiment_mass'] += float(mass.sum())
      sums['sentiment_share'] += float((salient.sum(-1) / np.maximum((inputs != 0).sum(-1), 1)).sum())
      for name, guess in self.baselines().predict(inputs).items():
        sums[f'{name}_accuracy'] += float((guess == labels).sum())
      rows += n
    out = {k: v / max(rows, 1) for k, v in sums.items()}
    if not np.isfinite(out['sentiment_mass']):
      del out['sentiment_mass']
    out['examples'] = rows
    return out
