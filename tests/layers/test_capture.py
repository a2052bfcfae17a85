"""layers.capture: weights are formed and sown only inside nnx.capture, and grouped by where they were sown."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention_research import layers
from attention_research.layers.capture import attention_maps, capture_intermediates


class TwoStacks(nnx.Module):
  """An encoder of self-attention blocks and a decoder of blocks with cross-attention, as in the models."""

  def __init__(self, rngs):
    self.encoder = nnx.List([layers.TransformerBlock(8, 2, 16, rngs=rngs) for _ in range(2)])
    self.decoder = nnx.List([layers.TransformerBlock(8, 2, 16, cross_attention={}, rngs=rngs)])

  def __call__(self, x, y):
    for block in self.encoder:
      x = block(x)
    for block in self.decoder:
      y = block(y, is_causal=True, memory=x)
    return y


def inputs():
  return jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8)), jax.random.normal(jax.random.PRNGKey(1), (2, 3, 8))


def test_layers_capture_only_inside_a_capture_and_return_their_output():
  layer = layers.MultiHeadAttention(2, 8, rngs=nnx.Rngs(0))
  x, _ = inputs()
  assert not layers.capturing(layer)
  plain = layer(x)  # no sow outside a capture (that would warn, an error in the tests)
  assert not nnx.state(layer, nnx.Intermediate)

  def call(m, x):
    assert layers.capturing(m) and not layers.capturing(m, nnx.Perturbation)
    return m(x)

  out, sown = nnx.capture(call, nnx.Intermediate)(layer, x)
  np.testing.assert_allclose(out, plain, atol=1e-6)
  np.testing.assert_allclose(sown['attention_weights'][0].sum(-1), 1.0, atol=1e-5)
  assert not layers.capturing(layer)


def test_paths_map_to_groups_and_layers():
  model = TwoStacks(nnx.Rngs(0))
  x, y = inputs()
  out, maps = layers.capture_attention(lambda m: m(x, y), model)
  np.testing.assert_allclose(out, model(x, y), atol=1e-6)
  assert {k: [w.shape for w in v] for k, v in maps.items()} == {
      'encoder': [(2, 2, 5, 5)] * 2, 'self': [(2, 2, 3, 3)], 'cross': [(2, 2, 3, 5)]}
  assert float(jnp.max(jnp.triu(maps['self'][0], k=1))) == 0.0  # the decoder's causal self-attention


def test_a_nested_capture_keeps_the_enclosing_one_whole():
  model = TwoStacks(nnx.Rngs(0))
  x, y = inputs()

  def outer(m):
    first = m.encoder[0](x)  # sown before the inner capture starts
    _, inner = capture_intermediates(lambda mm: mm(x, y), m)
    assert set(attention_maps(inner)) == {'encoder', 'self', 'cross'}
    return first

  _, sown = capture_intermediates(outer, model)
  per_module = {path: len(v.get_value()) for path, v in nnx.to_flat_state(sown)}
  assert per_module[('encoder', 0, 'self_attention', 'attention_weights')] == 2  # before and inside
  assert per_module[('decoder', 0, 'cross_attention', 'attention_weights')] == 1
