"""The cases of experiments.gpu_check: which path each `flash` (or `local`) call takes, and its error against
the reference.

Each case runs `flash` on bfloat16 inputs and compares it with the float32 reference of the same (rounded)
inputs, output and gradients of q, k, v, within bfloat16's rounding (4 x 2^-8 relative, as the CPU tests allow).
"""

import jax
import jax.numpy as jnp
import numpy as np

from attention_research import attention
from attention_research.attention import _dense, masks

RTOL = ATOL = 4 * 2.0**-8


def cases(L, H):
  """name -> (T, K, keyword arguments of flash)."""
  rng = np.random.default_rng(0)
  mask = jnp.asarray(rng.random((1, 1, L, L)) < 0.8).at[..., 0].set(True)
  bias = jnp.asarray(rng.standard_normal((1, 8, L, L)), jnp.bfloat16)
  return {
      'plain': (L, 8, {}),
      'causal': (L, 8, {'is_causal': True}),
      'grouped K=2': (L, 2, {}),
      'bias': (L, 8, {'bias': bias}),
      'boolean mask': (L, 8, {'mask': mask}),
      'soft cap 30': (L, 8, {'logit_soft_cap': 30.0}),
      'sinks': (L, 8, {'sinks': jnp.zeros((8,), jnp.float32)}),
      'decode T=1': (1, 8, {}),
      'causal local window L/4': (L, 8, {'window': (L // 4, 0)}),
      'grouped K=2, key padding, soft cap': (L, 2, {'mask': mask[..., :1, :], 'is_causal': True,
                                                   'logit_soft_cap': 30.0}),
  }


def path_of(fn, q, k, v) -> str:
  text = jax.jit(fn).lower(q, k, v).compile().as_text().lower()
  if 'cudnn' in text:
    return 'cudnn'
  if 'triton' in text:  # the Pallas kernel of _pallas_gpu, lowered through Triton
    return 'pallas kernel'
  return 'decoding form' if q.shape[-3] * q.shape[-2] <= _dense.FEW_QUERY_ROWS else 'blocked kernel'


def check(name, T, K, options, L, H) -> dict:
  ks = jax.random.split(jax.random.PRNGKey(1), 4)
  q = jax.random.normal(ks[0], (1, T, 8, H), jnp.bfloat16)
  k = jax.random.normal(ks[1], (1, L, K, H), jnp.bfloat16)
  v = jax.random.normal(ks[2], (1, L, K, H), jnp.bfloat16)
  cot = jax.random.normal(ks[3], (1, T, 8, H), jnp.float32)
  as_f32 = lambda x: x.astype(jnp.float32) if hasattr(x, 'dtype') and x.dtype == jnp.bfloat16 else x
  ref_options = {key: as_f32(x) for key, x in options.items()}

  def run(fn, q, k, v):
    loss = lambda q, k, v: jnp.sum(fn(q, k, v).astype(jnp.float32) * cot)
    return jax.jit(lambda q, k, v: (fn(q, k, v), jax.grad(loss, (0, 1, 2))(q, k, v)))(q, k, v)

  if 'window' in options:  # sliding-window attention: `local`, against the reference with its band as a mask
    flash = lambda q, k, v: attention.local(q, k, v, **options)
    band = masks.local(T, L, options['window'])
    reference = lambda q, k, v: attention.reference(q, k, v, mask=band)
  else:
    flash = lambda q, k, v: attention.flash(q, k, v, **options)
    reference = lambda q, k, v: attention.reference(q, k, v, **ref_options)
  got = run(flash, q, k, v)
  want = run(reference, *(x.astype(jnp.float32) for x in (q, k, v)))
  errors = [float(jnp.max(jnp.abs(a.astype(jnp.float32) - b) / (ATOL + RTOL * jnp.abs(b))))
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))]
  return {'case': name, 'path': path_of(flash, q, k, v), 'worst error / tolerance': max(errors),
          'ok': max(errors) <= 1.0}
