"""analysis.flow: attention flow equals rollout on one layer and equals the graph's min cut on more."""

import itertools

import numpy as np
import pytest

from attention_research.analysis import flow, statistics


def test_one_layer_flow_is_rollout(random_weights):
  w = random_weights(2, 3, 5, 5)  # [B, N, T, T]
  np.testing.assert_allclose(flow.attention_flow([w]), statistics.attention_rollout([w]), atol=1e-5)
  np.testing.assert_allclose(flow.attention_flow([w], residual=False, head_fusion='max'),
                             statistics.attention_rollout([w], residual=False, head_fusion='max'), atol=1e-5)


def _min_cut(mats, source, sink):
  """Brute force over every cut of the layer graph: the max-flow by the max-flow min-cut theorem."""
  T = mats[0].shape[-1]
  n = (len(mats) + 1) * T
  cap = np.zeros((n, n))
  for l, a in enumerate(mats):
    cap[l * T:(l + 1) * T, (l + 1) * T:(l + 2) * T] = a.T  # (l, s) -> (l + 1, t) carries a[t, s]
  others = [v for v in range(n) if v not in (source, sink)]
  best = np.inf
  for bits in itertools.product([0, 1], repeat=len(others)):
    side = np.zeros(n, bool)
    side[source] = True
    side[[v for v, b in zip(others, bits) if b]] = True
    best = min(best, cap[side][:, ~side].sum())
  return best


def test_flow_equals_the_min_cut_and_is_bounded_by_each_layer(random_weights):
  ws = [random_weights(2, 3, 3, seed=i, sharpness=3.0) for i in range(2)]  # 2 layers, 2 heads, T = 3
  f = flow.attention_flow(ws)
  mats = flow.layer_matrices(ws)
  for t in range(3):
    for s in range(3):
      assert f[t, s] == pytest.approx(_min_cut(mats, s, 2 * 3 + t), abs=1e-5)
  # A flow into output t cannot exceed what its last edge carries, nor what leaves input s.
  assert (f <= mats[1].sum(-1, keepdims=True) + 1e-6).all() and (f <= mats[0].sum(0, keepdims=True) + 1e-6).all()
  # Unlike rollout, flow is no product of the layers: with two layers the two differ.
  assert not np.allclose(f, statistics.attention_rollout(ws), atol=1e-3)


def test_hand_computed_flow_differs_from_rollout():
  # Without the residual, token 1 splits its attention between both tokens in each of two layers. Input 0 reaches
  # output 1 along 0 -> 0 -> 1 and 0 -> 1 -> 1, 0.5 each: flow 1.0, while rollout multiplies, 1 * 0.5 + 0.5 * 0.5.
  a = np.array([[1.0, 0.0], [0.5, 0.5]])[None]
  np.testing.assert_allclose(flow.attention_flow([a, a], residual=False), [[1.0, 0.0], [1.0, 0.5]], atol=1e-5)
  np.testing.assert_allclose(statistics.attention_rollout([a, a], residual=False), [[1.0, 0.0], [0.75, 0.25]])
