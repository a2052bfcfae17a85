"""Sequence / image classification and per-token classification (tagging, MQAR recall)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from attention_research.training.objectives import base


@dataclasses.dataclass(frozen=True)
class ClassificationOptions:
  label_smoothing: float = 0.0

  def __post_init__(self):
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f'config.objective.label_smoothing must be in [0, 1), got {self.label_smoothing!r}.')


def common_defaults(info) -> dict:
  """Model config values a classification task determines: vocabulary, classes, length, image shape."""
  out = {k: info[k] for k in ('vocab_size', 'num_classes', 'pad_id') if info.get(k) is not None}
  length = info.get('max_length', info.get('pad_lengths', {}).get('inputs'))
  if length:
    out['max_length'] = length
  if 'image_shape' in info:
    h, w, c = info['image_shape']
    out.update(image_size=(h, w) if h != w else h, channels=c)
  return out


def _input(batch):
  return batch['image'] if 'image' in batch else batch['inputs']


def _weights_fn(model, batch):
  return base.attention_maps(model, lambda m: m(_input(batch), deterministic=True))


def encoder_attention(objective: base.Objective, model, batch) -> dict:
  """Self-attention of every layer of a token Encoder or a ViT, on the batch's first example."""
  weights = objective.run_for_plot('encoder', model, _weights_fn, batch)
  if 'image' in batch:
    return _vit_attention(model, batch, weights)
  ids = np.asarray(batch['inputs'])[0]
  n = base.real_length(ids, objective.info.get('pad_id', 0))
  labels = base.token_labels(objective.tokenizer_for('inputs'), ids[:n])
  length = next(np.shape(w)[-1] for w in jax.tree.leaves(weights))
  if length == len(ids) + 1:  # a class token at position 0
    labels, n = ['<cls>'] + labels, n + 1
  return {'kind': 'transformer', 'weights': base.crop_maps(weights, n, n), 'tokens': labels, 'causal': (),
          'cross': ()}


def _vit_attention(model, batch, weights) -> dict:
  cfg = model.cfg
  (gh, gw), (ph, pw) = cfg.grid, cfg.patch_size
  patches = [f'{r},{c}' for r in range(gh) for c in range(gw)]
  length = next(np.shape(w)[-1] for w in jax.tree.leaves(weights))
  out = {'kind': 'vit', 'weights': weights, 'image': np.asarray(batch['image'])[:1], 'grid': (gh, gw),
         'causal': (), 'cross': ()}
  if length == len(patches) + 1:
    out['tokens'] = ['<cls>'] + patches
  else:
    # Without a class token every position is a patch: distances in pixels between patch centres, as in ViT.
    out['tokens'] = patches
    centres = np.stack(np.meshgrid((np.arange(gh) + 0.5) * ph, (np.arange(gw) + 0.5) * pw, indexing='ij'),
                       -1).reshape(-1, 2)
    out['positions'] = {'self': (centres, centres)}
  return out


class Classification(base.Objective):
  """batch {'inputs' [B, L] | 'image' [B, H, W, C], 'label' [B]} -> logits [B, C]."""

  kind = 'classification'
  Options = ClassificationOptions
  metric_names = (('accuracy', 'max'), ('loss', 'min'))

  def model_defaults(self):
    return common_defaults(self.info)

  def loss(self, model, batch, rng):
    logits = model(_input(batch), deterministic=False)
    labels = batch['label']
    weights = jnp.ones(labels.shape, jnp.float32)
    loss, _ = base.cross_entropy(logits, labels, weights, self.options.label_smoothing)
    return loss, {'accuracy': base.masked_accuracy(logits, labels, weights)}

  def _eval_fn(self, model, batch):
    logits = model(_input(batch), deterministic=True)
    per_row = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch['label'])
    return jnp.argmax(logits, -1), per_row

  def evaluate(self, model, batches):
    correct = total = loss_sum = 0.0
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('classify', model, self._eval_fn)
      pred, per_row = fn(state, batch)
      pred, per_row = np.asarray(pred)[:n], np.asarray(per_row)[:n]
      labels = np.asarray(batch['label'])[:n]
      correct += float((pred == labels).sum())
      loss_sum += float(per_row.sum())
      total += n
    return {'accuracy': correct / max(total, 1), 'loss': loss_sum / max(total, 1), 'examples': total}

  def attention_for_plot(self, model, batch):
    return encoder_attention(self, model, batch)


class TokenClassification(base.Objective):
  """batch {'inputs' [B, L], 'targets' [B, L]} with target 0 = no prediction -> logits [B, L, C]."""

  kind = 'token_classification'
  Options = ClassificationOptions
  metric_names = (('accuracy', 'max'), ('exact_match', 'max'), ('loss', 'min'))

  def model_defaults(self):
    out = common_defaults(self.info)
    out.setdefault('num_classes', self.info.get('vocab_size'))  # recall predicts a token
    return out

  def loss(self, model, batch, rng):
    logits = model(batch['inputs'], deterministic=False)
    targets = batch['targets']
    weights = (targets != 0).astype(jnp.float32)
    loss, _ = base.cross_entropy(logits, targets, weights, self.options.label_smoothing)
    return loss, {'accuracy': base.masked_accuracy(logits, targets, weights)}

  def _eval_fn(self, model, batch):
    logits = model(batch['inputs'], deterministic=True).astype(jnp.float32)
    targets = batch['targets']
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return jnp.argmax(logits, -1), ce

  def evaluate(self, model, batches):
    correct = counted = exact = rows = loss_sum = 0.0
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('tag', model, self._eval_fn)
      pred, ce = fn(state, batch)
      pred, ce = np.asarray(pred)[:n], np.asarray(ce)[:n]
      targets = np.asarray(batch['targets'])[:n]
      w = targets != 0
      hit = (pred == targets) & w
      correct += float(hit.sum())
      counted += float(w.sum())
      loss_sum += float((ce * w).sum())
      exact += float((hit.sum(-1) == w.sum(-1)).sum())
      rows += n
    return {'accuracy': correct / max(counted, 1), 'exact_match': exact / max(rows, 1),
            'loss': loss_sum / max(counted, 1), 'examples': rows}

  def attention_for_plot(self, model, batch):
    return encoder_attention(self, model, batch)
