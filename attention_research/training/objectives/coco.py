"""COCO-style box mAP with pycocotools, from ground truth and detections held in memory.

    scores = coco_map(truth, detections, num_classes=10)   # {'map': AP@[.5:.95], 'ap50': AP@.5}

truth: one (boxes [K, 4], labels [K]) per image; detections: one (boxes [D, 4], scores [D], labels [D]) per image.
Boxes are (x0, y0, x1, y1) in pixels. Every category that occurs in the ground truth is averaged, as COCO does.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np


def _check_boxes(name: str, i: int, boxes, labels, num_classes: int, image_size) -> tuple[np.ndarray, np.ndarray]:
  boxes, labels = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(labels).reshape(-1)
  if len(boxes) != len(labels):
    raise ValueError(f'{name} of image {i}: {len(boxes)} boxes but {len(labels)} labels.')
  if not np.isfinite(boxes).all() or (boxes[:, 2:] < boxes[:, :2]).any():
    raise ValueError(f'{name} of image {i}: boxes must be finite (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0; got '
                     f'{boxes.tolist()}.')
  if image_size is not None and ((boxes < 0).any() or (boxes[:, [2, 3]] > np.asarray(image_size)[::-1]).any()):
    raise ValueError(f'{name} of image {i}: a box {boxes.tolist()} lies outside the image of (height, width) '
                     f'{tuple(image_size)}.')
  if ((labels < 0) | (labels >= num_classes)).any():
    raise ValueError(f'{name} of image {i}: labels {labels.tolist()} must be in [0, {num_classes}).')
  return boxes, labels.astype(int)


def coco_map(truth: Sequence, detections: Sequence, *, num_classes: int,
             image_size: tuple[int, int] | None = None) -> dict[str, float]:
  """COCO bbox AP@[.5:.95] ('map') and AP@.5 ('ap50'); see the module docstring. pycocotools' prints are silenced.

  image_size (height, width): ground-truth boxes outside it raise ValueError. Returns zeros without detections.
  """
  from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
  from pycocotools.cocoeval import COCOeval  # pylint: disable=g-import-not-at-top
  if len(truth) != len(detections):
    raise ValueError(f'{len(truth)} images of ground truth but {len(detections)} of detections.')
  images, annotations, results = [], [], []
  for i, ((boxes, labels), (d_boxes, d_scores, d_labels)) in enumerate(zip(truth, detections)):
    boxes, labels = _check_boxes('ground truth', i, boxes, labels, num_classes, image_size)
    d_boxes, d_labels = _check_boxes('detections', i, d_boxes, d_labels, num_classes, None)
    images.append({'id': i})
    for b, c in zip(boxes, labels):
      w, h = b[2] - b[0], b[3] - b[1]
      # Ids from 1: COCOeval records a detection's matched annotation id, and 0 there means unmatched.
      annotations.append({'id': len(annotations) + 1, 'image_id': i, 'category_id': int(c), 'iscrowd': 0,
                          'bbox': [b[0], b[1], w, h], 'area': w * h})
    results += [{'image_id': i, 'category_id': int(c), 'bbox': [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                 'score': float(s)} for b, s, c in zip(d_boxes, np.asarray(d_scores).reshape(-1), d_labels)]
  if not results or not annotations:
    return {'map': 0.0, 'ap50': 0.0}
  with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO()
    gt.dataset = {'images': images, 'annotations': annotations,
                  'categories': [{'id': c} for c in range(num_classes)]}
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(results), 'bbox')
    # At most 100 detections per image (COCO's largest maxDets) are scored, highest first.
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  stats = evaluator.stats
  # -1 marks "no ground truth in this setting"; with annotations present the 'all' setting has some.
  return {'map': max(float(stats[0]), 0.0), 'ap50': max(float(stats[1]), 0.0)}
