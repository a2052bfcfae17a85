"""Zero-length sequences: T = 0 gives an empty output, S = 0 gives zeros (no visible key), in every variant."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from tests.attention.variant_cases import variant_kwargs


def _kwargs(name, q, k, v):
  S = k.shape[-3]
  if name == 'linformer':  # init_params needs a positive length; the projection itself may be [0, r]
    return {'params': {'e': jnp.zeros((S, 4)), 'f': jnp.zeros((S, 4))}}
  return variant_kwargs('dot_product' if name == 'dot_product_flash' else name, q, k, v)


@pytest.mark.parametrize('T,S', [(0, 6), (6, 0), (0, 0)])
@pytest.mark.parametrize('name', sorted(attention.VARIANTS) + ['dot_product_flash'])
def test_empty_sequences_in_values_weights_jit_and_eager(name, T, S):
  fn = attention.get('dot_product' if name == 'dot_product_flash' else name).fn
  q, k, v = jnp.ones((2, T, 4, 8)), jnp.ones((2, S, 2, 8)), jnp.ones((2, S, 2, 5))
  if name in attention.VARIANTS and attention.get(name).family == 'recurrent' and T != S:
    with pytest.raises(ValueError, match='one sequence'):  # a recurrence has one key per query position
      fn(q, k, v, **_kwargs(name, q, k[:, :T], v[:, :T]))
    return
  kw = _kwargs(name, q, k, v)
  if name == 'dot_product_flash':
    kw['implementation'] = 'flash'
  plain, weights = (lambda q, k, v: fn(q, k, v, **kw)), (lambda q, k, v: fn(q, k, v, return_weights=True, **kw))
  for call_plain, call_weights in ((plain, weights), (jax.jit(plain), jax.jit(weights))):
    out = call_plain(q, k, v)
    assert out.shape == (2, T, 4, 5) and out.dtype == v.dtype
    np.testing.assert_array_equal(out, 0.0)
    out, w = call_weights(q, k, v)
    assert out.shape == (2, T, 4, 5) and w.shape == (2, 4, T, S) and w.dtype == jnp.float32
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize('name', ['flash', 'local', 'performer', 'linear', 'block_sparse'])
def test_empty_keys_have_finite_zero_gradients(name):
  fn = attention.get(name).fn
  q, k, v = jnp.ones((2, 6, 4, 8)), jnp.ones((2, 0, 2, 8)), jnp.ones((2, 0, 2, 5))
  kw = _kwargs(name, q, k, v)
  gq = jax.grad(lambda q: jnp.sum(fn(q, k, v, **kw) ** 2))(q)
  np.testing.assert_array_equal(gq, 0.0)
