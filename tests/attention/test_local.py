"""Sliding-window attention against dot_product with the equivalent mask: values, gradients, memory."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from attention_research.attention import masks

TOL = dict(atol=1e-5, rtol=1e-5)


def make(B=2, T=40, S=40, N=4, K=2, H=8, seed=0):
  ks = jax.random.split(jax.random.PRNGKey(seed), 4)
  shapes = [(B, T, N, H), (B, S, K, H), (B, S, K, H), (B, T, N, H)]
  return [jax.random.normal(key, shape) for key, shape in zip(ks, shapes)]


def value_and_grads(fn, q, k, v, cot):
  loss = lambda q, k, v: (jnp.sum(fn(q, k, v) * cot), fn(q, k, v))
  (_, out), grads = jax.jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True))(q, k, v)
  return out, grads


def assert_same(fn, ref, q, k, v, cot):
  out, grads = value_and_grads(fn, q, k, v, cot)
  out_ref, grads_ref = value_and_grads(ref, q, k, v, cot)
  np.testing.assert_allclose(out, out_ref, **TOL)
  for name, g, g_ref in zip('qkv', grads, grads_ref):
    np.testing.assert_allclose(g, g_ref, err_msg=f'gradient of {name}', **TOL)


# Blocks of 16 against windows narrower and wider than a block, symmetric or not, and T != S.
@pytest.mark.parametrize('window,T,S', [((3, 5), 40, 40), ((20, 0), 40, 40), ((7, 7), 37, 53), ((0, 18), 53, 37)])
def test_window_equals_dot_product_with_the_local_mask(window, T, S):
  q, k, v, cot = make(T=T, S=S)
  band = masks.local(T, S, window)
  assert_same(lambda q, k, v: attention.local(q, k, v, window=window, block_size=16),
              lambda q, k, v: attention.dot_product(q, k, v, mask=band, implementation='reference'), q, k, v, cot)


def test_window_covering_everything_equals_dot_product():
  q, k, v, cot = make(T=37, S=53)
  assert_same(lambda q, k, v: attention.local(q, k, v, window=53, block_size=16),
              lambda q, k, v: attention.dot_product(q, k, v, implementation='reference'), q, k, v, cot)


def test_causal_window_with_a_padding_mask():
  q, k, v, cot = make()
  pad = masks.padding(jnp.array([40, 25]), 40)
  band = masks.combine(pad, masks.local(40, 40, (9, 0)))
  assert_same(lambda q, k, v: attention.local(q, k, v, window=9, mask=pad, is_causal=True, block_size=16),
              lambda q, k, v: attention.dot_product(q, k, v, mask=band, implementation='reference'), q, k, v, cot)


@pytest.mark.parametrize('window', [41, (3, 100), (-1, 2), 'wide'])
def test_bad_windows_raise(window):
  q, k, v, _ = make()
  with pytest.raises(ValueError, match='window'):
    attention.local(q, k, v, window=window)


def test_the_kernel_never_materialises_the_score_matrix():
  T = 4096
  q, k, v = (jnp.zeros((1, T, 1, 16)) for _ in range(3))
  loss = lambda q, k, v: jnp.sum(attention.local(q, k, v, window=64) ** 2)
  jaxpr = jax.make_jaxpr(jax.grad(loss, (0, 1, 2)))(q, k, v)

  def sizes(jaxpr):
    for eqn in jaxpr.eqns:
      for var in eqn.outvars:
        yield int(np.prod(var.aval.shape)) if hasattr(var.aval, 'shape') else 0
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        yield from sizes(sub)

  assert max(sizes(jaxpr.jaxpr)) < T * T // 16  # blocks of the band, never [T, S]
  stats = jax.jit(jax.grad(loss, (0, 1, 2))).lower(q, k, v).compile().memory_analysis()
  if stats is not None:
    assert stats.temp_size_in_bytes < T * T * 4 // 16


def test_cost_grows_with_the_window_not_the_length():
  from attention_research.attention import _blocked, _checks  # pylint: disable=g-import-not-at-top
  visited = lambda T: sum(hi - lo for lo, _, _, hi in _blocked.make_plan(
      _checks.Dims((1,), T, T, 8, 8, 64, 64), scale=1.0, scale_q=True, left=256, right=256, block_q=256,
      block_k=256).rows)
  assert visited(4096) == 3 * 16 - 2 and visited(16384) == 3 * 64 - 2  # 3 key blocks per query block
