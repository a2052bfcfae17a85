import jax
import jax.numpy as jnp
import pytest


@pytest.fixture
def qkv():
  def make(B=2, T=6, S=6, N=4, K=2, H=8, V=None, dtype=jnp.float32, seed=0):
    ks = jax.random.split(jax.random.PRNGKey(seed), 3)
    q = jax.random.normal(ks[0], (B, T, N, H), dtype)
    k = jax.random.normal(ks[1], (B, S, K, H), dtype)
    v = jax.random.normal(ks[2], (B, S, K, V or H), dtype)
    return q, k, v
  return make
