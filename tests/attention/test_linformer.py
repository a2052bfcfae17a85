"""linformer: identity projections give dot_product; random ones match a float64 formula; masks and weights."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from tests.attention import inputs
from tests.attention.inputs import key_mask, out_and_grads

lf = importlib.import_module('attention_research.attention.linformer')

linformer = jax.jit(lf.linformer, static_argnames=('is_causal', 'return_weights', 'scale'))
dot_product = jax.jit(attention.dot_product, static_argnames=('return_weights',))


def _qkv(T=10, S=12, **kw):
  return inputs.qkv(T, S, **kw)


def _identity(S):
  return {'e': jnp.eye(S), 'f': jnp.eye(S)}


def test_identity_projections_equal_dot_product_values_grads_and_weights():
  q, k, v = _qkv()
  out, grads = out_and_grads(lf.linformer, q, k, v, params=_identity(12))
  want, want_grads = out_and_grads(attention.dot_product, q, k, v)
  np.testing.assert_allclose(out, want, atol=1e-5, rtol=1e-5)
  for a, b in zip(grads, want_grads):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
  _, w = linformer(q, k, v, params=_identity(12), return_weights=True)
  np.testing.assert_allclose(w, dot_product(q, k, v, return_weights=True)[1], atol=1e-6)


def test_identity_projections_with_mask_equal_dot_product_on_zeroed_keys():
  """Masked keys are zeroed before projecting: with E = F = I they become zero keys with zero values."""
  q, k, v = _qkv()
  m = key_mask(12)
  keep = m[:, 0, 0, :, None, None]
  out, w = linformer(q, k, v, params=_identity(12), mask=m, return_weights=True)
  want, want_w = dot_product(q, k * keep, v * keep, return_weights=True)
  np.testing.assert_allclose(out, want, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(w, want_w * m, atol=1e-6)


def test_random_projections_match_float64_formula_and_weights_reconstruct_output():
  q, k, v = _qkv(N=2, K=2, batch=(1,))
  params = lf.init_params(jax.random.PRNGKey(0), 12, 5)
  m = key_mask(12, batch=1)
  out, w = linformer(q, k, v, params=params, mask=m, return_weights=True)
  e, f = (np.asarray(params[n], np.float64) for n in ('e', 'f'))
  keep = np.asarray(m, np.float64)[0, 0, 0][:, None, None]
  kp = np.einsum('sr,snh->rnh', e, np.asarray(k, np.float64)[0] * keep)
  vp = np.einsum('sr,snv->rnv', f, np.asarray(v, np.float64)[0] * keep)
  s = np.einsum('tnh,rnh->ntr', np.asarray(q, np.float64)[0], kp) / np.sqrt(8)
  p = np.exp(s - s.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  np.testing.assert_allclose(out[0], np.einsum('ntr,rnv->tnv', p, vp), atol=1e-5, rtol=1e-5)
  assert w.shape == (1, 2, 10, 12)
  np.testing.assert_allclose(out, jnp.einsum('BNTS,BSNV->BTNV', w, v), atol=1e-5, rtol=1e-5)
  assert np.all(np.asarray(w)[np.broadcast_to(~np.asarray(m), w.shape)] == 0)


def test_masked_keys_contribute_nothing():
  q, k, v = _qkv()
  params = lf.init_params(jax.random.PRNGKey(1), 12, 4)
  m = key_mask(12)
  junk = jnp.where(m[:, 0, 0, :, None, None], 0.0, 1e3)
  np.testing.assert_allclose(linformer(q, k + junk, v - junk, params=params, mask=m),
                             linformer(q, k, v, params=params, mask=m), atol=1e-5)


def test_grouped_query_equals_repeated_kv_heads_and_per_head_masks():
  q, k, v = _qkv(N=4, K=2)
  params = lf.init_params(jax.random.PRNGKey(2), 12, 4)
  for m in (None, key_mask(12), jnp.asarray(np.random.default_rng(3).random((2, 4, 1, 12)) < 0.6)):
    np.testing.assert_allclose(linformer(q, k, v, params=params, mask=m),
                               linformer(q, jnp.repeat(k, 2, 2), jnp.repeat(v, 2, 2), params=params, mask=m),
                               atol=1e-5, rtol=1e-5)


def test_fully_masked_rows_zero_with_finite_grads():
  q, k, v = _qkv()
  m = jnp.ones((2, 1, 1, 12), bool).at[1].set(False)
  out, grads = out_and_grads(lf.linformer, q, k, v, params=lf.init_params(jax.random.PRNGKey(3), 12, 4), mask=m)
  assert np.all(np.asarray(out[1]) == 0)
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_vmap_equals_batched_call_and_bf16():
  q, k, v = _qkv(batch=(3, 2))
  params = lf.init_params(jax.random.PRNGKey(4), 12, 4)
  want = linformer(q, k, v, params=params)
  np.testing.assert_allclose(jax.vmap(lambda *x: linformer(*x, params=params))(q, k, v), want, atol=1e-5, rtol=1e-5)
  out = linformer(*(x.astype(jnp.bfloat16) for x in (q, k, v)), params=params)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), want, atol=5e-2, rtol=5e-2)


def test_init_params():
  p = lf.init_params(jax.random.PRNGKey(0), 64, 8, dtype=jnp.bfloat16)
  assert p['e'].shape == p['f'].shape == (64, 8) and p['e'].dtype == jnp.bfloat16
  assert not np.allclose(np.asarray(p['e'], np.float32), np.asarray(p['f'], np.float32))
  with pytest.raises(ValueError, match='rank'):
    lf.init_params(jax.random.PRNGKey(0), 64, 0)


def test_bad_inputs_raise():
  q, k, v = _qkv()
  params = lf.init_params(jax.random.PRNGKey(0), 12, 4)
  with pytest.raises(ValueError, match='not causal'):
    lf.linformer(q, k, v, params=params, is_causal=True)
  with pytest.raises(ValueError, match=r'S=12'):
    lf.linformer(q, k, v, params=lf.init_params(jax.random.PRNGKey(0), 16, 4))
  with pytest.raises(ValueError, match='params'):
    lf.linformer(q, k, v, params={'e': params['e']})
  with pytest.raises(ValueError, match='key-padding'):
    lf.linformer(q, k, v, params=params, mask=jnp.ones((10, 12), bool))
  with pytest.raises(ValueError, match='multiple'):
    lf.linformer(q[..., :3, :], k, v, params=params)
