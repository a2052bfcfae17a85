"""linear: equals its quadratic form and an explicit recurrence, causal in linear time, masks, GQA, jit/vmap."""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from tests.attention import inputs
from tests.attention.inputs import key_mask, out_and_grads

lin = importlib.import_module('attention_research.attention.linear')

# Compiled once per shape: much faster than op-by-op dispatch on CPU.
_STATIC = ('is_causal', 'return_weights', 'feature_map', 'eps', 'scale', 'chunk_size')
linear = jax.jit(lin.linear, static_argnames=_STATIC)


def _qkv(T=12, S=12, **kw):
  return inputs.qkv(T, S, **kw)


def _bernoulli(seed, p, shape):
  return jnp.asarray(np.random.default_rng(seed).random(shape) < p)


@pytest.mark.parametrize('T,S', [(13, 13), (7, 19), (19, 7)])
@pytest.mark.parametrize('is_causal', [False, True])
def test_equals_quadratic_form_values_and_grads(T, S, is_causal):
  q, k, v = _qkv(T, S)
  kw = dict(mask=key_mask(S), is_causal=is_causal)
  out, grads = out_and_grads(functools.partial(lin.linear, chunk_size=4), q, k, v, **kw)
  want, want_grads = out_and_grads(lin.quadratic, q, k, v, **kw)
  np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-5)
  for a, b in zip(grads, want_grads):
    np.testing.assert_allclose(a, b, atol=5e-5, rtol=1e-4)


def test_causal_equals_explicit_recurrence():
  """The RNN form of the paper, in float64 numpy: S_t = S_{t-1} + phi(k_t) v_t^T, z_t = z_{t-1} + phi(k_t)."""
  q, k, v = _qkv(T=10, S=10, N=2, K=2, batch=(1,))
  phi = lambda x: np.where(x > 0, x + 1.0, np.exp(x))
  fq, fk, vv = phi(np.asarray(q, np.float64)[0]), phi(np.asarray(k, np.float64)[0]), np.asarray(v, np.float64)[0]
  want = np.zeros((10, 2, vv.shape[-1]))
  for n in range(2):
    state, z = np.zeros((fq.shape[-1], vv.shape[-1])), np.zeros(fq.shape[-1])
    for t in range(10):
      state += np.outer(fk[t, n], vv[t, n])
      z += fk[t, n]
      want[t, n] = fq[t, n] @ state / (fq[t, n] @ z + 1e-6)
  np.testing.assert_allclose(linear(q, k, v, is_causal=True, chunk_size=3)[0], want, atol=1e-5, rtol=1e-5)


def test_chunk_size_does_not_change_the_result():
  q, k, v = _qkv(T=33, S=33)
  outs = [jax.jit(functools.partial(lin.linear, is_causal=True, chunk_size=c))(q, k, v) for c in (1, 5, 64)]
  for o in outs[1:]:
    np.testing.assert_allclose(o, outs[0], atol=2e-5, rtol=1e-5)


def test_causality_zero_gradients_from_the_future():
  q, k, v = _qkv(T=16, S=16, batch=(1,))
  t = 6
  gk, gv = jax.grad(lambda k, v: jnp.sum(linear(q, k, v, is_causal=True, chunk_size=4)[0, t]),
                    argnums=(0, 1))(k, v)
  assert np.all(np.asarray(gk)[0, t + 1:] == 0) and np.all(np.asarray(gv)[0, t + 1:] == 0)
  assert np.any(np.asarray(gk)[0, :t + 1] != 0)


@pytest.mark.parametrize('is_causal', [False, True])
def test_weights_reconstruct_output(is_causal):
  q, k, v = _qkv(T=9, S=11)
  out, w = attention.linear(q, k, v, mask=key_mask(11), is_causal=is_causal, return_weights=True)
  assert w.shape == (2, 4, 9, 11)
  np.testing.assert_allclose(out, jnp.einsum('BNTS,BSNV->BTNV', w, jnp.repeat(v, 2, axis=2)), atol=2e-5, rtol=1e-5)
  np.testing.assert_allclose(jnp.sum(w, -1), 1.0, atol=1e-4)
  assert np.all(np.asarray(w)[np.broadcast_to(~np.asarray(key_mask(11)), w.shape)] == 0)
  if is_causal:
    assert np.all(np.asarray(w)[:, :, ~np.asarray(attention.masks.causal(9, 11))] == 0)


