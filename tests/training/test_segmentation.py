"""The segmentation objective: IoU from a confusion matrix against a hand count, and the all-background baseline."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research import data
from attention_research.training import loop, objectives
from attention_research.training.objectives import segmentation as seg


def test_iou_matches_a_hand_count():
  labels = np.array([[0, 0, 1, 1],
                     [0, 2, 2, 1]])
  preds = np.array([[0, 1, 1, 1],
                    [0, 0, 2, 0]])
  cm = seg.confusion_matrix(labels, preds, 4)
  # class 0: TP 2, FP 2 (true 2 and true 1 predicted 0), FN 1 -> 2/5; class 1: TP 2, FP 1, FN 1 -> 2/4;
  # class 2: TP 1, FN 1 -> 1/2; class 3 absent from both -> no IoU, left out of the mean.
  np.testing.assert_allclose(seg.iou_per_class(cm)[:3], [2 / 5, 2 / 4, 1 / 2])
  assert np.isnan(seg.iou_per_class(cm)[3])
  assert seg.mean_iou(cm) == pytest.approx((2 / 5 + 2 / 4 + 1 / 2) / 3)
  assert seg.mean_iou(seg.confusion_matrix(labels, labels, 4)) == 1.0
  with pytest.raises(ValueError, match=r'must lie in \[0, 4\)'):
    seg.confusion_matrix(labels, preds + 2, 4)
  with pytest.raises(ValueError, match='differ in size'):
    seg.confusion_matrix(labels, preds[:1], 4)
  with pytest.raises(ValueError, match=r'must be \[K, K\]'):
    seg.iou_per_class(np.zeros((3, 4)))


class AllBackground(nnx.Module):
  """Predicts class 0 everywhere: the trivial baseline."""

  def __init__(self, num_classes):
    self.bias = nnx.Param(jnp.eye(num_classes)[0])

  def __call__(self, image, *, deterministic=True):
    return jnp.broadcast_to(self.bias[...], image.shape[:3] + self.bias.shape)


def test_all_background_scores_the_background_share_over_the_classes_present(tmp_path):
  task = data.load_task('scene_segmentation', size='small', data_dir=str(tmp_path))
  objective = objectives.make(task)
  metrics = objective.evaluate(AllBackground(11), loop.eval_batches(task, 'test', 16, 0))
  masks = np.asarray(next(iter(task.batches('test', batch_size=task.num_examples('test'), shuffle=False)))['mask'])
  share = (masks == 0).mean()
  present = len(np.unique(masks))
  assert metrics['pixel_accuracy'] == pytest.approx(share)
  assert metrics['iou_background'] == pytest.approx(share)
  assert metrics['mean_iou'] == pytest.approx(share / present)
  assert all(metrics[f'iou_{d}'] == 0.0 for d in range(10) if d + 1 in masks)


def test_bad_objective_option_is_a_clear_error():
  with pytest.raises(ValueError, match='background_weight must be > 0'):
    seg.SegmentationOptions(background_weight=0.0)
