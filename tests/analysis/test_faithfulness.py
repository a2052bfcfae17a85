"""analysis.faithfulness: counterfactual weights, output change and rank correlation (numpy)."""

import numpy as np
import pytest

from attention_research.analysis import faithfulness as fa


def test_permutation_keeps_each_row_and_its_masked_keys(random_weights):
  w = random_weights(2, 3, 5, 6)
  causal = np.tril(np.ones((5, 6), bool), 1)
  w = np.where(causal, w, 0.0)
  w /= w.sum(-1, keepdims=True)
  p = fa.permuted_weights(w, np.random.default_rng(0))
  np.testing.assert_array_equal(p[..., ~causal], 0.0)  # masked keys stay masked
  np.testing.assert_allclose(np.sort(p, -1), np.sort(w, -1))  # each row is a rearrangement of itself
  assert not np.allclose(p, w)
  # With an explicit mask a zero weight on a visible key may move.
  q = fa.permuted_weights(np.array([[0.0, 1.0, 0.0]]), np.random.default_rng(1), visible=np.array([True, True, False]))
  assert q[0, 2] == 0.0 and q[0].sum() == 1.0


def test_uniform_weights_spread_the_row_total():
  w = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.1], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(fa.uniform_weights(w), [[0.5, 0.5, 0], [0.2, 0.2, 0.2], [0, 0, 0]])
  np.testing.assert_allclose(fa.uniform_weights(w, visible=np.ones(3, bool))[0], [1 / 3] * 3)


def test_total_variation_and_output_change():
  assert fa.total_variation([1.0, 0.0], [0.0, 1.0]) == 1.0
  assert fa.total_variation([0.5, 0.5], [0.5, 0.5]) == 0.0
  logits = np.array([[2.0, 0.0], [0.0, 0.0]])
  assert fa.output_change(logits, logits + 5.0) == pytest.approx(0.0)  # a shift leaves the softmax unchanged
  other = np.array([[0.0, 2.0], [0.0, 0.0]])
  p = fa.softmax(logits)[0]
  assert fa.output_change(logits, other) == pytest.approx(abs(p[0] - p[1]) / 2)
  assert fa.output_change(logits, other, where=[True, False]) == pytest.approx(abs(p[0] - p[1]))


def test_rank_correlation_per_row():
  a = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.2, 0.2, 0.2]])
  b = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
  tau = fa.rank_correlation(a, b)
  assert tau[0] == pytest.approx(1.0) and tau[1] == pytest.approx(-1.0) and np.isnan(tau[2])
  with pytest.raises(ValueError, match='same shape'):
    fa.rank_correlation(a, b[:, :2])
