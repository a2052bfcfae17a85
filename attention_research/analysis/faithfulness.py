"""Is attention an explanation? The numbers of Jain and Wallace (2019) and Wiegreffe and Pinter (2019).

  rank_correlation   Kendall's tau between attention and another importance (gradient x input, relevancy)
                     over the keys of each row: near 1 when they rank the tokens alike.
  total_variation    TVD between two output distributions, 0.5 sum |p - q| in [0, 1]: the output change when
                     the attention is swapped for a counterfactual one.
  permuted_weights   each row's weights shuffled among its visible keys (Jain and Wallace's permutation).
  uniform_weights    each row's mass spread evenly over its visible keys (Wiegreffe and Pinter's baseline).

A small output change under permutation or uniform weights says the model's prediction does not rest on where
its attention points; the counterfactual weights go into a model with `probes.run_with_attention`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from attention_research.analysis import _checks


def _visible(w: np.ndarray, visible) -> np.ndarray:
  """Keys each row may attend to: given (broadcast to w), or where the weights are positive (masked keys get
  exactly 0 from the masked softmax)."""
  if visible is None:
    return w > 0
  v = np.asarray(visible)
  if v.dtype != np.bool_:
    raise ValueError(f'visible must be a boolean mask; got dtype {v.dtype} and shape {v.shape}.')
  try:
    return np.broadcast_to(v, w.shape)
  except ValueError as e:
    raise ValueError(f'visible of shape {v.shape} does not broadcast to the weights of shape {w.shape}.') from e


def permuted_weights(weights, rng: np.random.Generator, visible=None) -> np.ndarray:
  """Each row's weights permuted at random among its visible keys; masked keys keep 0 ([..., T, S])."""
  w = _checks.as_array(weights, 'weights', min_rank=1, layout='[..., S]')
  vis = _visible(w, visible)
  pos = np.where(vis, np.arange(w.shape[-1]), np.inf)
  # Visible keys first in both orders, the masked ones after in the same (ascending) order: k-th visible key
  # in ascending order takes the weight of the k-th in a random order, and masked keys map to themselves.
  ascending = np.argsort(pos, -1, kind='stable')
  shuffled = np.argsort(np.where(vis, rng.random(w.shape), np.inf), -1, kind='stable')
  out = np.zeros_like(w)
  np.put_along_axis(out, ascending, np.take_along_axis(w, shuffled, -1), -1)
  return out


def uniform_weights(weights, visible=None) -> np.ndarray:
  """Each row's total weight spread evenly over its visible keys ([..., T, S]); rows of sink variants keep
  their total below 1."""
  w = _checks.as_array(weights, 'weights', min_rank=1, layout='[..., S]')
  vis = _visible(w, visible).astype(np.float64)
  count = vis.sum(-1, keepdims=True)
  return np.divide(vis * w.sum(-1, keepdims=True), count, out=np.zeros_like(w), where=count > 0)


def softmax(logits) -> np.ndarray:
  z = _checks.as_array(logits, 'logits', min_rank=1, layout='[..., C]')
  z = np.exp(z - z.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


def total_variation(p, q) -> np.ndarray:
  """0.5 sum_c |p_c - q_c| over the last axis, [..., C] -> [...]."""
  p = _checks.as_array(p, 'p', min_rank=1, layout='[..., C]')
  q = _checks.as_array(q, 'q', min_rank=1, layout='[..., C]')
  if p.shape != q.shape:
    raise ValueError(f'distributions of shapes {p.shape} and {q.shape} differ.')
  return 0.5 * np.abs(p - q).sum(-1)


def output_change(logits, other_logits, where=None) -> float:
  """Mean TVD between the softmax distributions of two logit arrays [..., C], over the positions where
  `where` [...] is True (all by default; e.g. the query positions of a tagging task)."""
  tvd = total_variation(softmax(logits), softmax(other_logits))
  if where is not None:
    tvd = tvd[np.broadcast_to(np.asarray(where, bool), tvd.shape)]
  if not tvd.size:
    raise ValueError('output_change has no positions to average over.')
  return float(tvd.mean())


def rank_correlation(attention, importance) -> np.ndarray:
  """Kendall's tau (tau-b) between two importances of the same keys, per row: [..., S] twice -> [...]; NaN for
  a row where either is constant."""
  a = _checks.as_array(attention, 'attention', min_rank=1, layout='[..., S]')
  b = _checks.as_array(importance, 'importance', min_rank=1, layout='[..., S]')
  if a.shape != b.shape:
    raise ValueError(f'attention {a.shape} and importance {b.shape} must have the same shape.')
  fa, fb = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
  taus = np.full(len(fa), np.nan)
  for i, (x, y) in enumerate(zip(fa, fb)):
    if np.ptp(x) > 0 and np.ptp(y) > 0:
      taus[i] = stats.kendalltau(x, y).statistic
  return taus.reshape(a.shape[:-1])
