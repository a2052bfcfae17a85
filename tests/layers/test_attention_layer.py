import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research import attention, layers

B, T, D = 2, 6, 32


def x_input(seed=0, length=T):
  return jax.random.normal(jax.random.PRNGKey(seed), (B, length, D))


def layer_for(variant, **kw):
  opts = attention.get(variant).example_options  # layer options among them are routed by the layer
  return layers.MultiHeadAttention(4, D, variant=variant, variant_options=opts, max_length=16, rngs=nnx.Rngs(0),
                                   **kw)


@pytest.mark.parametrize('variant', sorted(attention.VARIANTS))
def test_every_variant_runs_with_gradients(variant):
  layer = layer_for(variant, num_kv_heads=2)
  def loss(model, x):
    return jnp.mean(model(x) ** 2)
  value, grads = nnx.jit(nnx.value_and_grad(loss))(layer, x_input())
  assert np.isfinite(float(value))
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize('variant', [n for n, v in sorted(attention.VARIANTS.items()) if v.causal])
def test_cached_decoding_equals_full_causal_pass(variant):
  layer = layer_for(variant, num_kv_heads=2, use_rope=True)
  x = x_input()
  full = layer(x, is_causal=True)
  layer.init_cache(B, T)
  steps = [layer(x[:, t:t + 1], decode=True) for t in range(T)]
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=2e-4, rtol=2e-4)


def test_cross_attention_and_weights_are_returned_and_sown():
  layer = layers.MultiHeadAttention(4, D, kv_features=12, rngs=nnx.Rngs(0))
  memory = jax.random.normal(jax.random.PRNGKey(1), (B, 9, 12))
  out, sown = nnx.capture(layer, nnx.Intermediate)(x_input(), memory)
  w = sown['attention_weights'][0]
  assert out.shape == (B, T, D) and w.shape == (B, 4, T, 9)
  assert jax.tree.leaves(sown)[0].shape == (B, 4, T, 9)


def test_grouped_query_layer_equals_multi_head_layer_with_tied_kv_heads():
  gqa = layers.MultiHeadAttention(4, D, num_kv_heads=2, rngs=nnx.Rngs(0))
  mha = layers.MultiHeadAttention(4, D, num_kv_heads=4, rngs=nnx.Rngs(0))
  H = D // 4
  for name in ('key', 'value'):
    w = getattr(gqa, name).kernel[...].reshape(D, 2, H)
    getattr(mha, name).kernel[...] = jnp.repeat(w, 2, axis=1).reshape(D, 4 * H)
  mha.query.kernel[...] = gqa.query.kernel[...]
  mha.out.kernel[...] = gqa.out.kernel[...]
  np.testing.assert_allclose(gqa(x_input()), mha(x_input()), atol=1e-5)


def test_dropout_is_active_only_when_not_deterministic():
  layer = layers.MultiHeadAttention(4, D, dropout_rate=0.5, rngs=nnx.Rngs(0, dropout=1))
  x = x_input()
  np.testing.assert_allclose(layer(x, deterministic=True), layer(x, deterministic=True))
  assert not np.allclose(layer(x, deterministic=False), layer(x, deterministic=True))


def test_performer_features_are_state_not_parameters_and_can_be_redrawn():
  layer = layer_for('performer')
  assert not any('features' in str(p) for p in jax.tree_util.tree_flatten_with_path(nnx.state(layer, nnx.Param))[0])
  before = layer.features[...]
  layer.redraw_features(jax.random.PRNGKey(5))
  assert not np.allclose(before, layer.features[...])


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_heads=5), 'divisible'),
    (dict(num_kv_heads=3), 'multiple'),
    (dict(variant='sparse_transformer'), 'known variants'),
    (dict(variant='linformer'), 'max_length'),
])
def test_bad_configuration_raises(kwargs, match):
  args = dict(num_heads=4, in_features=D)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    layers.MultiHeadAttention(args.pop('num_heads'), args.pop('in_features'), rngs=nnx.Rngs(0), **args)


def test_decode_without_cache_raises():
  with pytest.raises(ValueError, match='init_cache'):
    layers.MultiHeadAttention(4, D, rngs=nnx.Rngs(0))(x_input(), decode=True)


def test_layer_source_names_no_variant():
  source = inspect.getsource(inspect.getmodule(layers.MultiHeadAttention))
  named = [n for n in attention.VARIANTS if re.search(rf'\b{n}\b', source)]
  assert not named, f'layers/attention.py names variants {named}; it must ask the registry hooks instead'


