"""The decoding form of the dense products (a few query rows read the key/value cache in place) against the
general einsums, and flash's dispatch to it: values and gradients, with every option that reaches the scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from attention_research.attention import _checks, _dense
from tests.attention.inputs import normal, qkv

TOL = dict(atol=1e-5, rtol=1e-5)


def value_and_grads(fn, q, k, v, cot):
  loss = lambda q, k, v: jnp.sum(fn(q, k, v) * cot)
  return fn(q, k, v), jax.grad(loss, (0, 1, 2))(q, k, v)


@pytest.mark.parametrize('T,N,K', [(1, 8, 2), (2, 6, 3)])
def test_few_query_form_equals_general_einsums(T, N, K, monkeypatch):
  S = 23
  q, k, v = qkv(T, S, N=N, K=K, H=8, V=5)
  cot = normal(9, q.shape[:-1] + (5,))
  mask = jnp.asarray(np.random.default_rng(3).random((2, 1, T, S)) < 0.7).at[..., 0].set(True)
  bias = normal(4, (N, T, S))
  sinks = normal(5, (N,))
  options = dict(mask=mask, bias=bias, is_causal=True, sinks=sinks, logit_soft_cap=5.0)
  fn = jax.jit(lambda q, k, v: _dense.reference(q, k, v, **options))
  assert _dense.few_queries(_checks.check_qkv(q, k, v))
  few = value_and_grads(fn, q, k, v, cot)
  monkeypatch.setattr(_dense, 'FEW_QUERY_ROWS', 0)
  assert not _dense.few_queries(_checks.check_qkv(q, k, v))
  general = value_and_grads(jax.jit(lambda q, k, v: _dense.reference(q, k, v, **options)), q, k, v, cot)
  for a, b in zip(jax.tree.leaves(few), jax.tree.leaves(general)):
    np.testing.assert_allclose(a, b, **TOL)


def test_flash_decoding_step_equals_blocked_kernel():
  """One query against a cache: flash's dense dispatch equals its blocked kernel (block sizes force it)."""
  q, k, v = qkv(1, 300, N=8, K=2, H=8, V=8, batch=(3,))
  cot = normal(7, q.shape)
  mask = jnp.arange(300)[None, None, None, :] < jnp.array([300, 120, 1])[:, None, None, None]
  dense = value_and_grads(jax.jit(lambda q, k, v: attention.flash(q, k, v, mask=mask, is_causal=True)), q, k, v, cot)
  blocked = value_and_grads(
      jax.jit(lambda q, k, v: attention.flash(q, k, v, mask=mask, is_causal=True, block_q=1, block_k=64)),
      q, k, v, cot)
  for a, b in zip(jax.tree.leaves(dense), jax.tree.leaves(blocked)):
    np.testing.assert_allclose(a, b, **TOL)


def test_few_query_form_keeps_the_cache_in_place(monkeypatch):
  """The compiled decoding step keeps no temporary as large as the cache, which the general einsums copy."""
  q, k, v = qkv(1, 1024, N=8, K=8, H=64, V=64, batch=(1,))
  temp = lambda: jax.jit(lambda q, k, v: attention.reference(q, k, v)).lower(q, k, v).compile().memory_analysis().temp_size_in_bytes
  few = temp()
  monkeypatch.setattr(_dense, 'FEW_QUERY_ROWS', 0)
  general = temp()
  assert few < k.nbytes / 2 < k.nbytes <= general, (few, general, k.nbytes)
