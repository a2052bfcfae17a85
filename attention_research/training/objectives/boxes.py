"""Boxes, generalised IoU, Hungarian matching and the DETR set loss (Carion et al. 2020, section 3.1).

Boxes are normalised to the image: predictions as (cx, cy, w, h), targets as (x0, y0, x1, y1), both in [0, 1].
Targets are padded to M per image; a label < 0 marks padding.

Matching runs on the host with scipy's `linear_sum_assignment` through `jax.pure_callback`, inside the one
compiled train step. On CPU the host is the device, so the callback moves no data; matching a batch of
32 cost matrices of 8 x 4 takes microseconds, far less than a second compiled forward pass that a matching
step outside jit would need. On an accelerator the cost matrix (B x Q x M floats) is still tiny to copy.

Dimension letters: B batch, Q queries (predictions), M targets, C classes (+1 for no-object).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.optimize import linear_sum_assignment

EPS = 1e-7


def cxcywh_to_xyxy(b):
  cx, cy, w, h = jnp.moveaxis(b, -1, 0)
  return jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def xyxy_to_cxcywh(b):
  x0, y0, x1, y1 = jnp.moveaxis(b, -1, 0)
  return jnp.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)


def _area(b):
  return jnp.clip(b[..., 2] - b[..., 0], 0) * jnp.clip(b[..., 3] - b[..., 1], 0)


def giou(a, b):
  """Generalised IoU of boxes a and b (xyxy, broadcasting over leading axes): IoU - |C \\ (A u B)| / |C|, with C
  the smallest box enclosing both. In [-1, 1]; 1 for equal boxes."""
  lo, hi = jnp.maximum(a[..., :2], b[..., :2]), jnp.minimum(a[..., 2:], b[..., 2:])
  inter = jnp.prod(jnp.clip(hi - lo, 0), -1)
  union = _area(a) + _area(b) - inter
  iou = inter / (union + EPS)
  enclosing = jnp.prod(jnp.clip(jnp.maximum(a[..., 2:], b[..., 2:]) - jnp.minimum(a[..., :2], b[..., :2]), 0), -1)
  return iou - (enclosing - union) / (enclosing + EPS)


def pairwise_giou(a_PQ4, b_PM4):
  """[..., Q, 4] and [..., M, 4] xyxy -> [..., Q, M]."""
  return giou(a_PQ4[..., :, None, :], b_PM4[..., None, :, :])


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """DETR's defaults: the same weights for the matching cost and the loss; no-object CE down-weighted."""
  class_weight: float = 1.0
  l1_weight: float = 5.0
  giou_weight: float = 2.0
  no_object_weight: float = 0.1

  def __post_init__(self):
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
        raise ValueError(f'config.objective.{f.name} must be a number >= 0; got {v!r}.')


def matching_cost(logits_BQC, boxes_BQ4, target_boxes_BM4, target_labels_BM, w: LossWeights):
  """Cost [B, Q, M] of assigning query q to target m: -p_q(class_m) weighted, plus L1 and -GIoU of the boxes."""
  prob_BQC = jax.nn.softmax(logits_BQC.astype(jnp.float32), -1)
  (B, Q, _), M = prob_BQC.shape, target_labels_BM.shape[1]
  labels_BQM = jnp.broadcast_to(jnp.clip(target_labels_BM, 0)[:, None, :], (B, Q, M))
  class_BQM = -jnp.take_along_axis(prob_BQC, labels_BQM, axis=-1)
  l1_BQM = jnp.abs(boxes_BQ4[:, :, None, :] - xyxy_to_cxcywh(target_boxes_BM4)[:, None, :, :]).sum(-1)
  giou_BQM = pairwise_giou(cxcywh_to_xyxy(boxes_BQ4), target_boxes_BM4)
  return w.class_weight * class_BQM + w.l1_weight * l1_BQM - w.giou_weight * giou_BQM


