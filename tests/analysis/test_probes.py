"""analysis.probes and the perturbation hook of layers.MultiHeadAttention: gradients with respect to the weights
and runs with replaced weights, checked against the same computations written out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research import attention, layers
from attention_research.analysis import probes


class TwoStacks(nnx.Module):
  """Encoder of two self-attention blocks, decoder of one block with cross-attention."""

  def __init__(self, rngs, variant='dot_product'):
    attn = {'variant': variant}
    self.encoder = nnx.List([layers.TransformerBlock(8, 2, 16, attention=attn, rngs=rngs) for _ in range(2)])
    self.decoder = nnx.List([layers.TransformerBlock(8, 2, 16, attention=attn, cross_attention=attn, rngs=rngs)])

  def __call__(self, x, y):
    for block in self.encoder:
      x = block(x)
    for block in self.decoder:
      y = block(y, is_causal=True, memory=x)
    return y


def inputs():
  return jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8)), jax.random.normal(jax.random.PRNGKey(1), (2, 3, 8))


def _by_hand(layer, x, w_bnts):
  """A MultiHeadAttention's output computed from given weights: out(W v)."""
  v = layer.value(x).reshape(x.shape[:-1] + (layer.num_kv_heads, layer.head_dim))
  o = jnp.einsum('BNTS,BSNH->BTNH', w_bnts, v)
  return layer.out(o.reshape(o.shape[:-2] + (-1,)))


@pytest.mark.parametrize('variant', ['dot_product', 'linear'])
def test_gradients_with_respect_to_the_weights_match_autodiff_of_out_w_v(variant):
  layer = layers.MultiHeadAttention(2, 8, variant=variant, rngs=nnx.Rngs(0))
  x, _ = inputs()
  c = jax.random.normal(jax.random.PRNGKey(2), (2, 5, 8))
  value, maps, grads = probes.attention_gradients(lambda m: jnp.sum(m(x) * c), layer)
  w = maps['attention']
  assert value == pytest.approx(float(jnp.sum(layer(x) * c)), rel=1e-5)
  expected = jax.grad(lambda w: jnp.sum(_by_hand(layer, x, w) * c))(jnp.asarray(w))
  np.testing.assert_allclose(grads['attention'], expected, atol=1e-5)


def test_gradients_are_grouped_like_the_maps():
  model = TwoStacks(nnx.Rngs(0))
  x, y = inputs()
  _, maps, grads = probes.attention_gradients(lambda m: jnp.sum(m(x, y)[:, -1]), model)
  shapes = {k: [w.shape for w in v] for k, v in maps.items()}
  assert shapes == {'encoder': [(2, 2, 5, 5)] * 2, 'self': [(2, 2, 3, 3)], 'cross': [(2, 2, 3, 5)]}
  assert {k: [g.shape for g in v] for k, v in grads.items()} == shapes
  # One decoder layer: only the last query's weights reach the last position's output.
  assert float(np.abs(grads['self'][0][..., :-1, :]).max()) == 0.0
  assert float(np.abs(grads['self'][0][..., -1, :]).max()) > 0.0
  with pytest.raises(ValueError, match='scalar'):
    probes.attention_gradients(lambda m: m(x, y), model)


def test_replaced_weights_are_the_weights_the_model_uses():
  layer = layers.MultiHeadAttention(2, 8, rngs=nnx.Rngs(0))
  x, _ = inputs()
  uniform = lambda g, l, w: np.full_like(w, 1.0 / w.shape[-1])
  out, maps, used = probes.run_with_attention(lambda m: m(x), layer, replace=uniform)
  np.testing.assert_allclose(out, _by_hand(layer, x, jnp.full((2, 2, 5, 5), 0.2)), atol=1e-5)
  np.testing.assert_allclose(used['attention'], 0.2)
  assert not np.allclose(maps['attention'], 0.2)  # what the layer formed, before the replacement
  same, _, _ = probes.run_with_attention(lambda m: m(x), layer, replace=lambda g, l, w: None)
  np.testing.assert_allclose(same, layer(x), atol=1e-6)
  with pytest.raises(ValueError, match='shape'):
    probes.run_with_attention(lambda m: m(x), layer, replace=lambda g, l, w: w[..., :2])


@pytest.mark.parametrize('variant', ['dot_product', 'linear'])
def test_zeroing_a_head_equals_cutting_it_out_of_the_output_projection(variant):
  model = TwoStacks(nnx.Rngs(0), variant)
  x, y = inputs()
  fn = lambda m: m(x, y)
  out, _, used = probes.run_with_attention(fn, model, replace=probes.zero_heads({('encoder', 0, 1), ('cross', 0, 0)}))
  assert float(np.abs(used['encoder'][0][:, 1]).max()) == 0.0 and float(np.abs(used['encoder'][0][:, 0]).max()) > 0
  cut = nnx.clone(model)
  for attn, head in ((cut.encoder[0].self_attention, 1), (cut.decoder[0].cross_attention, 0)):
    H = attn.head_dim
    attn.out.kernel[...] = attn.out.kernel[...].at[head * H:(head + 1) * H].set(0.0)
  np.testing.assert_allclose(out, cut(x, y), atol=1e-5)
  assert not np.allclose(out, model(x, y), atol=1e-3)


def test_replacing_an_early_layer_reaches_the_later_layers_weights():
  model = TwoStacks(nnx.Rngs(0))
  x, y = inputs()
  uniform = lambda g, l, w: np.full_like(w, 1.0 / w.shape[-1]) if (g, l) == ('encoder', 0) else w[..., ::-1, :, :]
  _, maps, used = probes.run_with_attention(lambda m: m(x, y), model, replace=uniform)
  # Each later layer's replacement is the head-reversal of the weights it forms given the replaced layers before.
  np.testing.assert_allclose(used['encoder'][1], maps['encoder'][1][:, ::-1], atol=1e-6)
  np.testing.assert_allclose(used['cross'][0], maps['cross'][0][:, ::-1], atol=1e-6)


@pytest.mark.parametrize('variant', sorted(attention.VARIANTS))
def test_every_variant_outputs_its_weights_times_values(variant):
  # The hook's premise: out = W v for the exact or implied weights, with grouped-query heads too. Replacing W by
  # zeros then leaves nothing (the projections have no bias), and replacing nothing leaves the output.
  layer = layers.MultiHeadAttention(4, 8, num_kv_heads=2, variant=variant, max_length=8, rngs=nnx.Rngs(0),
                                    variant_options=attention.get(variant).example_options)
  x, _ = inputs()
  plain = layer(x)
  zero, _, _ = probes.run_with_attention(lambda m: m(x), layer, replace=lambda g, l, w: np.zeros_like(w))
  same, _, _ = probes.run_with_attention(lambda m: m(x), layer, replace=lambda g, l, w: None)
  scale = float(jnp.abs(plain).max())
  assert float(jnp.abs(zero).max()) <= 1e-5 * max(scale, 1.0)
  np.testing.assert_allclose(same, plain, atol=1e-5 * max(scale, 1.0))
