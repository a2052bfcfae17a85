"""Causal language modelling: next-token cross-entropy, perplexity and token accuracy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from attention_research.training.objectives import base
from attention_research.training.objectives.seq2seq import shift_right, teacher_forced

SEQUENCE_KEYS = ('inputs', 'targets', 'text', 'tokens')


@dataclasses.dataclass(frozen=True)
class LMOptions:
  label_smoothing: float = 0.0

  def __post_init__(self):
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f'config.objective.label_smoothing must be in [0, 1), got {self.label_smoothing!r}.')


def sequence_key(batch) -> str:
  for key in SEQUENCE_KEYS:
    if key in batch:
      return key
  raise ValueError(f'a language-modelling batch needs one of {SEQUENCE_KEYS}; got keys {sorted(batch)}.')


def sequence(batch):
  return batch[sequence_key(batch)]


class LanguageModel(base.Objective):
  """batch {'inputs' [B, L]} (or 'targets' / 'text' / 'tokens'): the model reads BOS + x[:-1], predicts x."""

  kind = 'lm'
  Options = LMOptions
  metric_names = (('perplexity', 'min'), ('token_accuracy', 'max'), ('loss', 'min'))

  def model_defaults(self):
    info = self.info
    out = {k: info[k] for k in ('bos_id', 'eos_id', 'pad_id') if k in info}
    out['vocab_size'] = info.get('input_vocab_size', info.get('vocab_size'))
    length = info.get('max_length', info.get('max_input_length'))
    if length:
      out['max_length'] = length
    return out

  def loss(self, model, batch, rng):
    x = sequence(batch)
    logits = model(shift_right(x, self.info.get('bos_id', 1)), deterministic=False)
    w = (x != 0)
    loss, _ = base.cross_entropy(logits, x, w, self.options.label_smoothing)
    return loss, {'token_accuracy': base.masked_accuracy(logits, x, w)}

  def _eval_fn(self, model, batch):
    x = sequence(batch)
    return teacher_forced(model(shift_right(x, self.info.get('bos_id', 1)), deterministic=True), x)

  def evaluate(self, model, batches):
    ce = correct = count = 0.0
    rows = 0
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('lm', model, self._eval_fn)
      ce_b, correct_b, count_b = (np.asarray(x)[:n] for x in fn(state, batch))
      ce, correct, count, rows = ce + ce_b.sum(), correct + correct_b.sum(), count + count_b.sum(), rows + n
    loss = float(ce / max(count, 1))
    return {'perplexity': math.exp(min(loss, 50.0)), 'token_accuracy': float(correct / max(count, 1)),
            'loss': loss, 'examples': rows}

  def _weights_fn(self, model, batch):
    read = shift_right(sequence(batch), self.info.get('bos_id', 1))
    return base.attention_maps(model, lambda m: m(read, deterministic=True))

  def attention_for_plot(self, model, batch):
    """Causal self-attention per layer over what the model reads: BOS + x[:-1], labelled with those tokens."""
    weights = self.run_for_plot('lm', model, self._weights_fn, batch)
    key = sequence_key(batch)
    x = np.asarray(batch[key])[0]
    n = base.real_length(x, self.info.get('pad_id', 0))
    read = np.concatenate([[self.info.get('bos_id', 1)], x[:n - 1]]) if n else x[:0]
    return {'kind': 'transformer', 'weights': base.crop_maps(weights, n, n),
            'tokens': base.token_labels(self.tokenizer_for(key), read), 'causal': ('self',), 'cross': ()}
