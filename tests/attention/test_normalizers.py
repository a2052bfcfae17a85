"""Sparse normalisers against independent plain-numpy algorithms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from attention_research import attention
from attention_research.attention import normalizers


def sparsemax_np(z):
  """Projection onto the simplex by bisection on the threshold."""
  lo, hi = z.min() - 1, z.max()
  for _ in range(200):
    tau = (lo + hi) / 2
    lo, hi = (tau, hi) if np.maximum(z - tau, 0).sum() > 1 else (lo, tau)
  return np.maximum(z - tau, 0)


def entmax15_np(z):
  """1.5-entmax by bisection: p = [z/2 - tau]_+^2 summing to 1."""
  z = z / 2
  lo, hi = z.max() - 1, z.max()
  for _ in range(200):
    tau = (lo + hi) / 2
    lo, hi = (tau, hi) if (np.maximum(z - tau, 0) ** 2).sum() > 1 else (lo, tau)
  return np.maximum(z - tau, 0) ** 2


@pytest.mark.parametrize('name, ref', [('sparsemax', sparsemax_np), ('entmax15', entmax15_np)])
def test_matches_bisection(name, ref):
  z = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (20, 9)) * 2, np.float64)
  ours = np.asarray(normalizers.get_normalizer(name)(jnp.asarray(z, jnp.float32)))
  np.testing.assert_allclose(ours, np.stack([ref(r) for r in z]), atol=1e-5)
  assert (ours == 0).any(), 'sparse normalisers should give exact zeros on spread-out scores'


@pytest.mark.parametrize('name', ['sparsemax', 'entmax15'])
def test_gradients_match_finite_differences(name):
  z = jax.random.normal(jax.random.PRNGKey(1), (3, 6))
  f = normalizers.get_normalizer(name)
  check_grads(lambda z: f(z) @ jnp.arange(6.0), (z,), order=1, modes=['fwd', 'rev'], atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize('name', ['softmax', 'sparsemax', 'entmax15'])
def test_masked_entries_get_zero_and_dead_rows_are_zero(name):
  z = jnp.ones((2, 4))
  mask = jnp.array([[True, True, False, False], [False] * 4])
  w = normalizers.get_normalizer(name)(z, mask)
  np.testing.assert_allclose(w, [[0.5, 0.5, 0, 0], [0, 0, 0, 0]], atol=1e-6)


def test_normalizer_option_of_dot_product(qkv):
  q, k, v = qkv()
  for name in ('sparsemax', 'entmax15'):
    out, w = attention.dot_product(q, k, v, normalizer=name, return_weights=True)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out, jnp.einsum('bnts,bsnv->btnv', w, jnp.repeat(v, 2, -2)), atol=1e-5)


def sigmoid_paper(q, k, v, visible, b):
  """Ramapuram et al. 2024, eq. (1) with bias: o_t = sum_s sigma(q_t . k_s / sqrt(H) + b) v_s over visible keys."""
  G = q.shape[2] // k.shape[2]
  k, v = jnp.repeat(k, G, axis=2), jnp.repeat(v, G, axis=2)
  s = jnp.einsum('btnh,bsnh->bnts', q, k) / np.sqrt(q.shape[-1])
  w = jnp.where(visible, 1.0 / (1.0 + jnp.exp(-(s + b))), 0.0)
  return jnp.einsum('bnts,bsnh->btnh', w, v), w


@pytest.mark.parametrize('sigmoid_bias', [None, 0.5])
def test_sigmoid_equals_the_papers_equation_in_values_and_gradients(qkv, sigmoid_bias):
  q, k, v = qkv(T=5, S=7)
  mask = jnp.ones((2, 1, 5, 7), bool).at[0, :, 2].set(False)  # query 2 of example 0 sees no key
  visible = mask & (jnp.arange(7)[None, :] <= jnp.arange(5)[:, None] + 2)
  b = -np.log(7) if sigmoid_bias is None else sigmoid_bias  # the default: minus the log of the key length
  ours = lambda q, k, v: attention.dot_product(q, k, v, mask=mask, is_causal=True, normalizer='sigmoid',
                                               sigmoid_bias=sigmoid_bias, return_weights=True)
  (out, w), (out_ref, w_ref) = ours(q, k, v), sigmoid_paper(q, k, v, visible, b)
  np.testing.assert_allclose(out, out_ref, atol=1e-5)
  np.testing.assert_allclose(w, w_ref, atol=1e-6)
  assert float(jnp.abs(out[0, 2]).max()) == 0.0
  grads = jax.jit(jax.grad(lambda *x: jnp.sum(jnp.sin(ours(*x)[0])), (0, 1, 2)))(q, k, v)
  grads_ref = jax.jit(jax.grad(lambda *x: jnp.sum(jnp.sin(sigmoid_paper(*x, visible, b)[0])), (0, 1, 2)))(q, k, v)
  for g, g_ref in zip(grads, grads_ref):
    assert bool(jnp.all(jnp.isfinite(g)))
    np.testing.assert_allclose(g, g_ref, atol=1e-5)


def test_sigmoid_masked_entries_are_zero_even_for_non_finite_scores():
  z = jnp.array([[1.0, jnp.nan, jnp.inf, 0.0]])
  mask = jnp.array([[True, False, False, True]])
  w, vjp = jax.vjp(lambda z: normalizers.sigmoid(z, mask), z)
  np.testing.assert_allclose(w, 1 / (1 + np.exp(-(np.array([[1.0, -np.inf, -np.inf, 0.0]]) - np.log(4)))))
  assert bool(jnp.all(jnp.isfinite(vjp(jnp.ones_like(w))[0])))


@pytest.mark.parametrize('bad, match', [
    (dict(normalizer='sigmoid', sinks=jnp.zeros(4)), 'sum to 1'),
    (dict(normalizer='softmax', sigmoid_bias=0.0), 'sigmoid_bias'),
])
def test_options_that_do_not_fit_the_normalizer_raise(qkv, bad, match):
  with pytest.raises(ValueError, match=match):
    attention.dot_product(*qkv(), **bad)
