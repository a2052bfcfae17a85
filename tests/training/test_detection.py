"""Detection: Hungarian matching, GIoU, the set loss, COCO mAP through pycocotools, and the DETR model's views."""

import itertools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research.models import detr
from attention_research.training.objectives import boxes, coco
from attention_research.training.objectives.detection import Detection

INFO = {'num_classes': 10, 'image_shape': (48, 48, 1), 'max_objects': 4, 'pad_id': 0}


def _objective():
  return Detection(types.SimpleNamespace(info=INFO, kind='detection'), {})


def test_assignment_is_the_cheapest_over_all_permutations():
  rng = np.random.default_rng(0)
  for _ in range(20):
    Q, M = 4, 3
    cost = rng.normal(size=(Q, M))
    valid = rng.random(M) < 0.7
    got = boxes.assign(cost, valid)
    assert (got[~valid] == -1).all() and len(set(got[valid])) == valid.sum()
    cols = np.flatnonzero(valid)
    best = min(sum(cost[q, m] for q, m in zip(rows, cols)) for rows in itertools.permutations(range(Q), len(cols)))
    assert np.isclose(sum(cost[got[m], m] for m in cols), best)


def test_hungarian_match_under_jit_and_vmap_equals_the_host_assignment():
  rng = np.random.default_rng(1)
  cost = rng.normal(size=(2, 3, 5, 3)).astype(np.float32)
  valid = rng.random((2, 3, 3)) < 0.7
  want = np.stack([[boxes.assign(c, v) for c, v in zip(cs, vs)] for cs, vs in zip(cost, valid)])
  got = jax.jit(jax.vmap(boxes.hungarian_match))(cost, valid)
  np.testing.assert_array_equal(got, want)
  with pytest.raises(ValueError, match='3 queries cannot match up to 4 targets'):
    boxes.hungarian_match(jnp.zeros((1, 3, 4)), jnp.ones((1, 4), bool))


def test_giou_hand_cases():
  a = jnp.array([[0., 0., 2., 2.], [0., 0., 1., 1.], [1., 2., 3., 5.]])
  b = jnp.array([[1., 1., 3., 3.], [2., 0., 3., 1.], [1., 2., 3., 5.]])
  # Overlap 1 of union 7 in an enclosing 3x3 box; disjoint unit squares 1 apart; equal boxes.

  @jax.jit
  def fn(a, b):
    return boxes.giou(a, b), boxes.pairwise_giou(a, b), boxes.xyxy_to_cxcywh(boxes.cxcywh_to_xyxy(a))

  elementwise, pairwise, round_trip = fn(a, b)
  np.testing.assert_allclose(elementwise, [1 / 7 - 2 / 9, -1 / 3, 1.0], atol=1e-6)
  np.testing.assert_allclose(pairwise[0, 1], -1 / 6, atol=1e-6)  # touching boxes: union 5 in an enclosing 6
  np.testing.assert_allclose(np.diag(pairwise), elementwise, atol=1e-6)
  np.testing.assert_allclose(round_trip, a, atol=1e-6)


def test_set_loss_ignores_unmatched_boxes_and_is_zero_on_perfect_boxes():
  target = jnp.array([[[0.1, 0.1, 0.3, 0.4], [0.5, 0.5, 0.9, 0.7], [0, 0, 0, 0]]])
  labels = jnp.array([[3, 7, -1]])
  pred = jnp.array([[[0.5, 0.5, 0.2, 0.2], [0.7, 0.6, 0.4, 0.2], [0.2, 0.25, 0.2, 0.3], [0.4, 0.4, 0.1, 0.1]]])
  logits = jnp.zeros((1, 4, 11))

  def loss(p):
    return boxes.set_loss(logits, p, target, labels)

  (total, parts), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(pred)
  assert float(parts['l1_loss']) < 1e-6 and float(parts['giou_loss']) < 1e-5
  # Queries 1 and 2 hold the targets' boxes; queries 0 and 3 are unmatched: no box gradient reaches them.
  assert np.abs(np.asarray(grad)[0, [0, 3]]).max() == 0.0
  assert np.isfinite(float(total))


def test_perfect_predictions_score_map_one_through_pycocotools():
  objective = _objective()
  rng = np.random.default_rng(2)
  true_boxes = np.array([[[2, 3, 14, 20], [20, 20, 40, 38], [0, 0, 0, 0]],
                         [[30, 1, 47, 15], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32) / 48
  labels = np.array([[4, 9, -1], [0, -1, -1]])
  Q = 5
  probs = np.zeros((2, Q, 11), np.float32)
  probs[..., 10] = 1.0  # no-object everywhere, then the matched queries
  pred = rng.random((2, Q, 4)).astype(np.float32) * 0.3 + 0.2
  for b in range(2):
    for m in np.flatnonzero(labels[b] >= 0):
      probs[b, m + 1] = np.eye(11)[labels[b, m]]
      pred[b, m + 1] = np.asarray(boxes.xyxy_to_cxcywh(jnp.asarray(true_boxes[b, m])))
  truth = objective.truth(true_boxes, labels)
  scores = coco.coco_map(truth, objective.detections(probs, pred), num_classes=10, image_size=(48, 48))
  assert scores == {'map': pytest.approx(1.0), 'ap50': pytest.approx(1.0)}
  shifted = pred.copy()
  shifted[..., 0] += 0.08  # each box moved 4 pixels right: a lower IoU, so the mean over thresholds drops
  scores = coco.coco_map(truth, objective.detections(probs, shifted), num_classes=10, image_size=(48, 48))
  assert scores['map'] < 0.9 and scores['ap50'] == pytest.approx(1.0)


def test_boxes_outside_the_image_or_malformed_raise():
  dets = [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))]
  with pytest.raises(ValueError, match='outside the image'):
    coco.coco_map([(np.array([[10, 10, 50, 20]]), np.array([1]))], dets, num_classes=10, image_size=(48, 48))
  with pytest.raises(ValueError, match='x1 >= x0'):
    coco.coco_map([(np.array([[10, 10, 5, 20]]), np.array([1]))], dets, num_classes=10)
  with pytest.raises(ValueError, match='labels'):
    coco.coco_map([(np.array([[1, 1, 5, 5]]), np.array([10]))], dets, num_classes=10)
  with pytest.raises(ValueError, match='no_object_weight'):
    Detection(types.SimpleNamespace(info=INFO, kind='detection'), {'no_object_weight': -1.0})


