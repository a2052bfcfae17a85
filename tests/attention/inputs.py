"""Inputs and gradient checks shared by the tests of the approximate variants.

Inputs come from numpy: eager jax.random compiles anew for every shape, which dominates small tests.
"""

import jax
import jax.numpy as jnp
import numpy as np


def normal(seed, shape, std=1.0):
  return jnp.asarray(std * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def qkv(T, S, N=4, K=2, H=8, V=6, batch=(2,), seed=0, std=1.0):
  """q [*batch, T, N, H] and k [*batch, S, K, H] with standard deviation std; v [*batch, S, K, V]."""
  return (normal(seed, batch + (T, N, H), std), normal(seed + 1, batch + (S, K, H), std),
          normal(seed + 2, batch + (S, K, V)))


def large_logits(q, k, offset=53.0):
  """q, k with a common first feature `offset`: every score gains offset**2 * scale (about 1000 for H=8) while
  their differences stay O(1). Softmax ignores the shift, but scores rounded to 16 bits before it lose their
  differences (bfloat16 spacing at 1000 is 4, float16's 0.5), so outputs then move by far more than rounding."""
  return q.at[..., 0].set(offset), k.at[..., 0].set(offset)


def half_tolerance(dtype):
  """Error of a half-precision result computed in float32 from the same (half) values: its output rounding
  and the weights cast to the value dtype for the weighted sum (2**-8 for bfloat16, 2**-11 for float16)."""
  eps = 2.0**-8 if dtype == jnp.bfloat16 else 2.0**-11
  return dict(atol=4 * eps, rtol=4 * eps)


def key_mask(S, batch=2, seed=1):
  """A random key padding mask [batch, 1, 1, S] that keeps the first key, so no row is empty."""
  m = np.random.default_rng(seed).random((batch, 1, 1, S)) < 0.7
  m[..., 0] = True
  return jnp.asarray(m)


def out_and_grads(fn, q, k, v, **kw):
  """Output and gradients of a random projection of it, under jit (one compile instead of op-by-op dispatch)."""
  ct = normal(9, q.shape[:-1] + v.shape[-1:])

  def loss(q, k, v):
    out = fn(q, k, v, **kw)
    return jnp.sum(out * ct), out

  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(q, k, v)
  return out, grads
