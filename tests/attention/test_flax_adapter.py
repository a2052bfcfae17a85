"""Swapping attention inside Flax's own modules, without changing the model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from attention_research import attention


def test_nnx_multihead_attention_with_adapter_equals_its_default():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 16))
  ref = nnx.MultiHeadAttention(4, 16, decode=False, rngs=nnx.Rngs(0))
  ours = nnx.MultiHeadAttention(4, 16, decode=False, rngs=nnx.Rngs(0),
                                attention_fn=attention.as_flax_attention_fn('dot_product'))
  mask = nnx.make_causal_mask(jnp.ones((2, 5)))
  np.testing.assert_allclose(ours(x, mask=mask), ref(x, mask=mask), atol=1e-5)


def test_nnx_sow_weights_and_an_approximate_variant():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 16))
  layer = nnx.MultiHeadAttention(4, 16, decode=False, rngs=nnx.Rngs(0),
                                 attention_fn=attention.as_flax_attention_fn('local', window=(1, 1)))
  y, sown = nnx.capture(layer, nnx.Intermediate)(x, sow_weights=True)
  w = sown['attention_weights']
  w = jax.tree.leaves(w)[0]
  assert y.shape == x.shape and w.shape == (2, 4, 5, 5)
  assert float(w[0, 0, 0, 2:].max()) == 0.0


def test_linen_multihead_attention_with_adapter_equals_its_default():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 16))
  ref = linen.MultiHeadDotProductAttention(num_heads=4)
  ours = linen.MultiHeadDotProductAttention(num_heads=4, attention_fn=attention.as_flax_attention_fn('flash'))
  params = ref.init(jax.random.PRNGKey(1), x)
  np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), atol=1e-5)


def test_weight_dropout_through_the_adapter_needs_an_rng():
  fn = attention.as_flax_attention_fn('dot_product')
  q = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 2, 8))
  out = fn(q, q, q, dropout_rate=0.5, deterministic=False, dropout_rng=jax.random.PRNGKey(1))
  assert out.shape == q.shape and not np.allclose(out, fn(q, q, q))
  with pytest.raises(ValueError, match='dropout_rng'):
    fn(q, q, q, dropout_rate=0.5, deterministic=False)