def assign(cost_QM: np.ndarray, valid_M: np.ndarray) -> np.ndarray:
  """The query index of each target [M] (-1 for padding) minimising the total cost; one query per target."""
  out = np.full(cost_QM.shape[1], -1, np.int32)
  idx = np.flatnonzero(valid_M)
  if idx.size:
    rows, cols = linear_sum_assignment(cost_QM[:, idx])
    out[idx[cols]] = rows
  return out


def _assign_batch(cost, valid):
  cost, valid = np.asarray(cost, np.float64), np.asarray(valid)
  lead = cost.shape[:-2]
  flat_cost, flat_valid = cost.reshape((-1,) + cost.shape[-2:]), valid.reshape((-1, valid.shape[-1]))
  out = np.stack([assign(c, v) for c, v in zip(flat_cost, flat_valid)]) if flat_cost.shape[0] else \
      np.zeros((0, valid.shape[-1]), np.int32)
  return out.reshape(lead + (valid.shape[-1],)).astype(np.int32)


def hungarian_match(cost_BQM, valid_BM):
  """Query index per target [B, M] (int32, -1 where valid is False), from scipy on the host; not differentiable."""
  B, Q, M = cost_BQM.shape
  if valid_BM.shape != (B, M):
    raise ValueError(f'valid {valid_BM.shape} must be [B, M] of cost {cost_BQM.shape}.')
  if Q < M:
    raise ValueError(f'{Q} queries cannot match up to {M} targets per image; use at least {M} queries.')
  return jax.pure_callback(_assign_batch, jax.ShapeDtypeStruct((B, M), jnp.int32), jax.lax.stop_gradient(cost_BQM),
                           valid_BM, vmap_method='broadcast_all')


def set_loss(logits_BQC, boxes_BQ4, target_boxes_BM4, target_labels_BM, w: LossWeights = LossWeights()):
  """DETR's loss for one set of predictions: (total, parts). The last class of logits is no-object.

  Class cross-entropy over every query (unmatched ones target no-object, weighted no_object_weight; the weighted
  mean, as torch's weighted cross_entropy), and L1 and 1 - GIoU over matched pairs, averaged over the targets.
  """
  B, Q, C = logits_BQC.shape
  if target_boxes_BM4.shape != target_labels_BM.shape + (4,) or target_labels_BM.shape[0] != B:
    raise ValueError(f'targets boxes {target_boxes_BM4.shape} and labels {target_labels_BM.shape} must be [B, M, 4] '
                     f'and [B, M] with B={B}.')
  valid_BM = target_labels_BM >= 0
  match_BM = hungarian_match(matching_cost(logits_BQC, boxes_BQ4, target_boxes_BM4, target_labels_BM, w), valid_BM)
  rows = jnp.arange(B)[:, None]
  query_BM = jnp.where(valid_BM, match_BM, Q)  # index Q is out of range: dropped by the scatter
  classes_BQ = jnp.full((B, Q), C - 1, jnp.int32).at[rows, query_BM].set(target_labels_BM.astype(jnp.int32),
                                                                       mode='drop')
  weight_BQ = jnp.where(classes_BQ == C - 1, w.no_object_weight, 1.0)
  ce_BQ = optax.softmax_cross_entropy_with_integer_labels(logits_BQC.astype(jnp.float32), classes_BQ)
  loss_ce = (ce_BQ * weight_BQ).sum() / weight_BQ.sum()
  matched_BM4 = jnp.take_along_axis(boxes_BQ4, jnp.clip(match_BM, 0)[..., None], axis=1).astype(jnp.float32)
  valid = valid_BM.astype(jnp.float32)
  n = jnp.maximum(valid.sum(), 1.0)
  loss_l1 = (jnp.abs(matched_BM4 - xyxy_to_cxcywh(target_boxes_BM4)).sum(-1) * valid).sum() / n
  loss_giou = ((1.0 - giou(cxcywh_to_xyxy(matched_BM4), target_boxes_BM4)) * valid).sum() / n
  total = w.class_weight * loss_ce + w.l1_weight * loss_l1 + w.giou_weight * loss_giou
  return total, {'class_loss': loss_ce, 'l1_loss': loss_l1, 'giou_loss': loss_giou}
