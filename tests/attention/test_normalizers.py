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