def test_bad_model_configs_raise():
  with pytest.raises(ValueError, match='cannot be a cross-attention'):
    detr.DETRConfig(attention='gated_delta')
  with pytest.raises(ValueError, match='divisible by 8'):
    detr.DETRConfig(image_size=50)
  with pytest.raises(ValueError, match='anchor_sizes'):
    detr.GridConfig(anchor_sizes=(0.0,))


def test_query_view_shows_each_query_attention_on_the_feature_grid():
  cfg = detr.DETRConfig(backbone_channels=(4, 4, 8), d_model=8, num_heads=2, num_encoder_layers=1,
                        num_decoder_layers=2, mlp_dim=8, num_queries=3)
  model = detr.DETR(cfg, rngs=nnx.Rngs(0))
  batch = {'image': np.random.default_rng(0).random((1, 48, 48, 1)).astype(np.float32),
           'boxes': np.array([[[0.1, 0.1, 0.3, 0.3]]], np.float32), 'labels': np.array([[5]])}
  out = jax.eval_shape(model, batch['image'])  # traced, not compiled
  assert out['logits'].shape == (1, 3, 11) and out['aux_boxes'].shape == (1, 1, 3, 4)
  view = _objective().query_view(model, batch)
  assert view['attention'].shape == (3, 6, 6)
  np.testing.assert_allclose(view['attention'].sum((1, 2)), 1.0, atol=1e-5)
  assert view['boxes'].shape == (3, 4) and (view['boxes'] >= 0).all() and (view['boxes'] <= 48).all()
  np.testing.assert_allclose(view['true_boxes'], [[4.8, 4.8, 14.4, 14.4]], atol=1e-3)


def _two_stage_model(num_queries=3):
  cfg = detr.DETRConfig(backbone_channels=(4, 4, 8), d_model=8, num_heads=2, num_encoder_layers=1,
                        num_decoder_layers=2, mlp_dim=8, num_queries=num_queries, two_stage=True)
  return detr.DETR(cfg, rngs=nnx.Rngs(0))


def test_two_stage_queries_start_from_the_best_scoring_proposals():
  model = _two_stage_model()
  image = np.random.default_rng(1).random((2, 48, 48, 1)).astype(np.float32)

  @nnx.jit
  def select(m):
    mem = m.encode(image)
    return (mem,) + m._select(mem, m.positions())

  memory, logits, proposal_boxes, content, query_pos, reference = select(model)
  assert logits.shape == (2, 36, 11) and proposal_boxes.shape == (2, 36, 4) and query_pos.shape == (2, 3, 8)
  score = np.asarray(jax.nn.softmax(logits, -1))[..., :-1].max(-1)
  for b in range(2):
    best = np.argsort(-score[b])[:3]  # the three cells of highest real-class probability, in that order
    np.testing.assert_allclose(reference[b], proposal_boxes[b, best], rtol=1e-6)
    np.testing.assert_allclose(content[b], memory[b, best], rtol=1e-6)
  # A proposal box refines its own cell: with a zero box head it is the cell itself.
  cells = np.asarray(model.cell_boxes())
  np.testing.assert_allclose(cells[7], [1.5 / 6, 1.5 / 6, 1 / 6, 1 / 6], rtol=1e-6)
  out = jax.eval_shape(model, image)
  assert out['enc_logits'].shape == (2, 36, 11) and out['boxes'].shape == (2, 3, 4)
  assert ((proposal_boxes > 0) & (proposal_boxes < 1)).all()


def test_two_stage_proposals_are_trained_and_scored():
  model = _two_stage_model()
  objective = _objective()
  batch = {'image': np.random.default_rng(2).random((2, 48, 48, 1)).astype(np.float32),
           'boxes': np.array([[[0.1, 0.1, 0.3, 0.3], [0, 0, 0, 0]], [[0.5, 0.5, 0.9, 0.7], [0.1, 0.6, 0.3, 0.9]]],
                             np.float32),
           'labels': np.array([[5, -1], [2, 7]])}
  grads = nnx.jit(nnx.grad(lambda m: objective.loss(m, batch, None)[0]))(model)
  assert float(jnp.abs(grads.proposal_class.kernel[...]).sum()) > 0  # the proposals' own set loss reaches them
  metrics = objective.evaluate(model, [batch])
  assert {'map', 'ap50', 'proposal_map', 'proposal_ap50'} <= set(metrics) and metrics['examples'] == 2
  with pytest.raises(ValueError, match='at most that many queries'):
    detr.DETRConfig(num_queries=37, two_stage=True)
