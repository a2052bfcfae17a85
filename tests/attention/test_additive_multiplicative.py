import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from attention_research.attention.additive import init_params as additive_params


def test_additive_equals_a_plain_loop():
  ks = jax.random.split(jax.random.PRNGKey(0), 3)
  q, k, v = jax.random.normal(ks[0], (1, 2, 1, 3)), jax.random.normal(ks[1], (1, 4, 1, 5)), jax.random.normal(
      ks[2], (1, 4, 1, 2))
  p = additive_params(jax.random.PRNGKey(1), 3, 5, 6)
  out, w = attention.additive(q, k, v, params=p, return_weights=True)
  qn, kn, vn = (np.asarray(x, np.float64) for x in (q, k, v))
  for t in range(2):
    e = np.array([np.asarray(p['v']) @ np.tanh(qn[0, t, 0] @ np.asarray(p['w_q']) + kn[0, s, 0] @ np.asarray(p['w_k']))
                  for s in range(4)])
    a = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
    np.testing.assert_allclose(w[0, 0, t], a, rtol=1e-5)
    np.testing.assert_allclose(out[0, t, 0], a @ vn[:, :, 0].reshape(4, 2), rtol=1e-5)


def test_additive_bad_params_name_their_shapes(qkv):
  q, k, v = qkv()
  with pytest.raises(ValueError, match='needs params'):
    attention.additive(q, k, v, params={'w_q': 1})
  with pytest.raises(ValueError, match='do not fit'):
    attention.additive(q, k, v, params=additive_params(jax.random.PRNGKey(0), 5, 8, 4))


def test_luong_dot_and_general(qkv):
  q, k, v = qkv()
  np.testing.assert_allclose(attention.multiplicative(q, k, v),
                             attention.dot_product(q, k, v, scale=1.0, implementation='reference'), atol=1e-6)
  w = jax.random.normal(jax.random.PRNGKey(3), (8, 8))
  np.testing.assert_allclose(attention.multiplicative(q, k, v, params={'w': w}),
                             attention.dot_product(q @ w, k, v, scale=1.0, implementation='reference'), atol=1e-5)
  with pytest.raises(ValueError, match="'w'"):
    attention.multiplicative(q, k, v, params={'w': w[:3]})
