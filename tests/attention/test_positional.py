import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research.attention import masks, positional


def test_rope_scores_depend_only_on_relative_position():
  q = jax.random.normal(jax.random.PRNGKey(0), (1, 1, 1, 8))
  k = jax.random.normal(jax.random.PRNGKey(1), (1, 1, 1, 8))
  def score(i, j):
    return jnp.sum(positional.rope(q, jnp.array([i])) * positional.rope(k, jnp.array([j])))
  np.testing.assert_allclose(score(3, 1), score(10, 8), rtol=1e-5)
  np.testing.assert_allclose(score(0, 0), jnp.sum(q * k), rtol=1e-5)
  assert abs(float(score(3, 1) - score(3, 2))) > 1e-4


def test_rope_preserves_norm_and_rejects_odd_head_size():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 3, 8))
  np.testing.assert_allclose(jnp.linalg.norm(positional.rope(x), axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5)
  with pytest.raises(ValueError, match='even'):
    positional.rope(x[..., :7])


def test_alibi_slopes_of_the_paper():
  np.testing.assert_allclose(positional.alibi_slopes(8), [2.0 ** -(i + 1) for i in range(8)], rtol=1e-6)
  assert positional.alibi_slopes(6).shape == (6,)
  b = positional.alibi_bias(2, 3)
  np.testing.assert_allclose(b[0], -0.0625 * np.abs(np.arange(3)[None] - np.arange(3)[:, None]), rtol=1e-6)


def test_sinusoidal_values():
  table = positional.sinusoidal(4, 6)
  np.testing.assert_allclose(table[0], [0, 0, 0, 1, 1, 1], atol=1e-7)
  np.testing.assert_allclose(table[2, 0], np.sin(2.0), rtol=1e-6)
  with pytest.raises(ValueError, match='even'):
    positional.sinusoidal(4, 5)


def test_t5_buckets_are_exact_near_and_logarithmic_far():
  rel = jnp.arange(-200, 201)
  b = positional.relative_position_bucket(rel, num_buckets=32, max_distance=128)
  assert len(set(np.asarray(b[195:206]).tolist())) == 11  # distances -5..5 each have their own bucket
  assert int(b.max()) < 32 and int(b.min()) >= 0
  assert int(b[0]) == int(b[50])  # beyond max_distance everything shares the last bucket
  table = jnp.arange(32 * 2, dtype=jnp.float32).reshape(32, 2)
  assert positional.t5_relative_bias(table, 5, 7).shape == (2, 5, 7)


def test_mask_helpers():
  np.testing.assert_array_equal(masks.causal(2, 3), [[1, 1, 0], [1, 1, 1]])
  np.testing.assert_array_equal(masks.padding(jnp.array([1, 3]), 3)[:, 0, 0], [[1, 0, 0], [1, 1, 1]])
  np.testing.assert_array_equal(masks.local(3, 3, (1, 0)), [[1, 0, 0], [1, 1, 0], [0, 1, 1]])
  seg = masks.segments(jnp.array([[1, 1, 2]]))
  np.testing.assert_array_equal(seg[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
  np.testing.assert_array_equal(masks.from_ids(jnp.array([[5, 0]]))[0, 0, 0], [True, False])
  assert masks.combine(None, None) is None
  with pytest.raises(ValueError, match='window'):
    masks.local(3, 3, (-1, 0))
