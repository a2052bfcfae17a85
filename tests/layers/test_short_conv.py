"""The short causal convolution on q, k, v: its equation, causality, and cached decoding equal to the full pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research import attention, layers
from attention_research.layers.short_conv import ShortConvolution

B, T, D = 2, 7, 16


def x_input(seed=0, length=T):
  return jax.random.normal(jax.random.PRNGKey(seed), (B, length, D))


def test_convolution_is_the_depthwise_causal_sum_then_silu():
  conv = ShortConvolution(D, 3, rngs=nnx.Rngs(0))
  x = np.asarray(x_input())
  w = np.asarray(conv.kernel[...])
  padded = np.concatenate([np.zeros((B, 2, D)), x], axis=1)
  z = sum(w[i] * padded[:, i:i + T] for i in range(3))  # y_t = sum_i w_i x_{t - 2 + i}
  y, cache = conv(jnp.asarray(x))
  np.testing.assert_allclose(y, z / (1 + np.exp(-z)), atol=1e-6)
  np.testing.assert_array_equal(cache, x[:, -2:])


def test_convolution_in_pieces_with_the_cache_equals_one_pass():
  conv = ShortConvolution(D, 4, rngs=nnx.Rngs(1))
  x = x_input(1)
  full, _ = conv(x)
  a, cache = conv(x[:, :2])  # shorter than the kernel: the cache keeps earlier zeros
  b, cache = conv(x[:, 2:3], cache)
  c, _ = conv(x[:, 3:], cache)
  np.testing.assert_allclose(jnp.concatenate([a, b, c], axis=1), full, atol=1e-6)


def layer_for(variant, **kw):
  opts = attention.get(variant).example_options
  return layers.MultiHeadAttention(4, D, num_kv_heads=2, variant=variant, variant_options=opts, max_length=16,
                                   short_conv=4, rngs=nnx.Rngs(0), **kw)


@pytest.mark.parametrize('variant', ['dot_product', 'gated_delta', 'gla'])
def test_layer_output_has_zero_gradient_from_future_inputs(variant):
  layer = layer_for(variant)
  t = 3
  g = jax.grad(lambda x: jnp.sum(layer(x, is_causal=True)[:, t]))(x_input(2))
  assert float(jnp.max(jnp.abs(g[:, t + 1:]))) == 0.0 and float(jnp.max(jnp.abs(g[:, :t + 1]))) > 0.0


@pytest.mark.parametrize('variant', ['dot_product', 'gated_delta', 'gla'])
def test_layer_decodes_step_by_step_like_the_full_pass(variant):
  layer = layer_for(variant, use_rope=True)
  x = x_input(3)
  full = layer(x, is_causal=True)
  layer.init_cache(B, T)
  if attention.get(variant).decode_recurrent:
    assert layer.cached_key is None and layer.decode_state is not None  # the O(1) state, not a key/value cache
  assert layer.conv_cache.shape == (B, 3, (4 + 2 * 2) * (D // 4))
  steps = [layer(x[:, :2], decode=True)] + [layer(x[:, t:t + 1], decode=True) for t in range(2, T)]
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=2e-5, rtol=2e-5)


def test_layer_convolution_changes_the_output_and_is_trained():
  plain = layers.MultiHeadAttention(4, D, rngs=nnx.Rngs(0))
  conv = layers.MultiHeadAttention(4, D, short_conv=2, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(conv.query.kernel[...], plain.query.kernel[...])  # made after the others
  x = x_input(4)
  assert not np.allclose(conv(x, is_causal=True), plain(x, is_causal=True), atol=1e-3)
  grads = nnx.grad(lambda m: jnp.sum(m(x, is_causal=True) ** 2))(conv)
  assert float(jnp.abs(grads['short_conv']['kernel'][...]).max()) > 0


@pytest.mark.parametrize('kernel_size', [-1, 2.0, True])
def test_bad_kernel_size_raises(kernel_size):
  with pytest.raises(ValueError, match='short_conv'):
    layers.MultiHeadAttention(4, D, short_conv=kernel_size, rngs=nnx.Rngs(0))


def test_cross_attention_and_decoding_without_cache_raise():
  layer = layers.MultiHeadAttention(4, D, short_conv=3, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='self-attention only'):
    layer(x_input(), x_input(5))
  with pytest.raises(ValueError, match='init_cache'):
    layer(x_input()[:, :1], decode=True)
