"""The Pallas forward kernel for GPU (run here through Pallas's interpreter) against the reference.

Values in float32 (the interpreter computes the kernel's arithmetic exactly as written) and in bfloat16 (the
dtype the GPU dispatch takes), gradients through its custom VJP, and the dispatch rule on a CPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from attention_research.attention import _blocked, _checks, _pallas_gpu, masks

UNBOUNDED = _blocked.UNBOUNDED


def make(B=2, T=37, S=53, N=4, K=2, H=16, dtype=jnp.float32, seed=0):
  ks = jax.random.split(jax.random.PRNGKey(seed), 3)
  return tuple(jax.random.normal(key, (B, L, heads, H), dtype)
               for key, L, heads in ((ks[0], T, N), (ks[1], S, K), (ks[2], S, K)))


def pallas(q, k, v, *, mask=None, left=UNBOUNDED, right=UNBOUNDED, sinks=None, soft_cap=None):
  d = _checks.check_qkv(q, k, v)
  return _pallas_gpu.attention(q, k, v, d, mask=mask, scale=None, left=left, right=right, sinks=sinks,
                               soft_cap=soft_cap, interpret=True)


def band(T, S, left, right):
  return masks.local(T, S, (min(left, S), min(right, S)))


CASES = {
    'plain': {},
    'causal': {'right': 0},
    'window (4, 2)': {'left': 4, 'right': 2},
    'causal window 5': {'left': 5, 'right': 0},
    'soft cap 2': {'soft_cap': 2.0},
    'sinks': {'sinks': jnp.array([0.5, -1.0, 2.0, 0.0])},
}


@pytest.mark.parametrize('name', CASES)
def test_values_equal_reference(name):
  q, k, v = make()
  opts = CASES[name]
  left, right = opts.get('left', UNBOUNDED), opts.get('right', UNBOUNDED)
  want = attention.reference(q, k, v, mask=band(37, 53, left, right), sinks=opts.get('sinks'),
                             logit_soft_cap=opts.get('soft_cap'))
  np.testing.assert_allclose(pallas(q, k, v, **opts), want, atol=2e-6, rtol=2e-6)


def test_boolean_masks_and_rows_that_see_nothing():
  q, k, v = make()
  rng = np.random.default_rng(0)
  mask = jnp.asarray(rng.random((2, 4, 37, 53)) < 0.6).at[1, 2, 5].set(False)  # one row sees no key: zeros
  out = pallas(q, k, v, mask=mask)
  np.testing.assert_allclose(out, attention.reference(q, k, v, mask=mask), atol=2e-6, rtol=2e-6)
  np.testing.assert_array_equal(out[1, 5, 2], 0.0)
  padding = jnp.arange(53)[None, None, None, :] < jnp.array([53, 20])[:, None, None, None]  # [B, 1, 1, S]
  np.testing.assert_allclose(pallas(q, k, v, mask=padding, right=0),
                             attention.reference(q, k, v, mask=padding, is_causal=True), atol=2e-6, rtol=2e-6)


def test_bfloat16_within_rounding():
  q, k, v = make(T=70, S=140, N=4, K=1, H=32, dtype=jnp.bfloat16)
  f32 = lambda x: x.astype(jnp.float32)
  got = f32(pallas(q, k, v, right=0, soft_cap=5.0))
  want = attention.reference(f32(q), f32(k), f32(v), is_causal=True, logit_soft_cap=5.0)
  np.testing.assert_allclose(got, want, atol=4 * 2.0**-8, rtol=4 * 2.0**-8)


def test_gradients_equal_reference():
  q, k, v = make(T=20, S=30)
  sinks = jnp.array([0.5, -1.0, 2.0, 0.0])
  cot = jax.random.normal(jax.random.PRNGKey(5), q.shape)
  mask = band(20, 30, 6, 0)

  def grads(fn):
    return jax.grad(lambda q, k, v, s: jnp.sum(fn(q, k, v, s) * cot), (0, 1, 2, 3))(q, k, v, sinks)

  got = grads(lambda q, k, v, s: pallas(q, k, v, left=6, right=0, sinks=s, soft_cap=3.0))
  want = grads(lambda q, k, v, s: attention.reference(q, k, v, mask=mask, sinks=s, logit_soft_cap=3.0))
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_batch_dimensions_are_flattened_and_restored():
  q, k, v = (x.reshape((2, 1) + x.shape[1:]) for x in make())
  np.testing.assert_allclose(pallas(q, k, v, right=0), attention.reference(q, k, v, is_causal=True),
                             atol=2e-6, rtol=2e-6)


def test_dispatch_only_on_gpu_for_half_precision_and_power_of_two_heads():
  q, k, v = make(dtype=jnp.bfloat16)
  d = _checks.check_qkv(q, k, v)
  assert _pallas_gpu.supported(q, k, v, d)
  assert _pallas_gpu.fits(q, k, v, d, None) == (jax.default_backend() == 'gpu')
  assert not _pallas_gpu.supported(*make(), _checks.check_qkv(*make()))  # float32 stays on the blocked kernel
  q8, k8, v8 = make(H=24, dtype=jnp.bfloat16)
  assert not _pallas_gpu.supported(q8, k8, v8, _checks.check_qkv(q8, k8, v8))


def test_compile_probe_accepts_the_kernel_and_refuses_a_failing_one(monkeypatch):
  assert _pallas_gpu.compiles('bfloat16', 16, True, True, True, interpret=True)
  assert _pallas_gpu.compiles('float16', 32, False, False, False, interpret=True)

  def broken(*args, **kwargs):
    raise NotImplementedError('no lowering for this op')
  monkeypatch.setattr(_pallas_gpu, '_forward', broken)
  _pallas_gpu.compiles.cache_clear()
  assert not _pallas_gpu.compiles('bfloat16', 16, None, False, False, interpret=True)
  _pallas_gpu.compiles.cache_clear()
