"""analysis.relevancy: the propagation rules by hand, and relevancy of a model whose output depends on one input."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention_research import layers
from attention_research.analysis import probes, relevancy


def test_gradient_weighted_keeps_positive_products_and_averages_heads():
  w = np.array([[[0.5, 0.5]], [[1.0, 0.0]]])  # [N=2, T=1, S=2]
  g = np.array([[[2.0, -1.0]], [[1.0, 3.0]]])
  np.testing.assert_allclose(relevancy.gradient_weighted(w, g), [[(1.0 + 1.0) / 2, 0.0]])


def test_self_attention_rule_by_hand(random_weights):
  w1, w2 = random_weights(2, 3, 3, seed=1), random_weights(2, 3, 3, seed=2)
  g1, g2 = np.random.default_rng(0).normal(size=(2, 2, 3, 3))
  a1, a2 = relevancy.gradient_weighted(w1, g1), relevancy.gradient_weighted(w2, g2)
  r = relevancy.self_attention_relevancy([w1, w2], [g1, g2])
  eye = np.eye(3)
  np.testing.assert_allclose(r, (eye + a2) @ (eye + a1))


def test_encoder_decoder_rule_by_hand(random_weights):
  rng = np.random.default_rng(0)
  we, wd, wx = random_weights(2, 4, 4, seed=1), random_weights(2, 3, 3, seed=2), random_weights(2, 3, 4, seed=3)
  ge, gd, gx = rng.normal(size=(2, 4, 4)), rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 4))
  out = relevancy.encoder_decoder_relevancy(([we], [ge]), ([wd], [gd]), ([wx], [gx]))
  a_e, a_d, a_x = (relevancy.gradient_weighted(w, g) for w, g in ((we, ge), (wd, gd), (wx, gx)))
  r_ss = np.eye(4) + a_e
  r_tt = np.eye(3) + a_d
  bar = lambda r: (r - np.eye(len(r))) / (r - np.eye(len(r))).sum(-1, keepdims=True) + np.eye(len(r))
  np.testing.assert_allclose(out['encoder'], r_ss)
  np.testing.assert_allclose(out['target'], r_tt)
  np.testing.assert_allclose(out['source'], bar(r_tt).T @ a_x @ bar(r_ss))
  assert out['source'].shape == (3, 4)


class OneInput(nnx.Module):
  """Two attention layers, no residual, every query allowed to see only key j: the output depends on x_j only."""

  def __init__(self, j, rngs):
    self.j = j
    self.first = layers.MultiHeadAttention(1, 8, rngs=rngs)
    self.second = layers.MultiHeadAttention(1, 8, rngs=rngs)

  def __call__(self, x):
    mask = (jnp.arange(x.shape[1]) == self.j)[None, None, None, :]
    return self.second(self.first(x, mask=mask), mask=mask)


def test_relevancy_and_gradient_x_input_point_at_the_one_input_the_output_depends_on():
  j, T = 2, 5
  model = OneInput(j, nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(0), (1, T, 8))
  # A squared norm: positive gradient x weight on the key that carries the output.
  _, maps, grads = probes.attention_gradients(lambda m: jnp.sum(m(x) ** 2), model)
  order = sorted(maps)  # 'first' then 'second': the stack's order
  r = relevancy.self_attention_relevancy([maps[k] for k in order], [grads[k] for k in order])[0]
  beyond_self = r - np.eye(T)
  assert (beyond_self.sum(0).argmax() == j) and np.all(np.delete(beyond_self, j, axis=1) == 0)
  assert beyond_self[:, j].min() > 0
  _, g = probes.input_gradients(lambda x: jnp.sum(model(x) ** 2), x)
  gxi = relevancy.gradient_x_input(g, x, reduce='norm')[0]
  assert gxi.argmax() == j and np.all(np.delete(gxi, j) < 1e-6 * gxi[j])
