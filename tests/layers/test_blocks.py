"""TransformerBlock and MLP options, checked against plain jax.numpy transcriptions of the equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research import layers

B, T, D, N, F = 2, 5, 16, 4, 24
H = D // N


def _layer_norm(x, scale, bias, eps):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / jnp.sqrt(var + eps) * scale + bias


def _bert_layer(x, w, key_mask, eps=1e-12):
  """One BERT encoder layer, written per head so the columns each head owns are explicit."""
  q, k, v = (x @ w[n + '_w'] + w[n + '_b'] for n in ('q', 'k', 'v'))  # [B, T, N*H]
  heads = []
  for n in range(N):
    cols = slice(n * H, (n + 1) * H)  # head n owns columns n*H:(n+1)*H of the q/k/v kernels
    scores = jnp.einsum('bth,bsh->bts', q[..., cols], k[..., cols]) / np.sqrt(H)
    scores = jnp.where(key_mask[:, None, :], scores, -1e9)
    heads.append(jnp.einsum('bts,bsh->bth', jax.nn.softmax(scores, axis=-1), v[..., cols]))
  attended = jnp.concatenate(heads, axis=-1) @ w['o_w'] + w['o_b']  # rows n*H:(n+1)*H of o_w read head n
  h = _layer_norm(x + attended, w['ln1_s'], w['ln1_b'], eps)
  inter = jax.nn.gelu(h @ w['i_w'] + w['i_b'], approximate=False)
  return _layer_norm(h + inter @ w['out_w'] + w['out_b'], w['ln2_s'], w['ln2_b'], eps)


def _bert_weights(seed=0):
  rng = np.random.default_rng(seed)
  shapes = {'q_w': (D, N * H), 'k_w': (D, N * H), 'v_w': (D, N * H), 'o_w': (N * H, D), 'i_w': (D, F),
            'out_w': (F, D), 'q_b': (N * H,), 'k_b': (N * H,), 'v_b': (N * H,), 'o_b': (D,), 'i_b': (F,),
            'out_b': (D,)}
  w = {name: rng.normal(0.0, 0.5, shape).astype(np.float32) for name, shape in shapes.items()}
  for ln in ('ln1', 'ln2'):
    w[ln + '_s'] = rng.uniform(0.5, 1.5, D).astype(np.float32)
    w[ln + '_b'] = rng.normal(0.0, 0.1, D).astype(np.float32)
  return w


def _load(block, w):
  """Numpy arrays into the NNX block: nnx.Linear kernels are [in, out], so no transposes."""
  att = block.self_attention
  for name, linear in (('q', att.query), ('k', att.key), ('v', att.value), ('o', att.out),
                       ('i', block.mlp.up), ('out', block.mlp.down)):
    linear.kernel[...] = jnp.asarray(w[name + '_w'])
    linear.bias[...] = jnp.asarray(w[name + '_b'])
  for name, ln in (('ln1', block.ln_self), ('ln2', block.ln_mlp)):
    ln.scale[...] = jnp.asarray(w[name + '_s'])
    ln.bias[...] = jnp.asarray(w[name + '_b'])


def test_post_ln_block_equals_bert_layer_equations():
  block = layers.TransformerBlock(D, N, F, norm='post', norm_epsilon=1e-12, activation='gelu', use_bias=True,
                                  rngs=nnx.Rngs(0))
  att = block.self_attention
  assert (att.query.kernel.shape, att.key.kernel.shape, att.out.kernel.shape) == ((D, N * H), (D, N * H),
                                                                                  (N * H, D))
  assert block.ln_self.epsilon == block.ln_mlp.epsilon == 1e-12
  w = _bert_weights()
  _load(block, w)
  x = jax.random.normal(jax.random.PRNGKey(1), (B, T, D))
  key_mask = jnp.arange(T)[None, :] < jnp.array([[T], [T - 2]])  # the second sequence is padded
  got = block(x, mask=key_mask[:, None, None, :])
  np.testing.assert_allclose(got, _bert_layer(x, w, key_mask), atol=2e-5, rtol=2e-5)
  # The same weights in a pre-LN, tanh-GELU block give another function, so the comparison above can fail.
  pre_ln = layers.TransformerBlock(D, N, F, use_bias=True, rngs=nnx.Rngs(0))
  _load(pre_ln, w)
  assert not np.allclose(pre_ln(x, mask=key_mask[:, None, None, :]), _bert_layer(x, w, key_mask), atol=1e-3)


def test_head_order_swap_in_kernel_columns_swaps_heads():
  """Permuting q/k/v column blocks and o row blocks by whole heads leaves the layer unchanged; within a head not."""
  layer = layers.MultiHeadAttention(N, D, use_bias=True, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(2), (B, T, D))
  before = layer(x)
  heads = np.arange(N * H).reshape(N, H)
  by_head = heads[::-1].reshape(-1)  # whole heads reversed
  for lin in (layer.query, layer.key, layer.value):
    lin.kernel[...] = lin.kernel[...][:, by_head]
    lin.bias[...] = lin.bias[...][by_head]
  layer.out.kernel[...] = layer.out.kernel[...][by_head, :]
  np.testing.assert_allclose(layer(x), before, atol=1e-5, rtol=1e-5)
  within = heads[:, ::-1].reshape(-1)  # each head's features reversed in q only: scores change
  layer.query.kernel[...] = layer.query.kernel[...][:, within]
  assert not np.allclose(layer(x), before, atol=1e-3)


def _reference_mlp(mlp, x, fn, gated):
  up = x @ mlp.up.kernel[...] + mlp.up.bias[...]
  h = fn(x @ mlp.gate.kernel[...] + mlp.gate.bias[...]) * up if gated else fn(up)
  return h @ mlp.down.kernel[...] + mlp.down.bias[...]


@pytest.mark.parametrize('activation, fn, gated', [
    ('gelu', lambda z: jax.scipy.special.erf(z / np.sqrt(2)) * z / 2 + z / 2, False),
    ('gelu_tanh', lambda z: 0.5 * z * (1 + jnp.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3))), False),
    ('relu', lambda z: jnp.maximum(z, 0), False),
    ('silu', lambda z: z / (1 + jnp.exp(-z)), False),
    ('swiglu', lambda z: z / (1 + jnp.exp(-z)), True),
    ('geglu', lambda z: jax.scipy.special.erf(z / np.sqrt(2)) * z / 2 + z / 2, True),
])
def test_mlp_activation_matches_its_formula(activation, fn, gated):
  mlp = layers.MLP(D, F, activation=activation, rngs=nnx.Rngs(0))
  x = 2.0 * jax.random.normal(jax.random.PRNGKey(3), (B, T, D))
  np.testing.assert_allclose(mlp(x), _reference_mlp(mlp, x, fn, gated), atol=1e-5, rtol=1e-5)


def test_exact_and_tanh_gelu_differ():
  x = 2.0 * jax.random.normal(jax.random.PRNGKey(3), (B, T, D))
  exact, approx = (layers.MLP(D, F, activation=a, rngs=nnx.Rngs(0)) for a in ('gelu', 'gelu_tanh'))
  assert float(jnp.max(jnp.abs(exact(x) - approx(x)))) > 1e-4


def test_swiglu_has_two_up_projections_and_bias_option():
  mlp = layers.MLP(D, F, activation='swiglu', use_bias=False, rngs=nnx.Rngs(0))
  assert (mlp.up.kernel.shape, mlp.gate.kernel.shape, mlp.down.kernel.shape) == ((D, F), (D, F), (F, D))
  assert mlp.up.bias is None and mlp.gate.bias is None and mlp.down.bias is None
  params = nnx.state(mlp, nnx.Param)
  assert sum(p.size for p in jax.tree.leaves(params)) == 3 * D * F
  assert not hasattr(layers.MLP(D, F, rngs=nnx.Rngs(0)), 'gate')


def test_defaults_are_pre_ln_tanh_gelu_with_unbiased_attention():
  block = layers.TransformerBlock(D, N, F, rngs=nnx.Rngs(0))
  assert block.ln_self.epsilon == 1e-6 and block.mlp.activation == 'gelu_tanh'
  assert block.self_attention.query.bias is None and block.mlp.up.bias is not None
  x = jax.random.normal(jax.random.PRNGKey(4), (B, T, D))
  h = x + block.self_attention(block.ln_self(x))
  np.testing.assert_allclose(block(x), h + block.mlp(block.ln_mlp(h)), atol=1e-6)


def test_post_ln_cross_attention_block_and_bias_override():
  block = layers.TransformerBlock(D, N, F, cross_attention={'use_bias': False}, norm='post', use_bias=True,
                                  rngs=nnx.Rngs(0))
  assert block.self_attention.query.bias is not None and block.cross_attention.query.bias is None
  x, memory = (jax.random.normal(jax.random.PRNGKey(s), (B, T, D)) for s in (5, 6))
  h = block.ln_self(x + block.self_attention(x))
  h = block.ln_cross(h + block.cross_attention(h, memory))
  np.testing.assert_allclose(block(x, memory=memory), block.ln_mlp(h + block.mlp(h)), atol=1e-5)


@pytest.mark.parametrize('kwargs, match', [({'norm': 'sandwich'}, 'norm='), ({'activation': 'gelu_new'},
                                                                              'activation=')])
def test_bad_block_options_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    layers.TransformerBlock(D, N, F, rngs=nnx.Rngs(0), **kwargs)
