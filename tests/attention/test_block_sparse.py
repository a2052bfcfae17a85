"""block_sparse: equals dot_product under its own block mask, computed blockwise; the BigBird pattern itself."""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from tests.attention import inputs
from tests.attention.inputs import normal, out_and_grads

bs = importlib.import_module('attention_research.attention.block_sparse')

_PATTERN = ('block_size', 'num_window_blocks', 'num_global_blocks', 'num_random_blocks', 'seed')
block_sparse = jax.jit(bs.block_sparse, static_argnames=_PATTERN + ('is_causal', 'return_weights'))
dot_product = jax.jit(attention.dot_product, static_argnames=('is_causal', 'return_weights'))


def _qkv(T=24, S=24, **kw):
  return inputs.qkv(T, S, **kw)


@pytest.mark.parametrize('T,S,pattern,is_causal', [
    (40, 40, (4, 3, 1, 2), False),
    (40, 40, (4, 3, 1, 2), True),
    (37, 37, (5, 3, 2, 1), True),  # odd length, not a multiple of the block
    (13, 29, (4, 2, 1, 2), True),  # queries are the last T keys
    (29, 21, (3, 1, 1, 1), False),  # more queries than keys
])
def test_equals_dot_product_with_its_mask_values_and_grads(T, S, pattern, is_causal):
  q, k, v = _qkv(T, S)
  opts = dict(zip(_PATTERN, pattern + (3,)))
  rng = np.random.default_rng(5)
  mask = jnp.asarray(rng.random((2, 4, T, S)) < 0.8)
  bias = normal(6, (1, 4, T, S))
  full = jnp.logical_and(mask, bs.block_sparse_mask(T, S, **opts, is_causal=is_causal))
  assert not np.all(np.asarray(bs.block_sparse_mask(T, S, **opts, is_causal=False)))  # really sparse
  out, grads = out_and_grads(functools.partial(bs.block_sparse, **opts), q, k, v, mask=mask, bias=bias,
                              is_causal=is_causal)
  want, want_grads = out_and_grads(attention.reference, q, k, v, mask=full, bias=bias)
  np.testing.assert_allclose(out, want, atol=1e-5, rtol=1e-5)
  for a, b in zip(grads, want_grads):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_bigbird_pattern():
  T = 64
  m = np.asarray(bs.block_sparse_mask(T, T, block_size=8, num_window_blocks=3, num_global_blocks=1,
                                      num_random_blocks=2, seed=0))
  blocks = m[::8, ::8]
  assert blocks[0].all() and blocks[:, 0].all()  # global block: attends and is attended by all
  for i in range(8):
    assert blocks[i, max(i - 1, 0):i + 2].all()  # sliding window
  for i in range(1, 8):
    assert blocks[i].sum() == min(8, len({0, *range(max(i - 1, 0), min(i + 2, 8))}) + 2)  # + 2 random blocks
  np.testing.assert_array_equal(m, bs.block_sparse_mask(T, T, block_size=8, seed=0))  # deterministic
  assert not np.array_equal(m, bs.block_sparse_mask(T, T, block_size=8, seed=1))
  causal = np.asarray(bs.block_sparse_mask(T, T, block_size=8, seed=0, is_causal=True))
  assert not np.any(causal & ~np.tril(np.ones((T, T), bool)))
  assert np.all(np.diag(causal))


def test_causality_zero_gradients_from_the_future():
  q, k, v = _qkv(T=32, S=32, batch=(1,))
  t = 13
  gk, gv = jax.jit(jax.grad(lambda k, v: jnp.sum(bs.block_sparse(q, k, v, block_size=4, is_causal=True)[0, t]),
                            argnums=(0, 1)))(k, v)
  assert np.all(np.asarray(gk)[0, t + 1:] == 0) and np.all(np.asarray(gv)[0, t + 1:] == 0)


def test_weights_reconstruct_output():
  q, k, v = _qkv(T=20, S=20)
  opts = dict(block_size=4, num_random_blocks=1)
  out, w = block_sparse(q, k, v, is_causal=True, return_weights=True, **opts)
  assert w.shape == (2, 4, 20, 20)
  np.testing.assert_allclose(out, jnp.einsum('BNTS,BSNV->BTNV', w, jnp.repeat(v, 2, axis=2)), atol=1e-5)
  assert np.all(np.asarray(w)[:, :, ~np.asarray(bs.block_sparse_mask(20, 20, **opts, is_causal=True))] == 0)


def test_grouped_query_equals_repeated_kv_heads():
  q, k, v = _qkv(N=6, K=2)
  np.testing.assert_allclose(block_sparse(q, k, v, block_size=4, is_causal=True),
                             block_sparse(q, jnp.repeat(k, 3, 2), jnp.repeat(v, 3, 2), block_size=4, is_causal=True),
                             atol=1e-5, rtol=1e-5)


def test_fully_masked_rows_zero_with_finite_grads():
  q, k, v = _qkv()
  m = jnp.ones((2, 1, 24, 24), bool).at[1, :, 5].set(False).at[0].set(False)
  out, grads = out_and_grads(bs.block_sparse, q, k, v, block_size=4, mask=m)
  assert np.all(np.asarray(out[0]) == 0) and np.all(np.asarray(out[1, 5]) == 0)
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_vmap_equals_batched_call_and_bf16():
  q, k, v = _qkv(batch=(3, 2))
  want = block_sparse(q, k, v, block_size=4, is_causal=True)
  np.testing.assert_allclose(jax.vmap(lambda *x: block_sparse(*x, block_size=4, is_causal=True))(q, k, v), want,
                             atol=1e-5, rtol=1e-5)
  out = block_sparse(*(x.astype(jnp.bfloat16) for x in (q, k, v)), block_size=4, is_causal=True)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), want, atol=5e-2, rtol=5e-2)


def test_blockwise_not_a_masked_full_matrix():
  T, b = 512, 16
  q, k, v = _qkv(T=T, S=T, N=1, K=1, batch=(1,))
  jaxpr = jax.make_jaxpr(functools.partial(bs.block_sparse, block_size=b))(q, k, v)
  sizes = [np.prod(var.aval.shape) for eqn in jaxpr.jaxpr.eqns for var in eqn.outvars]
  assert max(sizes) <= T * (3 + 1 + 2) * b  # T * (window + global + random) * block


def test_bad_inputs_raise():
  q, k, v = _qkv()
  with pytest.raises(ValueError, match='block_size=32 is larger'):
    bs.block_sparse(q, k, v, block_size=32)
  with pytest.raises(ValueError, match='num_random_blocks'):
    bs.block_sparse(q, k, v, block_size=4, num_random_blocks=-1)
  with pytest.raises(ValueError, match='num_window_blocks'):
    bs.block_sparse(q, k, v, block_size=4, num_window_blocks=0)
  with pytest.raises(ValueError, match='Python int'):
    bs.block_sparse(q, k, v, block_size=4.0)
  with pytest.raises(ValueError, match='does not broadcast'):
    bs.block_sparse(q, k, v, block_size=4, mask=jnp.ones((3, 24), bool))
  with pytest.raises(ValueError, match='multiple'):
    bs.block_sparse(q[..., :3, :], k, v, block_size=4)
