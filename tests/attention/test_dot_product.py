"""The reference against jax.nn.dot_product_attention, an implementation that is not part of this project."""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from attention_research import attention
from tests.attention.inputs import half_tolerance


def jax_nn(q, k, v, mask=None, bias=None, is_causal=False, scale=None):
  G = q.shape[-2] // k.shape[-2]
  return jax.nn.dot_product_attention(q, jnp.repeat(k, G, -2), jnp.repeat(v, G, -2), bias=bias, mask=mask,
                                      is_causal=is_causal, scale=scale)


# Few distinct lengths: every new shape costs a compilation, and these three cover 1, odd and even.
@settings(max_examples=10, deadline=None)
@given(T=st.sampled_from([1, 5, 8]), S=st.sampled_from([1, 5, 8]), K=st.sampled_from([1, 2]), G=st.sampled_from([1, 2]),
       causal=st.booleans(), use_mask=st.booleans(), use_bias=st.booleans(), seed=st.integers(0, 1000))
def test_reference_equals_jax_nn(T, S, K, G, causal, use_mask, use_bias, seed):
  if causal:
    S = max(S, T)  # jax.nn's causal mask is top-left aligned; ours aligns queries to the last keys, as in decoding
    T = S
  ks = jax.random.split(jax.random.PRNGKey(seed), 5)
  N, H = K * G, 4
  q, k, v = (jax.random.normal(ks[i], (2, L, h, H)) for i, (L, h) in enumerate([(T, N), (S, K), (S, K)]))
  mask = jax.random.bernoulli(ks[3], 0.7, (2, 1, T, S)).at[..., 0].set(True) if use_mask else None
  bias = jax.random.normal(ks[4], (1, N, T, S)) if use_bias else None
  _compare_with_jax_nn(q, k, v, mask, bias, causal)


@functools.partial(jax.jit, static_argnums=5)
def _values_and_grads(q, k, v, mask, bias, causal):
  """Ours and jax.nn's outputs and input gradients, in one compiled program per shape (eager op-by-op
  dispatch made this property test take minutes)."""
  def ours(q, k, v):
    return attention.dot_product(q, k, v, mask=mask, bias=bias, is_causal=causal, implementation='reference')

  def theirs(q, k, v):
    return jax_nn(q, k, v, mask, bias, causal)

  grads = [jax.grad(lambda *x, f=f: jnp.sum(jnp.sin(f(*x))), (0, 1, 2))(q, k, v) for f in (ours, theirs)]
  return ours(q, k, v), theirs(q, k, v), grads


def _compare_with_jax_nn(q, k, v, mask, bias, causal):
  out, ref, (g_ours, g_ref) = _values_and_grads(q, k, v, mask, bias, causal)
  np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)
  for a, b in zip(g_ours, g_ref):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_weights_sum_to_one_over_keys_and_respect_the_mask(qkv):
  q, k, v = qkv(T=5, S=7)
  mask = jnp.arange(7)[None, None, None, :] < jnp.array([3, 7])[:, None, None, None]
  _, w = attention.dot_product(q, k, v, mask=mask, return_weights=True)
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
  assert float(jnp.abs(w[0, ..., 3:]).max()) == 0.0


def test_causal_aligns_queries_with_the_last_keys(qkv):
  q, k, v = qkv(T=2, S=5)
  _, w = attention.dot_product(q, k, v, is_causal=True, return_weights=True)
  assert float(w[..., 0, 4].max()) == 0.0 and float(w[..., 1, 4].min()) > 0.0


def test_scale_and_value_head_size(qkv):
  q, k, v = qkv(V=3)
  out = attention.dot_product(q, k, v, scale=0.5)
  assert out.shape == (2, 6, 4, 3)
  np.testing.assert_allclose(out, attention.dot_product(q * 0.5, k, v, scale=1.0), atol=1e-6)


def test_softmax_runs_in_float32_for_half_precision(qkv):
  q, k, v = qkv()
  for dtype in (jnp.bfloat16, jnp.float16):
    out, w = attention.dot_product(q.astype(dtype), k.astype(dtype), v.astype(dtype), return_weights=True)
    assert out.dtype == dtype and w.dtype == jnp.float32
    # The weights are those of float32 scores of the same (rounded) inputs, not of scores rounded to dtype.
    same = [x.astype(dtype).astype(jnp.float32) for x in (q, k, v)]
    out32, w32 = attention.dot_product(*same, return_weights=True)
    np.testing.assert_allclose(w, w32, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(out.astype(jnp.float32), out32, **half_tolerance(dtype))


def test_auto_takes_the_reference_when_weights_are_asked(qkv, monkeypatch):
  # Lower the threshold so that auto would take the kernel on these inputs, and record every kernel call.
  dp_module = importlib.import_module('attention_research.attention.dot_product')
  flash_module = importlib.import_module('attention_research.attention.flash')
  calls = []
  kernel = flash_module.flash
  monkeypatch.setattr(dp_module, 'AUTO_FLASH_MIN_SCORES', 1)
  monkeypatch.setattr(dp_module, 'flash', lambda *a, **kw: calls.append(kw) or kernel(*a, **kw))
  q, k, v = qkv()
  attention.dot_product(q, k, v, implementation='auto')
  assert len(calls) == 1  # without weights auto does take the kernel here
  out, w = attention.dot_product(q, k, v, return_weights=True, implementation='auto')
  assert len(calls) == 1
  np.testing.assert_allclose(out, attention.dot_product(q, k, v, implementation='reference'), atol=1e-6)
  assert w.shape == (2, 4, 6, 6)


@pytest.mark.parametrize('bad, match', [
    (dict(normalizer='softermax'), 'unknown normalizer'),
    (dict(implementation='cuda'), 'unknown implementation'),
    (dict(mask=jnp.ones((2, 1, 6, 6), jnp.float32)), 'boolean'),
    (dict(bias=jnp.ones((3, 1, 6, 6))), 'broadcast'),
])
def test_bad_options_raise(qkv, bad, match):
  q, k, v = qkv()
  with pytest.raises(ValueError, match=match):
    attention.dot_product(q, k, v, **bad)


def test_mismatched_head_sizes_and_lengths_raise(qkv):
  q, k, v = qkv()
  with pytest.raises(ValueError, match='head size'):
    attention.dot_product(q[..., :4], k, v)
  with pytest.raises(ValueError, match='same length'):
    attention.dot_product(q, k, v[:, :5])
  with pytest.raises(ValueError, match='batch'):
    attention.dot_product(q[:1], k, v)
