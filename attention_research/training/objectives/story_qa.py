"""Story question answering (bAbI-style): accuracy, attention mass on the supporting facts, and baselines.

batch {'story' [B, M, W], 'question' [B, W], 'inputs' [B, L] (story flattened after the question),
'support' [B, M] (1 on supporting facts), 'label' [B]}. Option `inputs` says what the model reads:
'memory' (memnet.MemN2N(story, question), which also gives its attention over sentences at each hop) or
'flat' (a token Encoder over 'inputs').

Metrics: accuracy on the task, loss; for memory models support_mass_hop<k>: the attention mass each hop puts on
the supporting facts (mean over questions), support_mass_last (the last hop's); beside the model, the majority
answer's accuracy and a bag-of-words logistic regression's (text_baselines) on the same questions.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import optax

from attention_research.training.objectives import base, classification
from attention_research.training.objectives.text_baselines import StoryBaselines

INPUTS = ('memory', 'flat')


@dataclasses.dataclass(frozen=True)
class StoryQAOptions:
  inputs: str = 'memory'
  label_smoothing: float = 0.0

  def __post_init__(self):
    if self.inputs not in INPUTS:
      raise ValueError(f'config.objective.inputs must be one of {list(INPUTS)}, got {self.inputs!r}.')
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f'config.objective.label_smoothing must be in [0, 1), got {self.label_smoothing!r}.')


class StoryQA(base.Objective):
  kind = 'story_qa'
  Options = StoryQAOptions
  metric_names = (('accuracy', 'max'), ('loss', 'min'), ('support_mass_last', 'max'), ('majority_accuracy', 'max'),
                  ('bow_accuracy', 'max'))

  def __init__(self, task, options=None):
    super().__init__(task, options)
    self._baselines = None

  def model_defaults(self):
    out = classification.common_defaults(self.info)
    out['max_sentences'] = self.info['max_sentences']
    return out

  def _logits(self, model, batch, deterministic):
    if self.options.inputs == 'memory':
      return model(batch['story'], batch['question'], deterministic=deterministic)
    return model(batch['inputs'], deterministic=deterministic)

  def loss(self, model, batch, rng):
    logits = self._logits(model, batch, False)
    weights = jnp.ones(batch['label'].shape, jnp.float32)
    loss, _ = base.cross_entropy(logits, batch['label'], weights, self.options.label_smoothing)
    return loss, {'accuracy': base.masked_accuracy(logits, batch['label'], weights)}

  def _eval_fn(self, model, batch):
    logits = self._logits(model, batch, True).astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    if self.options.inputs != 'memory':
      return jnp.argmax(logits, -1), ce, None
    p_BKM = model.hop_attention(batch['story'], batch['question'])
    return jnp.argmax(logits, -1), ce, jnp.einsum('BKM,BM->BK', p_BKM, batch['support'].astype(p_BKM.dtype))

  def baselines(self) -> StoryBaselines:
    if self._baselines is None:
      train = self.task.columns['train']
      self._baselines = StoryBaselines(train['story'].array, train['question'].array, train['label'].array,
                                       self.info['vocab_size'])
    return self._baselines

  def evaluate(self, model, batches):
    sums = {'accuracy': 0.0, 'loss': 0.0, 'majority_accuracy': 0.0, 'bow_accuracy': 0.0}
    mass = None
    rows = 0
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('story_qa', model, self._eval_fn)
      pred, ce, mass_BK = fn(state, batch)
      labels = np.asarray(batch['label'])[:n]
      sums['accuracy'] += float((np.asarray(pred)[:n] == labels).sum())
      sums['loss'] += float(np.asarray(ce)[:n].sum())
      for name, guess in self.baselines().predict(np.asarray(batch['story'])[:n],
                                                  np.asarray(batch['question'])[:n]).items():
        sums[f'{name}_accuracy'] += float((guess == labels).sum())
      if mass_BK is not None:
        m = np.asarray(mass_BK)[:n].sum(0)
        mass = m if mass is None else mass + m
      rows += n
    out = {k: v / max(rows, 1) for k, v in sums.items()}
    if mass is not None:
      mass = mass / max(rows, 1)
      out.update({f'support_mass_hop{k + 1}': float(v) for k, v in enumerate(mass)})
      out['support_mass_last'] = float(mass[-1])
    out['examples'] = rows
    return out

  def attention_for_plot(self, model, batch):
    if self.options.inputs == 'flat':
      return classification.encoder_attention(self, model, batch)
    return super().attention_for_plot(model, batch)
