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
