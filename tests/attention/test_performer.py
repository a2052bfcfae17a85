"""performer (FAVOR+): converges to softmax attention, equals its own quadratic form and a float64 estimate."""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from tests.attention import inputs
from tests.attention.inputs import key_mask, out_and_grads

perf = importlib.import_module('attention_research.attention.performer')

_STATIC = ('is_causal', 'return_weights', 'num_features', 'scale', 'chunk_size')
performer = jax.jit(perf.performer, static_argnames=_STATIC)
dot_product = jax.jit(attention.dot_product, static_argnames=('is_causal',))
draw_features = jax.jit(perf.draw_features, static_argnums=(1, 2))


def _qkv(T=12, S=12, **kw):
  return inputs.qkv(T, S, **kw)


@pytest.mark.parametrize('is_causal', [False, True])
def test_error_falls_as_num_features_grows(is_causal):
  q, k, v = _qkv(T=16, S=16, H=8, std=0.5)
  m = key_mask(16)
  exact = dot_product(q, k, v, mask=m, is_causal=is_causal)
  errors = []
  for num_features in (4, 64, 1024):
    errs = [jnp.mean(jnp.abs(performer(q, k, v, mask=m, is_causal=is_causal,
                                       features=draw_features(jax.random.PRNGKey(seed), num_features, 8)) - exact))
            for seed in range(3)]
    errors.append(float(np.mean(errs)))
  assert errors[0] > 2 * errors[1] > 4 * errors[2], errors
  assert errors[2] < 0.02, errors


@pytest.mark.parametrize('T,S,is_causal', [(13, 13, False), (13, 13, True), (7, 19, True), (19, 7, True)])
def test_equals_quadratic_form_values_and_grads(T, S, is_causal):
  q, k, v = _qkv(T, S)
  kw = dict(mask=key_mask(S), is_causal=is_causal, features=draw_features(jax.random.PRNGKey(1), 16, 8))
  out, grads = out_and_grads(functools.partial(perf.performer, chunk_size=4), q, k, v, **kw)
  want, want_grads = out_and_grads(perf.quadratic, q, k, v, **kw)
  np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-4)
  for a, b in zip(grads, want_grads):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-3)


def test_equals_float64_estimate_with_the_same_features():
  """FAVOR+ written out without stabilisation: phi(x) = exp(W x - |x|^2 / 2) / sqrt(M), x = q * H**-0.25."""
  q, k, v = _qkv(T=10, S=10, N=2, K=2, H=8, batch=(1,))
  w = np.asarray(perf.draw_features(jax.random.PRNGKey(2), 64, 8), np.float64)
  phi = lambda x: np.exp(x @ w.T - 0.5 * np.sum(x * x, -1, keepdims=True)) / np.sqrt(64)
  fq = phi(np.asarray(q, np.float64)[0] * 8**-0.25)
  fk = phi(np.asarray(k, np.float64)[0] * 8**-0.25)
  a = np.einsum('tnm,snm->nts', fq, fk) * np.tril(np.ones((10, 10)))
  want = np.einsum('nts,snv->tnv', a / a.sum(-1, keepdims=True), np.asarray(v, np.float64)[0])
  got = performer(q, k, v, features=jnp.asarray(w, jnp.float32), is_causal=True, chunk_size=4)[0]
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_draw_features_orthogonal_blocks():
  w = np.asarray(perf.draw_features(jax.random.PRNGKey(0), 20, 8))
  assert w.shape == (20, 8)
  for block in (w[:8], w[8:16], w[16:]):
    gram = block @ block.T
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-4)
  np.testing.assert_array_equal(w, perf.draw_features(jax.random.PRNGKey(0), 20, 8))


def test_key_and_explicit_features_agree_and_default_key_is_deterministic():
  q, k, v = _qkv()
  w = perf.draw_features(jax.random.PRNGKey(5), 16, 8)
  np.testing.assert_allclose(performer(q, k, v, features=w), performer(q, k, v, num_features=16,
                                                                         key=jax.random.PRNGKey(5)), atol=1e-6)
  np.testing.assert_array_equal(performer(q, k, v, num_features=16), performer(q, k, v, num_features=16))


