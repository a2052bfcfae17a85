import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research import layers

MASK = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


def inputs(dq=8, dk=8):
  return jax.random.normal(jax.random.PRNGKey(0), (2, dq)), jax.random.normal(jax.random.PRNGKey(1), (2, 5, dk))


@pytest.mark.parametrize('make', [
    lambda: layers.AdditiveAttention(6, 10, 7, rngs=nnx.Rngs(0)),
    lambda: layers.LuongAttention(6, 10, score='general', rngs=nnx.Rngs(0)),
    lambda: layers.LuongAttention(6, 10, score='concat', rngs=nnx.Rngs(0)),
])
def test_weights_are_a_distribution_over_positions_and_zero_on_padding(make):
  h, m = inputs(6, 10)
  context, w = make().context_and_weights(h, m, mask=MASK)
  assert context.shape == (2, 10) and w.shape == (2, 5)
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
  assert float(w[0, 3:].max()) == 0.0
  np.testing.assert_allclose(context, jnp.einsum('bs,bsd->bd', w, m), atol=1e-5)


def test_luong_dot_is_a_plain_dot_product():
  h, m = inputs()
  _, w = layers.LuongAttention(8, 8, score='dot', rngs=nnx.Rngs(0)).context_and_weights(h, m)
  np.testing.assert_allclose(w, jax.nn.softmax(jnp.einsum('bd,bsd->bs', h, m), -1), atol=1e-6)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match='unknown Luong score'):
    layers.LuongAttention(8, 8, score='location', rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="'dot' needs equal sizes"):
    layers.LuongAttention(8, 6, score='dot', rngs=nnx.Rngs(0))
  h, m = inputs()
  with pytest.raises(ValueError, match='expected query'):
    layers.AdditiveAttention(8, 8, 4, rngs=nnx.Rngs(0))(h[:, None], m)
  with pytest.raises(ValueError, match='mask must be'):
    layers.AdditiveAttention(8, 8, 4, rngs=nnx.Rngs(0))(h, m, mask=MASK[:, :3])
