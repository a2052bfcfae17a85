"""Semantic segmentation: per-pixel cross-entropy; mean and per-class IoU from a confusion matrix.

IoU of class c = TP / (TP + FP + FN) over every evaluated pixel; mean IoU averages the classes that occur in
the labels or the predictions (a class absent from both has no IoU). Predicting background everywhere scores
the background's pixel share on that class and 0 on every digit class that occurs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from attention_research.layers import capture_attention
from attention_research.training.objectives import base
from attention_research.training.objectives.classification import _vit_attention


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
  """[K, K] int64 counts, rows the true class, columns the predicted one, over pixels of any shape."""
  labels, predictions = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
  if labels.shape != predictions.shape:
    raise ValueError(f'labels {np.shape(labels)} and predictions {np.shape(predictions)} differ in size.')
  for name, x in (('labels', labels), ('predictions', predictions)):
    if x.size and (x.min() < 0 or x.max() >= num_classes):
      raise ValueError(f'{name} must lie in [0, {num_classes}); got values in [{x.min()}, {x.max()}].')
  flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
  return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
  """[K] IoU of each class; NaN for a class absent from labels and predictions."""
  confusion = np.asarray(confusion, np.float64)
  if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
    raise ValueError(f'confusion must be [K, K]; got shape {confusion.shape}.')
  tp = np.diag(confusion)
  union = confusion.sum(0) + confusion.sum(1) - tp
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(union > 0, tp / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
  iou = iou_per_class(confusion)
  return float(np.nanmean(iou)) if np.isfinite(iou).any() else float('nan')


@dataclasses.dataclass(frozen=True)
class SegmentationOptions:
  """background_weight: the weight of background pixels in the training loss (the digits' is 1); below 1 it
  counters background's share of the pixels (about 90% on scene_segmentation)."""
  background_weight: float = 1.0

  def __post_init__(self):
    if not self.background_weight > 0:
      raise ValueError(f'config.objective.background_weight must be > 0, got {self.background_weight!r}.')


class Segmentation(base.Objective):
  """batch {'image' [B, H, W, C], 'mask' [B, H, W] class ids (0 background)} -> logits [B, H, W, K]."""

  kind = 'segmentation'
  Options = SegmentationOptions
  metric_names = (('mean_iou', 'max'), ('pixel_accuracy', 'max'), ('loss', 'min'))

  def model_defaults(self):
    h, w, c = self.info['image_shape']
    return {'image_size': (h, w) if h != w else h, 'channels': c, 'num_classes': self.info['num_classes']}

  def loss(self, model, batch, rng):
    logits = model(batch['image'], deterministic=False)
    mask = batch['mask']
    weights = jnp.where(mask == 0, self.options.background_weight, 1.0)
    loss, _ = base.cross_entropy(logits, mask, weights)
    return loss, {'pixel_accuracy': base.masked_accuracy(logits, mask, jnp.ones_like(weights))}

  def _eval_fn(self, model, batch):
    logits = model(batch['image'], deterministic=True).astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch['mask'])
    return jnp.argmax(logits, -1), ce.mean((1, 2))

  def predict(self, model, image) -> np.ndarray:
    """image [B, H, W, C] -> predicted class map [B, H, W] (numpy)."""
    fn, state = self.compiled('segment', model, self._eval_fn)
    pred, _ = fn(state, {'image': image, 'mask': np.zeros(np.shape(image)[:3], np.int32)})
    return np.asarray(pred)

  def evaluate(self, model, batches):
    K = self.info['num_classes']
    confusion = np.zeros((K, K), np.int64)
    loss_sum = rows = 0.0
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('segment', model, self._eval_fn)
      pred, per_row = fn(state, batch)
      confusion += confusion_matrix(np.asarray(batch['mask'])[:n], np.asarray(pred)[:n], K)
      loss_sum += float(np.asarray(per_row)[:n].sum())
      rows += n
    iou = iou_per_class(confusion)
    names = self.info.get('class_names') or [str(k) for k in range(K)]
    out = {'mean_iou': mean_iou(confusion), 'pixel_accuracy': float(np.trace(confusion) / max(confusion.sum(), 1)),
           'loss': loss_sum / max(rows, 1), 'examples': rows}
    out.update({f'iou_{name}': float(v) for name, v in zip(names, iou) if np.isfinite(v)})
    return out

  def mask_view(self, model, batch) -> dict[str, np.ndarray]:
    """Predicted class maps and the mask tokens' attention over the patches (last cross-attention layer, mean
    over heads) for every example of a batch: what analysis.segmentation.masks_figure draws."""
    def fn(m, b):
      logits, maps = capture_attention(lambda m: m(b['image']), m)
      return jnp.argmax(logits, -1), maps['cross'][-1].mean(1)
    jitted, state = self.compiled('mask_view', model, fn)
    pred, att = jax.device_get(jitted(state, {k: batch[k] for k in ('image', 'mask')}))
    B, K = att.shape[:2]
    return {'image': np.asarray(batch['image']), 'mask': np.asarray(batch['mask']), 'pred': np.asarray(pred),
            'token_attention': np.asarray(att).reshape(B, K, *model.cfg.grid)}

  def attention_for_plot(self, model, batch):
    """The encoder's self-attention over patches, as for a ViT (the mask tokens' attention is the 'cross'
    group of the model's captured maps; see analysis.segmentation)."""
    weights = self.run_for_plot('encoder', model, lambda m, b: base.attention_maps(m, lambda m: m(b['image'])),
                                batch)
    return _vit_attention(model, batch, {'self': weights['encoder']})