def test_causality_zero_gradients_from_the_future():
  q, k, v = _qkv(T=16, S=16, batch=(1,))
  t = 6
  w = draw_features(jax.random.PRNGKey(1), 16, 8)
  gk, gv = jax.jit(jax.grad(lambda k, v: jnp.sum(perf.performer(q, k, v, is_causal=True, features=w,
                                                                chunk_size=4)[0, t]), argnums=(0, 1)))(k, v)
  assert np.all(np.asarray(gk)[0, t + 1:] == 0) and np.all(np.asarray(gv)[0, t + 1:] == 0)
  assert np.any(np.asarray(gk)[0, :t + 1] != 0)


@pytest.mark.parametrize('is_causal', [False, True])
def test_weights_reconstruct_output(is_causal):
  q, k, v = _qkv(T=9, S=11)
  m = key_mask(11)
  out, w = performer(q, k, v, mask=m, is_causal=is_causal, return_weights=True,
                     features=draw_features(jax.random.PRNGKey(1), 16, 8))
  assert w.shape == (2, 4, 9, 11)
  np.testing.assert_allclose(out, jnp.einsum('BNTS,BSNV->BTNV', w, jnp.repeat(v, 2, axis=2)), atol=2e-5, rtol=1e-4)
  np.testing.assert_allclose(jnp.sum(w, -1), 1.0, atol=1e-5)
  assert np.all(np.asarray(w) >= 0)
  assert np.all(np.asarray(w)[np.broadcast_to(~np.asarray(m), w.shape)] == 0)


def test_grouped_query_equals_repeated_kv_heads_and_per_head_masks():
  q, k, v = _qkv(N=4, K=2)
  w = draw_features(jax.random.PRNGKey(1), 16, 8)
  for m in (key_mask(12), jnp.asarray(np.random.default_rng(3).random((2, 4, 1, 12)) < 0.6)):
    np.testing.assert_allclose(performer(q, k, v, mask=m, is_causal=True, features=w),
                               performer(q, jnp.repeat(k, 2, 2), jnp.repeat(v, 2, 2), mask=m, is_causal=True,
                                         features=w), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('is_causal', [False, True])
def test_fully_masked_rows_zero_with_finite_grads(is_causal):
  q, k, v = _qkv()
  m = jnp.ones((2, 1, 1, 12), bool).at[1].set(False)
  out, grads = out_and_grads(perf.performer, q, k, v, mask=m, is_causal=is_causal,
                              features=draw_features(jax.random.PRNGKey(1), 16, 8))
  assert np.all(np.asarray(out[1]) == 0) and np.all(np.isfinite(out))
  for g in grads:
    assert np.all(np.isfinite(g))


def test_large_inputs_stay_finite():
  """Products underflow at this scale; outputs and gradients must still be finite."""
  q, k, v = _qkv(std=16.0)
  w = draw_features(jax.random.PRNGKey(1), 16, 8)
  for is_causal in (False, True):
    out, grads = out_and_grads(perf.performer, q, k, v, is_causal=is_causal, features=w, mask=key_mask(12))
    assert np.all(np.isfinite(out)) and all(np.all(np.isfinite(g)) for g in grads)


def test_jit_vmap_and_bf16():
  q, k, v = _qkv(batch=(3, 2))
  w = draw_features(jax.random.PRNGKey(1), 16, 8)
  want = performer(q, k, v, is_causal=True, features=w)
  np.testing.assert_allclose(jax.vmap(lambda *x: performer(*x, is_causal=True, features=w))(q, k, v), want,
                             atol=1e-5, rtol=1e-5)
  out = performer(*(x.astype(jnp.bfloat16) for x in (q, k, v)), is_causal=True, features=w)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), want, atol=6e-2, rtol=6e-2)


def test_bad_inputs_raise():
  q, k, v = _qkv()
  with pytest.raises(ValueError, match='num_features'):
    perf.performer(q, k, v, num_features=0)
  with pytest.raises(ValueError, match='features must have shape'):
    perf.performer(q, k, v, features=jnp.ones((16, 5)))
  with pytest.raises(ValueError, match='key-padding'):
    perf.performer(q, k, v, mask=jnp.ones((2, 1, 12, 12), bool))
  with pytest.raises(ValueError, match='scale'):
    perf.performer(q, k, v, scale=-1.0)
  with pytest.raises(ValueError, match='num_features'):
    perf.draw_features(jax.random.PRNGKey(0), 0, 8)