def test_grouped_query_equals_repeated_kv_heads():
  q, k, v = _qkv(N=6, K=2)
  m = key_mask(12)
  for c in (False, True):
    np.testing.assert_allclose(linear(q, k, v, mask=m, is_causal=c),
                               linear(q, jnp.repeat(k, 3, 2), jnp.repeat(v, 3, 2), mask=m, is_causal=c),
                               atol=1e-5, rtol=1e-5)


def test_per_head_key_mask_with_grouped_query():
  q, k, v = _qkv(N=4, K=2)
  m = _bernoulli(3, 0.6, (2, 4, 1, 12))
  np.testing.assert_allclose(linear(q, k, v, mask=m, is_causal=True),
                             linear(q, jnp.repeat(k, 2, 2), jnp.repeat(v, 2, 2), mask=m, is_causal=True),
                             atol=1e-5, rtol=1e-5)


def test_masked_keys_contribute_nothing():
  q, k, v = _qkv()
  m = key_mask(12)
  junk = jnp.where(m[:, 0, 0, :, None, None], 0.0, 1e3)
  np.testing.assert_allclose(linear(q, k + junk, v - junk, mask=m), linear(q, k, v, mask=m), atol=1e-5)


@pytest.mark.parametrize('is_causal', [False, True])
def test_fully_masked_rows_zero_with_finite_grads(is_causal):
  q, k, v = _qkv()
  m = jnp.ones((2, 1, 1, 12), bool).at[1].set(False)
  out = linear(q, k, v, mask=m, is_causal=is_causal)
  assert np.all(np.asarray(out[1]) == 0) and np.all(np.isfinite(out))
  for g in out_and_grads(lin.linear, q, k, v, mask=m, is_causal=is_causal)[1]:
    assert np.all(np.isfinite(g))
  _, w = linear(q, k, v, mask=m, is_causal=is_causal, return_weights=True)
  assert np.all(np.asarray(w[1]) == 0)


def test_jit_and_vmap_equal_batched_call():
  q, k, v = _qkv(batch=(3, 2))
  m = _bernoulli(4, 0.7, (3, 2, 1, 1, 12)).at[..., 0].set(True)
  want = linear(q, k, v, mask=m, is_causal=True)
  f = jax.jit(lambda q, k, v, m: attention.linear(q, k, v, mask=m, is_causal=True))
  np.testing.assert_allclose(f(q, k, v, m), want, atol=1e-6)
  np.testing.assert_allclose(jax.vmap(f)(q, k, v, m), want, atol=1e-5, rtol=1e-5)


def test_scale_multiplies_q_before_the_feature_map():
  q, k, v = _qkv()
  np.testing.assert_allclose(linear(q, k, v, scale=0.5), linear(0.5 * q, k, v), atol=1e-6)


def test_bf16_inputs():
  q, k, v = _qkv()
  out = linear(*(x.astype(jnp.bfloat16) for x in (q, k, v)), is_causal=True)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), linear(q, k, v, is_causal=True), atol=5e-2, rtol=5e-2)


def test_no_quadratic_intermediate_when_causal():
  T = 512
  q, k, v = _qkv(T=T, S=T, N=1, K=1, batch=(1,))
  jaxpr = jax.make_jaxpr(lambda *x: linear(*x, is_causal=True, chunk_size=64))(q, k, v)
  sizes = [np.prod(var.aval.shape) for eqn in jaxpr.jaxpr.eqns for var in eqn.outvars]
  assert max(sizes) < T * T // 4


def test_bad_inputs_raise():
  q, k, v = _qkv()
  with pytest.raises(ValueError, match='key-padding'):
    lin.linear(q, k, v, mask=jnp.ones((12, 12), bool))
  with pytest.raises(ValueError, match='feature_map'):
    lin.linear(q, k, v, feature_map='softplus')
  with pytest.raises(ValueError, match='eps'):
    lin.linear(q, k, v, eps=0.0)
  with pytest.raises(ValueError, match='chunk_size'):
    lin.linear(q, k, v, chunk_size=0)
  with pytest.raises(ValueError, match='multiple'):
    lin.linear(q[..., :3, :], k, v)
  with pytest.raises(ValueError, match='boolean'):
    lin.linear(q, k, v, mask=jnp.ones((12,)))
