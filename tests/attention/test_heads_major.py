"""Attention over a head-major key/value cache ([..., K, S, H]) against dot_product on the usual layout: values,
weights and gradients with every option that reaches the scores; the registry hook; bad shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from attention_research.attention import _heads_major
from tests.attention.inputs import normal, qkv

TOL = dict(atol=1e-5, rtol=1e-5)


def heads_major(x):
  return jnp.swapaxes(x, -3, -2)


@pytest.mark.parametrize('T,N,K,normalizer', [(1, 8, 8, 'softmax'), (1, 8, 2, 'softmax'), (3, 6, 3, 'softmax'),
                                              (2, 4, 2, 'entmax15'), (1, 4, 4, 'sparsemax')])
def test_equals_dot_product_values_weights_and_gradients(T, N, K, normalizer):
  S = 19
  q, k, v = qkv(T, S, N=N, K=K, H=8, V=5, batch=(2, 1))
  cot = normal(9, q.shape[:-1] + (5,))
  mask = jnp.asarray(np.random.default_rng(3).random((2, 1, 1, T, S)) < 0.7).at[..., 0].set(True)
  options = dict(mask=mask, bias=normal(4, (N, T, S)), normalizer=normalizer, logit_soft_cap=5.0)
  if normalizer == 'softmax':
    options['sinks'] = normal(5, (N,))

  def loss(fn, q, k, v):
    out, w = fn(q, k, v)
    return jnp.sum(out * cot) + jnp.sum(w ** 2)

  ours = lambda q, k, v: _heads_major.attention(q, heads_major(k), heads_major(v), return_weights=True, **options)
  ref = lambda q, k, v: attention.dot_product(q, k, v, return_weights=True, **options)
  for a, b in zip(jax.tree.leaves(ours(q, k, v)), jax.tree.leaves(ref(q, k, v))):
    np.testing.assert_allclose(a, b, **TOL)
  g_ours = jax.grad(lambda *a: loss(ours, *a), (0, 1, 2))(q, k, v)
  g_ref = jax.grad(lambda *a: loss(ref, *a), (0, 1, 2))(q, k, v)
  for a, b in zip(g_ours, g_ref):
    np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize('name,T', [('dot_product', 1), ('flash', 1), ('local', 1), ('local', 3)])
def test_registry_hook_equals_the_plain_decoding_step(name, T):
  variant = attention.get(name)
  q, k, v = qkv(T, 17, N=4, K=4, H=8, V=8)
  seen = jnp.arange(17)[None, :] <= 9 + jnp.arange(T)[:, None]  # the layer's mask: keys written so far
  how = {'dot_product': {'implementation': 'flash'}, 'flash': {'block_k': 8},
         'local': {'window': (3, 0), 'block_size': 8}}[name]
  plain = variant.decode_step(variant.fn, q, k, v, index=9, mask=seen, **how)
  hook = variant.decode_heads_major(variant.fn, q, heads_major(k), heads_major(v), index=9, mask=seen, **how)
  np.testing.assert_allclose(hook, plain, **TOL)
  if name == 'local':  # the window reaches the step: keys more than 3 before a query change nothing
    far = k.at[:, :6].set(0.0), v.at[:, :6].set(0.0)
    moved = variant.decode_heads_major(variant.fn, q, *map(heads_major, far), index=9, mask=seen, **how)
    np.testing.assert_allclose(moved, hook, **TOL)


@pytest.mark.parametrize('index', [0, 2, 9, 14])  # the window's slice clamped at the start, inside, at the end
def test_local_hook_reads_only_the_window_and_equals_the_plain_step(index):
  variant = attention.get('local')
  T, L = 3, 17
  q, k, v = qkv(T, L, N=4, K=2, H=8, V=8)
  seen = jnp.arange(L)[None, :] <= index + jnp.arange(T)[:, None]
  how = dict(window=(4, 0), bias=normal(6, (4, T, L)))
  plain = variant.decode_step(variant.fn, q, k, v, index=index, mask=seen, **how)
  hook = jax.jit(lambda q, k, v, i: variant.decode_heads_major(variant.fn, q, k, v, index=i, mask=seen, **how))
  np.testing.assert_allclose(hook(q, heads_major(k), heads_major(v), index), plain, **TOL)
  out, w = variant.decode_heads_major(variant.fn, q, heads_major(k), heads_major(v), index=index, mask=seen,
                                      return_weights=True, **how)
  np.testing.assert_allclose(out, plain, **TOL)
  assert w.shape[-1] == L and float(jnp.max(w[..., :max(index - 4, 0)], initial=0.0)) == 0.0
  jaxpr = str(jax.make_jaxpr(hook)(q, heads_major(k), heads_major(v), index))
  assert 'dynamic_slice' in jaxpr and f'{T + 4},8' in jaxpr.replace(' ', '')  # only left + T keys are read


def test_bad_shapes_raise_a_clear_error():
  q, k, v = qkv(1, 7, N=4, K=2, H=8, V=8)
  with pytest.raises(ValueError, match='multiple of the number of key/value heads'):
    _heads_major.attention(q, k, v)  # [B, S, K, H] passed where [B, K, S, H] is expected: K reads as 7
  with pytest.raises(ValueError, match='same head size'):
    _heads_major.attention(q, heads_major(k)[..., :4], heads_major(v))
