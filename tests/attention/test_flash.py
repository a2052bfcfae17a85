"""The blocked flash kernel against the reference that materialises every score: values and gradients."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from attention_research.attention import _blocked, _checks
from tests.attention.inputs import half_tolerance, large_logits

TOL = dict(atol=1e-5, rtol=1e-5)


def make(B=2, T=37, S=53, N=4, K=2, H=8, seed=0):
  ks = jax.random.split(jax.random.PRNGKey(seed), 4)
  q = jax.random.normal(ks[0], (B, T, N, H))
  k = jax.random.normal(ks[1], (B, S, K, H))
  v = jax.random.normal(ks[2], (B, S, K, H))
  cot = jax.random.normal(ks[3], (B, T, N, H))  # a random cotangent reaches every output entry
  return q, k, v, cot


def value_and_grads(fn, q, k, v, cot, bias):
  """fn's output and the gradients of <fn(q, k, v, bias), cot> for q, k, v (and bias), under jit."""
  def loss(q, k, v, bias):
    out = fn(q, k, v, bias)
    return jnp.sum(out * cot), out
  argnums = (0, 1, 2) if bias is None else (0, 1, 2, 3)
  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums, has_aux=True))(q, k, v, bias)
  return out, grads


def assert_flash_matches_reference(q, k, v, cot, *, mask=None, bias=None, is_causal=False, **blocks):
  flash = lambda q, k, v, bias: attention.flash(q, k, v, mask=mask, bias=bias, is_causal=is_causal, **blocks)
  ref = lambda q, k, v, bias: attention.dot_product(q, k, v, mask=mask, bias=bias, is_causal=is_causal,
                                                    implementation='reference')
  out, grads = value_and_grads(flash, q, k, v, cot, bias)
  out_ref, grads_ref = value_and_grads(ref, q, k, v, cot, bias)
  np.testing.assert_allclose(out, out_ref, **TOL)
  for name, g, g_ref in zip('qkvb', grads, grads_ref):
    assert bool(jnp.all(jnp.isfinite(g))), name
    np.testing.assert_allclose(g, g_ref, err_msg=f'gradient of {name}', **TOL)
  return out


# Every case compiles the kernel's forward and backward (about a second each), so each one covers several
# features at once. Blocks of 16 divide neither T=37 nor S=53: padded rows and columns, partial blocks.
@pytest.mark.parametrize('T,S,is_causal', [(37, 53, False), (37, 53, True), (53, 37, True)])
def test_lengths_that_blocks_do_not_divide(T, S, is_causal):
  q, k, v, cot = make(T=T, S=S)
  assert_flash_matches_reference(q, k, v, cot, is_causal=is_causal, block_q=16, block_k=16)


@pytest.mark.parametrize('block_q,block_k', [(8, 32), (32, 8)])
def test_unequal_blocks(block_q, block_k):
  q, k, v, cot = make()
  assert_flash_matches_reference(q, k, v, cot, is_causal=True, block_q=block_q, block_k=block_k)


def test_default_blocks():
  q, k, v, cot = make(B=1, T=300, S=300, N=2, K=2)
  assert_flash_matches_reference(q, k, v, cot, is_causal=True)


def test_multi_query_heads_with_key_padding_and_causal():
  q, k, v, cot = make(T=53, N=4, K=1)
  mask = attention.masks.padding(jnp.array([53, 20]), 53)  # [B, 1, 1, S]
  assert_flash_matches_reference(q, k, v, cot, mask=mask, is_causal=True, block_q=16, block_k=16)


def test_per_head_boolean_mask_with_a_key_bias():
  q, k, v, cot = make()
  mask = jax.random.bernoulli(jax.random.PRNGKey(5), 0.6, (2, 4, 37, 53))
  bias = jax.random.normal(jax.random.PRNGKey(6), (2, 1, 1, 53))  # its gradient sums over heads and queries
  assert_flash_matches_reference(q, k, v, cot, mask=mask, bias=bias, block_q=16, block_k=16)


def test_per_head_additive_bias_with_causal():
  q, k, v, cot = make()
  bias = jax.random.normal(jax.random.PRNGKey(6), (1, 4, 37, 53))
  assert_flash_matches_reference(q, k, v, cot, bias=bias, is_causal=True, block_q=16, block_k=16)


def test_fully_masked_rows_give_zeros_and_finite_gradients():
  q, k, v, cot = make()
  # Example 0: query rows 3..20 see no key at all (in every head); example 1: no key for any query.
  rows = (jnp.arange(37) < 3) | (jnp.arange(37) > 20)
  mask = jnp.stack([jnp.broadcast_to(rows[:, None], (37, 53)), jnp.zeros((37, 53), bool)])[:, None]
  out = assert_flash_matches_reference(q, k, v, cot, mask=mask, block_q=16, block_k=16)
  assert float(jnp.abs(out[0, 3:21]).max()) == 0.0 and float(jnp.abs(out[1]).max()) == 0.0


def test_bfloat16_stays_close_to_float32():
  q, k, v, _ = make()
  flash = jax.jit(lambda q, k, v: attention.flash(q, k, v, is_causal=True, block_q=16, block_k=16))
  out = flash(*(x.astype(jnp.bfloat16) for x in (q, k, v)))
  assert out.dtype == jnp.bfloat16
  ref = attention.dot_product(q, k, v, is_causal=True, implementation='reference')
  np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=5e-2, rtol=5e-2)
  # Scores in float32: large logits, where scores rounded to 16 bits would move the softmax, give the float32
  # result on the same values up to output rounding.
  for dtype in (jnp.bfloat16, jnp.float16):
    half = [x.astype(dtype) for x in (*large_logits(q, k), v)]
    out = flash(*half)
    ref = attention.dot_product(*(x.astype(jnp.float32) for x in half), is_causal=True, implementation='reference')
    np.testing.assert_allclose(out.astype(jnp.float32), ref, **half_tolerance(dtype))


