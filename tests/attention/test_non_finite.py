"""NaN and inf inputs propagate as in softmax attention; only masks empty a row into zeros."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from tests.attention.variant_cases import variant_kwargs

T, S = 37, 53  # blocks of 16 divide neither: padded query rows and key columns


def _inputs():
  ks = jax.random.split(jax.random.PRNGKey(0), 3)
  return (jax.random.normal(ks[0], (2, T, 4, 8)), jax.random.normal(ks[1], (2, S, 2, 8)),
          jax.random.normal(ks[2], (2, S, 2, 8)))


def _out_and_grads(fn, q, k, v, bias):
  def loss(q, k, v):
    out = fn(q, k, v, bias)
    return jnp.sum(out * out), out
  (_, out), grads = jax.jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True))(q, k, v)
  return out, grads


def _case(name):
  q, k, v = _inputs()
  if name == 'nan_query':
    return q.at[0, 5, 1, 2].set(jnp.nan), k, v, None
  if name == 'inf_key':  # +inf scores (NaN rows) for some queries, -inf (weight 0) for others
    return q, k.at[0, 7, 0, 3].set(jnp.inf), v, None
  if name == 'nan_value':
    return q, k, v.at[1, 9, 1, 0].set(jnp.nan), None
  bias = jnp.zeros((1, 1, T, S)).at[..., 5, :].set(-jnp.inf)  # row 5 emptied by the bias, not by a mask
  return q, k, v, bias.at[..., 6, :20].set(-jnp.inf)  # row 6 keeps keys 20.. and stays finite


@pytest.mark.parametrize('case', ['nan_query', 'inf_key', 'nan_value', 'minus_inf_bias_rows'])
def test_flash_propagates_non_finite_inputs_like_the_reference(case):
  q, k, v, bias = _case(case)
  flash = lambda q, k, v, b: attention.flash(q, k, v, bias=b, block_q=16, block_k=16)
  ref = lambda q, k, v, b: attention.dot_product(q, k, v, bias=b, implementation='reference')
  out, grads = _out_and_grads(flash, q, k, v, bias)
  out_ref, grads_ref = _out_and_grads(ref, q, k, v, bias)
  assert bool(jnp.any(jnp.isnan(out_ref)))  # the case is non-trivial
  np.testing.assert_allclose(out, out_ref, atol=1e-5, rtol=1e-5)  # NaN where the reference has NaN
  for name, g, g_ref in zip('qkv', grads, grads_ref):
    np.testing.assert_array_equal(jnp.isnan(g), jnp.isnan(g_ref), err_msg=f'NaN pattern of the gradient of {name}')


@pytest.mark.parametrize('case', ['nan_query', 'nan_value'])
def test_flash_with_sinks_and_soft_cap_propagates_nan_like_the_reference(case):
  q, k, v, _ = _case(case)
  opts = dict(sinks=jnp.linspace(-1.0, 1.0, 4), logit_soft_cap=5.0)
  flash = lambda q, k, v, b: attention.flash(q, k, v, block_q=16, block_k=16, **opts)
  ref = lambda q, k, v, b: attention.dot_product(q, k, v, implementation='reference', **opts)
  out, grads = _out_and_grads(flash, q, k, v, None)
  out_ref, grads_ref = _out_and_grads(ref, q, k, v, None)
  assert bool(jnp.any(jnp.isnan(out_ref)))
  np.testing.assert_allclose(out, out_ref, atol=1e-5, rtol=1e-5)
  for name, g, g_ref in zip('qkv', grads, grads_ref):
    np.testing.assert_array_equal(jnp.isnan(g), jnp.isnan(g_ref), err_msg=f'NaN pattern of the gradient of {name}')


def test_flash_masked_rows_stay_zero_next_to_nan_rows():
  q, k, v, _ = _case('nan_query')
  mask = jnp.ones((2, 1, T, S), bool).at[:, :, 3].set(False)
  out = attention.flash(q, k, v, mask=mask, block_q=16, block_k=16)
  assert float(jnp.abs(out[:, 3]).max()) == 0.0
  assert bool(jnp.all(jnp.isnan(out[0, 5, 1]))) and bool(jnp.all(jnp.isfinite(out[1])))


def test_auto_dot_product_on_long_inputs_propagates_nan():
  q = jnp.ones((1, 256, 1, 8)).at[0, 0, 0, 0].set(jnp.nan)
  out = attention.dot_product(q, jnp.ones((1, 256, 1, 8)), jnp.ones((1, 256, 1, 8)))
  assert bool(jnp.all(jnp.isnan(out[0, 0]))) and bool(jnp.all(out[0, 1:] == 1.0))


@pytest.mark.parametrize('name', sorted(attention.VARIANTS))
def test_every_variant_propagates_a_nan_query_to_its_row_only(name):
  q, k, v = _inputs()
  if attention.get(name).family == 'recurrent':  # a recurrence has one key per query position
    k, v = k[:, :T], v[:, :T]
  kw = variant_kwargs(name, q, k, v)
  fn = lambda q: attention.get(name).fn(q, k, v, **kw)
  out = jax.jit(fn)(q.at[0, 5, 1, 2].set(jnp.nan))
  assert bool(jnp.all(jnp.isnan(out[0, 5, 1])))
  assert int(jnp.sum(jnp.isnan(out))) == out.shape[-1]
  # A loss that reads the output: recurrent outputs are linear in q, so the gradient of their plain sum never sees q.
  g = jax.jit(jax.grad(lambda q: jnp.sum(fn(q) ** 2)))(q.at[0, 5, 1, 2].set(jnp.nan))
  assert bool(jnp.any(jnp.isnan(g)))
