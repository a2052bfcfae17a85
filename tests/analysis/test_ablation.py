"""analysis.ablation: head importance, pruning curves and counterfactual attention on tiny models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research import layers
from attention_research.analysis import ablation


class Tagger(nnx.Module):
  """Two self-attention blocks and a linear head: logits [B, T, C]."""

  def __init__(self, rngs, ignore_attention=False):
    self.blocks = nnx.List([layers.TransformerBlock(8, 2, 16, rngs=rngs) for _ in range(2)])
    self.head = nnx.Linear(8, 3, rngs=rngs)
    if ignore_attention:  # the attention layers run, but their outputs are multiplied by zero
      for block in self.blocks:
        block.self_attention.out.kernel[...] = jnp.zeros_like(block.self_attention.out.kernel[...])

  def __call__(self, x):
    for block in self.blocks:
      x = block(x, is_causal=True)
    return self.head(x)


def _x():
  return jax.random.normal(jax.random.PRNGKey(0), (2, 6, 8))


def test_permuted_or_uniform_attention_changes_nothing_in_a_model_that_ignores_it():
  model, x = Tagger(nnx.Rngs(0), ignore_attention=True), _x()
  change = ablation.counterfactual_change(lambda m: m(x), model, rng=np.random.default_rng(0))
  assert change == pytest.approx({'tvd_permuted': 0.0, 'tvd_permuted_max': 0.0, 'tvd_uniform': 0.0}, abs=1e-6)
  used = Tagger(nnx.Rngs(0))
  change = ablation.counterfactual_change(lambda m: m(x), used, rng=np.random.default_rng(0))
  assert change['tvd_permuted'] > 1e-3 and change['tvd_uniform'] > 1e-3
  assert change['tvd_permuted_max'] >= change['tvd_permuted']


def test_head_importance_and_pruning_curve():
  model, x = Tagger(nnx.Rngs(0)), _x()
  target = model(x)
  # Metric: closeness to the unablated output, so every drop is >= 0 and pruning everything costs the most.
  metric = lambda out: -float(jnp.mean((out - target) ** 2))
  rows = ablation.head_importance(metric, lambda m: m(x), model)
  assert [(r['group'], r['layer'], r['head']) for r in rows] == [('self', l, h) for l in range(2) for h in range(2)]
  assert all(r['drop'] > 0 for r in rows)
  curve = ablation.pruning_curve(metric, lambda m: m(x), model)
  assert [c['pruned'] for c in curve] == list(range(5)) and curve[0]['metric'] == pytest.approx(0.0, abs=1e-9)
  least = min(rows, key=lambda r: r['drop'])
  assert curve[1]['head'] == ('self', least['layer'], least['head'])
  assert curve[1]['metric'] == pytest.approx(least['metric'], abs=1e-9)
  assert curve[-1]['metric'] < curve[0]['metric']
  with pytest.raises(ValueError, match='head axis'):
    ablation.heads_of({'attention': np.zeros((2, 3, 4))})


def test_gradient_importance_per_output_position():
  # logits_t = x_{t-1} W (position 0 reads itself): each position's importance sits on one input position.
  w = jax.random.normal(jax.random.PRNGKey(1), (8, 3))
  fn = lambda x: jnp.einsum('BLD,DC->BLC', jnp.roll(x, 1, axis=1).at[:, 0].set(x[:, 0]), w)
  where = np.ones((2, 6), bool)
  where[1, 2] = False
  imp = ablation.gradient_importance(fn, _x(), where)
  assert imp.shape == (2, 6, 6) and np.isnan(imp[1, 2]).all()
  expect = np.maximum(np.arange(6) - 1, 0)
  np.testing.assert_array_equal(np.nanargmax(imp[0], -1), expect)
  assert np.nansum(imp[0]) == pytest.approx(imp[0][np.arange(6), expect].sum())