def test_causal_skips_blocks_above_the_diagonal():
  d = _checks.Dims((1,), 1024, 1024, 8, 8, 64, 64)
  full = _blocked.make_plan(d, scale=1.0, scale_q=True, block_q=128, block_k=128)
  causal = _blocked.make_plan(d, scale=1.0, scale_q=True, right=0, block_q=128, block_k=128)
  visited = lambda p: sum(hi - lo for lo, _, _, hi in p.rows)
  masked = lambda p: sum((a - lo) + (hi - b) for lo, a, b, hi in p.rows)
  assert visited(full) == 64 and masked(full) == 0
  assert visited(causal) == 8 * 9 // 2 and masked(causal) == 8  # only the diagonal blocks form a mask


def test_default_blocks_are_tall_only_without_a_band_and_stay_exact(monkeypatch):
  # Shrunk block budget (one 16 x 16 block per head pair) so that a small call takes the tall-block rule.
  monkeypatch.setattr(_blocked, 'BLOCK_ELEMENTS', 2 * 16 * 16)
  monkeypatch.setattr(_blocked, 'MIN_BLOCK', 8)
  q, k, v, cot = make(B=1, T=90, S=53, N=2, K=1)
  plan = lambda q, k, v, **band: _blocked.make_plan(_checks.check_qkv(q, k, v), scale=1.0, scale_q=True, **band)
  assert (plan(q, k, v).bq, plan(q, k, v).bk) == (16 * _blocked.TALL, 16)
  assert plan(q, k, v, right=0).bq == 16 and plan(q, k, v, left=4, right=4).bq == 16  # a band keeps square blocks
  assert plan(q[..., :1, :], k, v).bq == 16  # few heads: blocks smaller than the budget stay square
  assert plan(q[:, :63], k, v).bq == 16  # fewer than 2 tall blocks
  assert_flash_matches_reference(q, k, v, cot)  # 3 tall query blocks, the last one padded
  assert_flash_matches_reference(q, k, v, cot, is_causal=True)
  # Causal calls go tall from CAUSAL_TALL_BLOCKS tall blocks on; a window never does.
  q, k, v, cot = make(B=1, T=300, S=300, N=2, K=1)
  assert plan(q, k, v, right=0).bq == _blocked._pick_block(300, None, 16 * _blocked.TALL) > 16
  assert plan(q, k, v, left=40, right=0).bq == 16
  assert_flash_matches_reference(q, k, v, cot, is_causal=True)


def test_dot_product_auto_takes_the_kernel_on_long_inputs():
  q, k, v, _ = make(B=1, T=256, S=256, N=2, K=2)
  jaxpr = str(jax.make_jaxpr(lambda q, k, v: attention.dot_product(q, k, v))(q, k, v))
  assert 'custom_vjp' in jaxpr
  short = str(jax.make_jaxpr(lambda q, k, v: attention.dot_product(q, k, v))(q[:, :8], k[:, :8], v[:, :8]))
  assert 'custom_vjp' not in short


def test_forward_and_backward_memory_is_far_below_the_score_matrix():
  T = S = 4096
  q, k, v = (jnp.zeros((1, L, 2, 32)) for L in (T, S, S))
  loss = lambda q, k, v: jnp.sum(attention.flash(q, k, v) ** 2)
  compiled = jax.jit(jax.grad(loss, (0, 1, 2))).lower(q, k, v).compile()  # compiled, never run
  stats = compiled.memory_analysis()
  if stats is None or getattr(stats, 'temp_size_in_bytes', None) is None:
    pytest.skip('this backend reports no memory analysis')
  scores_per_head = T * S * 4
  assert stats.temp_size_in_bytes < scores_per_head / 4, stats.temp_size_in_bytes


def test_gpu_path_is_guarded_and_falls_back_to_the_kernel(monkeypatch):
  flash_module = importlib.import_module('attention_research.attention.flash')  # the package exports the function
  q, k, v, _ = make(T=16, S=16)
  d = _checks.check_qkv(q, k, v)
  half = [x.astype(jnp.bfloat16) for x in (q, k, v)]
  assert not flash_module._cudnn_fits(*half, _checks.check_qkv(*half), None, None, False, None, None)  # CPU
  monkeypatch.setattr(flash_module.jax, 'default_backend', lambda: 'gpu')
  assert flash_module._cudnn_fits(*half, d, None, None, True, None, None)
  assert not flash_module._cudnn_fits(q, k, v, d, None, None, False, None, None)  # float32 stays on the kernel
  assert not flash_module._cudnn_fits(*half, d, jnp.ones((16, 16), bool), None, False, None, None)
  # On this CPU cuDNN refuses, so the call still answers, from the kernel.
  out = jax.jit(lambda q, k, v: attention.flash(q, k, v, is_causal=True))(*half)
  large = [x.astype(jnp.bfloat16) for x in (*large_logits(q, k), v)]
  out_large = jax.jit(lambda q, k, v: attention.flash(q, k, v, is_causal=True))(*large)
  monkeypatch.undo()
  ref = attention.dot_product(q, k, v, is_causal=True, implementation='reference')
  np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=5e-2, rtol=5e-2)
  ref_large = attention.dot_product(*(x.astype(jnp.float32) for x in large), is_causal=True,
                                    implementation='reference')
  np.testing.assert_allclose(out_large.astype(jnp.float32), ref_large, **half_tolerance(jnp.bfloat16))
