"""Spatial transformer: the bilinear sampler against scipy's, the identity, gradients into the localisation net."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research.layers import spatial_transformer as st


def _reference(image_BHWC, y_Bhw, x_Bhw):
  sample = lambda im_HW, y, x: jax.scipy.ndimage.map_coordinates(im_HW, [y, x], order=1, mode='constant', cval=0.0)
  per_channel = jax.vmap(sample, in_axes=(2, None, None), out_axes=-1)
  return jax.vmap(per_channel)(image_BHWC, y_Bhw, x_Bhw)


def test_bilinear_sampler_equals_map_coordinates_in_values_and_gradients():
  k = jax.random.split(jax.random.key(0), 4)
  image = jax.random.normal(k[0], (2, 5, 7, 3))
  # points inside, on the border and outside the image (partly outside mixes zeros in)
  y = jax.random.uniform(k[1], (2, 4, 6), minval=-2.0, maxval=6.0)
  x = jax.random.uniform(k[2], (2, 4, 6), minval=-2.0, maxval=8.0)
  probe = jax.random.normal(k[3], (2, 4, 6, 3))

  @jax.jit
  def values_and_grads(image, y, x):
    out = []
    for f in (st.bilinear_sample, _reference):
      loss = lambda im, y, x, f=f: jnp.sum(f(im, y, x) * probe)
      out.append((f(image, y, x), jax.grad(loss, argnums=(0, 1, 2))(image, y, x)))
    return out

  (got, got_grads), (want, want_grads) = values_and_grads(image, y, x)
  np.testing.assert_allclose(got, want, atol=1e-5)
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(g, w, atol=1e-4)


def test_identity_transform_leaves_the_image_unchanged():
  image = jax.random.uniform(jax.random.key(1), (2, 6, 10, 2))
  identity = jnp.broadcast_to(jnp.asarray(st.IDENTITY).reshape(1, 2, 3), (2, 2, 3))
  layer = st.SpatialTransformer((6, 10), 2, features=4, hidden=8, rngs=nnx.Rngs(0))  # initialised to the identity
  warped, theta, out = nnx.jit(lambda layer, x: (st.warp(x, identity), layer.theta(x), layer(x)))(layer, image)
  np.testing.assert_allclose(warped, image, atol=1e-5)
  np.testing.assert_allclose(theta, identity, atol=0)
  np.testing.assert_allclose(out, image, atol=1e-5)


def test_a_shift_moves_the_image_by_whole_pixels():
  image = jax.random.uniform(jax.random.key(2), (1, 4, 8, 1))
  shift = jnp.asarray([[[1.0, 0.0, 2.0 / 8], [0.0, 1.0, 0.0]]])  # one pixel to the right in x
  out = jax.jit(st.warp)(image, shift)
  np.testing.assert_allclose(out[:, :, :-1], image[:, :, 1:], atol=1e-5)
  np.testing.assert_allclose(out[:, :, -1], 0.0)


def test_gradients_reach_every_parameter_of_the_localisation_net():
  layer = st.SpatialTransformer((8, 8), 1, features=4, hidden=8, scale=0.5, rngs=nnx.Rngs(0))
  image = jax.random.uniform(jax.random.key(3), (3, 8, 8, 1))
  target = jnp.roll(image, 1, axis=2)

  def loss(layer):
    return jnp.mean((layer(image) - target) ** 2)

  grad_fn = nnx.jit(nnx.grad(loss))
  grads = grad_fn(layer)
  head = grads.localisation.head
  # With zero head weights at the identity only the head sees a gradient; it is not zero, so training moves theta.
  assert float(jnp.abs(head.kernel[...]).max()) > 0 and float(jnp.abs(head.bias[...]).max()) > 0
  layer.localisation.head.kernel[...] = 0.1 * jax.random.normal(jax.random.key(4), (8, 6))
  grads = grad_fn(layer)
  for path, g in jax.tree_util.tree_leaves_with_path(nnx.state(grads, nnx.Param)):
    assert float(jnp.abs(g).max()) > 0, jax.tree_util.keystr(path)


def test_a_bounded_transform_stays_within_one_of_the_identity():
  net = st.LocalisationNet((8, 8), 1, features=4, hidden=8, bounded=True, rngs=nnx.Rngs(0))
  net.head.bias[...] = jnp.asarray([9.0, -9.0, 9.0, -9.0, 9.0, -9.0])  # a head gone far off
  theta = nnx.jit(lambda net, x: net(x))(net, jnp.ones((2, 8, 8, 1)))
  change = np.asarray(theta).reshape(2, 6) - np.asarray(st.IDENTITY)
  assert np.all(np.abs(change) <= 1.0) and np.all(np.abs(change) > 0.99)


def test_bad_input_raises_value_error():
  image = jnp.zeros((2, 4, 4, 1))
  with pytest.raises(ValueError, match=r'theta \[B, 2, 3\]'):
    st.warp(image, jnp.zeros((2, 3, 3)))
  with pytest.raises(ValueError, match='batch size'):
    st.warp(image, jnp.zeros((3, 2, 3)))
  with pytest.raises(ValueError, match=r'images \[B, H, W, C\]'):
    st.warp(jnp.zeros((4, 4, 1)), jnp.zeros((1, 2, 3)))
  with pytest.raises(ValueError, match='coordinates'):
    st.bilinear_sample(image, jnp.zeros((2, 3, 3)), jnp.zeros((2, 3, 2)))
  layer = st.SpatialTransformer((4, 4), 1, features=2, hidden=4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r'\[B, 4, 4, C\]'):
    layer(jnp.zeros((2, 5, 4, 1)))
