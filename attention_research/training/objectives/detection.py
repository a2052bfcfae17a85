"""Set-prediction object detection (DETR): Hungarian-matched set loss, COCO-style mAP on the predictions.

batch {'image' [B, H, W, C], 'boxes' [B, M, 4] (x0, y0, x1, y1) / image size, 'labels' [B, M] (-1 pads)};
the model returns {'logits' [B, Q, C+1] (last = no-object), 'boxes' [B, Q, 4] (cx, cy, w, h) in [0, 1]} and,
with auxiliary decoding losses, 'aux_logits' / 'aux_boxes' [L-1, B, Q, ...], and a two-stage model's proposals
'enc_logits' / 'enc_boxes' [B, S, ...], each matched and scored alike.

Evaluation scores every query as a detection, as DETR does: its box, its most likely real class and that
class's probability as the score; pycocotools computes AP@[.5:.95] ('map') and AP@.5 ('ap50').
'loss' is the final layer's set loss averaged over images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attention_research.layers import capture_attention
from attention_research.training.objectives import base, boxes, coco


class Detection(base.Objective):
  kind = 'detection'
  Options = boxes.LossWeights
  # proposal_*: a two-stage model's encoder proposals scored alone (every feature cell a detection), so a table
  # shows what the decoder's queries add to them; '–' for models without proposals.
  metric_names = (('map', 'max'), ('ap50', 'max'), ('loss', 'min'), ('proposal_map', 'max'))

  def model_defaults(self):
    h, _, c = self.info['image_shape']
    return {'num_classes': self.info['num_classes'], 'image_size': h, 'channels': c}

  def _set_loss(self, logits, pred, batch):
    return boxes.set_loss(logits, pred, batch['boxes'], batch['labels'], self.options)

  def loss(self, model, batch, rng):
    out = model(batch['image'], deterministic=False)
    total, parts = self._set_loss(out['logits'], out['boxes'], batch)
    if 'aux_logits' in out:
      for logits, pred in zip(out['aux_logits'], out['aux_boxes']):
        total = total + self._set_loss(logits, pred, batch)[0]
    if 'enc_logits' in out:  # a two-stage model's proposals, one per feature cell, matched like the queries
      enc, enc_parts = self._set_loss(out['enc_logits'], out['enc_boxes'], batch)
      total = total + enc
      parts = {**parts, 'proposal_class_loss': enc_parts['class_loss']}
    return total, parts

  def _eval_fn(self, model, batch):
    out = model(batch['image'], deterministic=True)

    def one(logits, pred, target_boxes, labels):  # per image, so padded rows do not shift the average
      return self._set_loss(logits[None], pred[None], {'boxes': target_boxes[None], 'labels': labels[None]})[0]

    per_image = jax.vmap(one)(out['logits'], out['boxes'], batch['boxes'], batch['labels'])
    probs = lambda logits: jax.nn.softmax(logits.astype(jnp.float32), -1)
    proposals = (probs(out['enc_logits']), out['enc_boxes']) if 'enc_logits' in out else None
    return probs(out['logits']), out['boxes'], per_image, proposals

  def detections(self, probs_BQC, boxes_BQ4):
    """Per image (boxes [Q, 4] xyxy pixels, scores [Q], labels [Q]) from class probabilities and cxcywh boxes."""
    h, w, _ = self.info['image_shape']
    xyxy = np.asarray(boxes.cxcywh_to_xyxy(jnp.asarray(boxes_BQ4, jnp.float32)))
    xyxy = np.clip(xyxy * np.asarray([w, h, w, h], np.float32), 0, [w, h, w, h])
    real = np.asarray(probs_BQC)[..., :-1]
    return [(b, p.max(-1), p.argmax(-1)) for b, p in zip(xyxy, real)]

  def truth(self, boxes_BM4, labels_BM):
    h, w, _ = self.info['image_shape']
    scale = np.asarray([w, h, w, h], np.float64)
    # Rounded: boxes were whole pixels divided by the image size.
    return [(np.round(b[l >= 0] * scale, 3), l[l >= 0]) for b, l in zip(np.asarray(boxes_BM4), np.asarray(labels_BM))]

  def evaluate(self, model, batches):
    truth, dets, proposal_dets, losses = [], [], [], []
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('detect', model, self._eval_fn)
      probs, pred, per_image, proposals = jax.device_get(fn(state, batch))
      dets += self.detections(probs[:n], pred[:n])
      if proposals is not None:
        proposal_dets += self.detections(proposals[0][:n], proposals[1][:n])
      truth += self.truth(np.asarray(batch['boxes'])[:n], np.asarray(batch['labels'])[:n])
      losses.append(np.asarray(per_image)[:n])
    h, w, _ = self.info['image_shape']
    out = coco.coco_map(truth, dets, num_classes=self.info['num_classes'], image_size=(h, w))
    if proposal_dets:
      proposal = coco.coco_map(truth, proposal_dets, num_classes=self.info['num_classes'], image_size=(h, w))
      out.update(proposal_map=proposal['map'], proposal_ap50=proposal['ap50'])
    return {**out, 'loss': float(np.concatenate(losses).mean()) if losses else 0.0, 'examples': len(truth)}

  # --- what the queries look at
  def _queries_fn(self, model, batch):
    out, maps = capture_attention(lambda m: m(batch['image'], deterministic=True), model)
    if 'cross' not in maps:
      raise NotImplementedError(f'{type(model).__name__} has no cross-attention from queries to the image.')
    return jax.nn.softmax(out['logits'].astype(jnp.float32), -1), out['boxes'], maps['cross'][-1].mean(axis=1)

  def query_view(self, model, batch) -> dict:
    """The first example: image [H, W], each query's last-layer cross-attention (mean over heads) [Q, h, w],
    its box [Q, 4] (x0, y0, x1, y1 pixels), class [Q], score [Q], and the true boxes and labels."""
    probs, pred, att_1QS = self.run_for_plot('queries', model, self._queries_fn, batch)
    (det_boxes, scores, labels), = self.detections(probs, pred)
    (true_boxes, true_labels), = self.truth(np.asarray(batch['boxes'])[:1], np.asarray(batch['labels'])[:1])
    gh, gw = model.cfg.grid
    return {'image': np.asarray(batch['image'])[0, ..., 0], 'attention': np.asarray(att_1QS)[0].reshape(-1, gh, gw),
            'boxes': det_boxes, 'labels': labels, 'scores': scores, 'true_boxes': true_boxes,
            'true_labels': true_labels}

  def attention_for_plot(self, model, batch):
    """Each query's last-layer cross-attention over the feature grid, drawn on the image (kind 'captioner')."""
    view = self.query_view(model, batch)
    Q, gh, gw = view['attention'].shape
    tokens = [f'q{q}: {c} {s:.2f}' for q, (c, s) in enumerate(zip(view['labels'], view['scores']))]
    return {'kind': 'captioner', 'weights': view['attention'].reshape(1, Q, gh * gw), 'tokens': tokens,
            'image': np.asarray(batch['image'])[:1], 'grid': (gh, gw), 'causal': (), 'cross': ('attention',)}
