"""Linen users reach the NNX layers through flax.nnx.bridge."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx

from attention_research import layers


def test_multihead_attention_inside_a_linen_model():
  class LinenModel(linen.Module):
    @linen.compact
    def __call__(self, x):
      x = linen.Dense(16)(x)
      return nnx.bridge.to_linen(layers.MultiHeadAttention, 4, 16, variant='local',
                                 variant_options={'window': (1, 0)})(x, is_causal=True)

  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8))
  model = LinenModel()
  variables = model.init(jax.random.PRNGKey(1), x)
  y = model.apply(variables, x)
  assert y.shape == (2, 5, 16)
  grads = jax.grad(lambda v: jnp.sum(model.apply(v, x) ** 2))(variables)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  # causal: the first output does not move when the last input changes
  y2 = model.apply(variables, x.at[:, -1].add(1.0))
  np.testing.assert_allclose(y[:, 0], y2[:, 0], atol=1e-6)