def test_layer_options_route_to_the_variant_and_unknown_ones_raise():
  as_kwarg = layers.MultiHeadAttention(4, D, variant='linformer', max_length=16, rank=3, rngs=nnx.Rngs(0))
  in_options = layers.MultiHeadAttention(4, D, variant='linformer', max_length=16, variant_options={'rank': 3},
                                         rngs=nnx.Rngs(0))
  assert as_kwarg.e.shape == in_options.e.shape == (16, 3) and 'rank' not in in_options.variant_options
  np.testing.assert_allclose(as_kwarg(x_input()), in_options(x_input()))
  with pytest.raises(ValueError, match='rank'):
    layers.MultiHeadAttention(4, D, rank=3, rngs=nnx.Rngs(0))


def _ungated_and(**kw):
  return layers.MultiHeadAttention(4, D, rngs=nnx.Rngs(0)), layers.MultiHeadAttention(4, D, rngs=nnx.Rngs(0), **kw)


@pytest.mark.parametrize('gate, width', [('headwise', 4), ('elementwise', D)])
def test_output_gate_multiplies_the_attention_output_by_a_sigmoid_of_the_query_input(gate, width):
  plain, gated = _ungated_and(output_gate=gate)
  assert gated.gate.kernel.shape == (D, width)  # [D, N] or [D, N * H]
  x = x_input()
  assert not np.allclose(gated(x), plain(x), atol=1e-3)
  gated.gate.kernel[...] = jnp.zeros_like(gated.gate.kernel[...])  # sigmoid(0) = 1/2 on every head and feature
  np.testing.assert_allclose(gated(x), 0.5 * plain(x), atol=1e-6)


def test_qk_norm_has_a_scale_per_head_feature_and_ignores_the_projection_scale():
  plain, normed = _ungated_and(qk_norm=True)
  assert normed.query_norm.scale.shape == normed.key_norm.scale.shape == (D // 4,)
  x = x_input()
  assert not np.allclose(normed(x), plain(x), atol=1e-3)
  before = normed(x)
  for proj in (normed.query, normed.key):  # RMS normalisation undoes any scale of the projections
    proj.kernel[...] = 3.0 * proj.kernel[...]
  np.testing.assert_allclose(normed(x), before, atol=1e-5)


def test_sinks_are_a_logit_per_head_that_takes_attention_mass():
  plain, sunk = _ungated_and(sinks=True)
  assert sunk.sink_logits.shape == (4,)
  x = x_input()
  assert not np.allclose(sunk(x, is_causal=True), plain(x, is_causal=True), atol=1e-3)
  sunk.sink_logits[...] = jnp.full((4,), -1e30)  # a sink of probability zero: plain attention
  np.testing.assert_allclose(sunk(x, is_causal=True), plain(x, is_causal=True), atol=1e-6)
  grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(layers.MultiHeadAttention(4, D, sinks=True, rngs=nnx.Rngs(0)))
  assert float(jnp.abs(grads['sink_logits'][...]).max()) > 0


def test_every_option_together_decodes_like_the_full_causal_pass():
  layer = layers.MultiHeadAttention(4, D, num_kv_heads=2, use_rope=True, output_gate='headwise', qk_norm=True,
                                    sinks=True, rngs=nnx.Rngs(0))
  layer.sink_logits[...] = jnp.arange(4.0)
  x = x_input()
  full = layer(x, is_causal=True)
  layer.init_cache(B, T)
  steps = [layer(x[:, t:t + 1], decode=True) for t in range(T)]
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize('kwargs, match', [
    (dict(output_gate='channelwise'), 'output_gate'),
    (dict(variant='linear', sinks=True), 'sinks'),
])
def test_bad_refinement_options_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    layers.MultiHeadAttention(4, D, rngs=nnx.Rngs(0), **kwargs)


@pytest.mark.parametrize('variant', [n for n, v in sorted(attention.VARIANTS.items()) if v.decode_recurrent])
def test_recurrent_decoding_carries_a_constant_state_not_a_growing_cache(variant):
  layer = layer_for(variant, num_kv_heads=2)
  layer.init_cache(B, 1000)
  assert layer.cached_key is None and layer.decode_state.shape == (B, 2, D // 4, D // 4)
  x = x_input()
  for t in range(2):
    layer(x[:, t:t + 1], decode=True)
  assert int(layer.cache_index[...]) == 2 and layer.decode_state.shape == (B, 2, D // 4, D // 4)
  # Asked for full attention, a causal-only variant still runs causally: the first output ignores later inputs.
  np.testing.assert_allclose(layer(x)[:, :1], layer(x.at[:, 1:].set(0.0))[:, :1], atol=1e-6)
