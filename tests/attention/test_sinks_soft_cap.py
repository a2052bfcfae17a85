"""Attention sinks and logit soft-capping, in the reference and in the blocked kernel, against their papers'
equations written out here in plain jax.numpy: values and gradients of q, k, v and the sinks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention

TOL = dict(atol=2e-5, rtol=2e-5)
B, N, K, H = 2, 4, 2, 8


def paper(q, k, v, *, mask, is_causal, sinks=None, cap=None):
  """p_ts = exp(s_ts) / (exp(sink_n) + sum_s' exp(s_ts')) over the visible keys (gpt-oss / StreamingLLM sinks),
  with s = cap * tanh(q.k / sqrt(H) / cap) (Gemma 2 caps the scaled logits before masking)."""
  G = q.shape[2] // k.shape[2]
  k, v = jnp.repeat(k, G, axis=2), jnp.repeat(v, G, axis=2)
  s = jnp.einsum('btnh,bsnh->bnts', q, k) / np.sqrt(q.shape[-1])
  if cap is not None:
    s = cap * jnp.tanh(s / cap)
  T, S = s.shape[-2:]
  visible = jnp.broadcast_to(mask, s.shape)
  if is_causal:
    visible = visible & (jnp.arange(S)[None, :] <= jnp.arange(T)[:, None] + S - T)
  e = jnp.where(visible, jnp.exp(s), 0.0)  # scores here are O(1): no max subtraction needed
  denom = jnp.sum(e, axis=-1, keepdims=True)
  if sinks is not None:
    denom = denom + jnp.exp(sinks)[None, :, None, None]
  p = e / jnp.where(denom == 0, 1.0, denom)  # a row with no visible key and no sink: zeros
  return jnp.einsum('bnts,bsnh->btnh', p, v), p


def inputs(T, S, seed=0):
  ks = jax.random.split(jax.random.PRNGKey(seed), 6)
  q = 1.5 * jax.random.normal(ks[0], (B, T, N, H))  # scores up to about 5: the soft-cap of 2 below bites
  k, v = jax.random.normal(ks[1], (B, S, K, H)), jax.random.normal(ks[2], (B, S, K, H))
  sinks = jax.random.normal(ks[3], (N,))
  mask = jax.random.bernoulli(ks[4], 0.7, (B, 1, T, S)).at[0, :, 3:6].set(False)  # rows 3..5 see no key
  cot = jax.random.normal(ks[5], (B, T, N, H))
  return q, k, v, sinks, mask, cot


def values_and_grads(fn, q, k, v, sinks, cot):
  def loss(q, k, v, sinks):
    out = fn(q, k, v, sinks)
    return jnp.sum(out * cot), out
  argnums = (0, 1, 2) if sinks is None else (0, 1, 2, 3)
  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums, has_aux=True))(q, k, v, sinks)
  return out, grads


OPTIONS = {'sinks': dict(sinks=True), 'soft_cap': dict(cap=2.0), 'both': dict(sinks=True, cap=2.0)}
# Blocks of 16 divide neither length; (53, 37) causal leaves the first queries without any key.
CASES = [('reference', 37, 53), ('flash', 37, 53), ('flash', 53, 37)]


@pytest.mark.parametrize('impl, T, S', CASES)
@pytest.mark.parametrize('option', sorted(OPTIONS))
def test_equals_the_papers_equation_in_values_and_gradients(impl, T, S, option):
  q, k, v, sinks, mask, cot = inputs(T, S)
  sinks = sinks if OPTIONS[option].get('sinks') else None
  cap = OPTIONS[option].get('cap')
  fn = attention.flash if impl == 'flash' else attention.dot_product
  kw = dict(block_q=16, block_k=16) if impl == 'flash' else dict(implementation='reference')
  ours = lambda q, k, v, s: fn(q, k, v, mask=mask, is_causal=True, sinks=s, logit_soft_cap=cap, **kw)
  theirs = lambda q, k, v, s: paper(q, k, v, mask=mask, is_causal=True, sinks=s, cap=cap)[0]
  out, grads = values_and_grads(ours, q, k, v, sinks, cot)
  out_ref, grads_ref = values_and_grads(theirs, q, k, v, sinks, cot)
  np.testing.assert_allclose(out, out_ref, **TOL)
  for name, g, g_ref in zip(['q', 'k', 'v', 'sinks'], grads, grads_ref):
    assert bool(jnp.all(jnp.isfinite(g))), name
    np.testing.assert_allclose(g, g_ref, err_msg=f'gradient of {name}', **TOL)
  assert float(jnp.abs(out[0, 3:6]).max()) == 0.0  # rows without a visible key stay zero


def test_weights_with_sinks_sum_to_less_than_one_and_are_the_papers():
  q, k, v, sinks, mask, _ = inputs(6, 9)
  _, p = paper(q, k, v, mask=mask, is_causal=False, sinks=sinks, cap=3.0)
  for fn in (attention.dot_product, attention.flash):
    out, w = fn(q, k, v, mask=mask, sinks=sinks, logit_soft_cap=3.0, return_weights=True)
    np.testing.assert_allclose(w, p, **TOL)
    assert float(w.sum(-1).max()) < 1.0


def test_a_sink_takes_its_share_under_sparse_normalisers_too():
  q, k, v, sinks, _, _ = inputs(6, 9)
  for name in ('sparsemax', 'entmax15'):
    _, w = attention.dot_product(q, k, v, normalizer=name, sinks=sinks, return_weights=True)
    _, w_big_sink = attention.dot_product(q, k, v, normalizer=name, sinks=sinks + 100.0, return_weights=True)
    assert float(w.sum(-1).max()) <= 1.0 + 1e-6 and float(w.sum(-1).min()) < 1.0 - 1e-3
    assert float(jnp.abs(w_big_sink).max()) == 0.0  # a dominant sink takes all the mass


def test_auto_still_takes_the_kernel_with_the_options():
  q, k, v = (jnp.zeros((1, 256, 2, 8)) for _ in range(3))
  fn = lambda q, k, v: attention.dot_product(q, k, v, sinks=jnp.zeros(2), logit_soft_cap=30.0, is_causal=True)
  assert 'custom_vjp' in str(jax.make_jaxpr(fn)(q, k, v))


@pytest.mark.parametrize('bad, match', [
    (dict(logit_soft_cap=0.0), 'logit_soft_cap'),
    (dict(logit_soft_cap=-1.0), 'logit_soft_cap'),
    (dict(logit_soft_cap=float('nan')), 'logit_soft_cap'),
    (dict(logit_soft_cap=float('inf')), 'logit_soft_cap'),
    (dict(logit_soft_cap=True), 'logit_soft_cap'),
    (dict(sinks=jnp.zeros(5)), r'shape \[N\] = \(4,\)'),
    (dict(sinks=jnp.zeros((1, 4))), 'sinks'),
    (dict(sinks=jnp.zeros(4, jnp.int32)), 'float'),
])
@pytest.mark.parametrize('fn', [attention.dot_product, attention.flash], ids=['dot_product', 'flash'])
def test_bad_values_raise(fn, bad, match, qkv):
  q, k, v = qkv()
  with pytest.raises(ValueError, match=match):
    fn(q, k, v, **bad)


def test_traced_soft_cap_raises(qkv):
  q, k, v = qkv()
  with pytest.raises(ValueError, match='fixed when tracing'):
    jax.jit(lambda c: attention.dot_product(q, k, v, logit_soft_cap=c))(2.0)
