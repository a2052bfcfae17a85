import jax.numpy as jnp
import numpy as np
import pytest

from attention_research.attention import masks


def test_key_padding_from_lengths():
  m = masks.key_padding(jnp.array([3, 0, 5]), max_length=5)
  assert m.shape == (3, 1, 1, 5) and m.dtype == jnp.bool_
  np.testing.assert_array_equal(m[:, 0, 0], np.arange(5)[None, :] < np.array([3, 0, 5])[:, None])


def test_key_padding_from_masks():
  valid = np.array([[True, True, False], [True, False, False]])
  m = masks.key_padding(valid)
  assert m.shape == (2, 1, 1, 3)
  np.testing.assert_array_equal(m[:, 0, 0], valid)
  np.testing.assert_array_equal(masks.key_padding(m), m)
  np.testing.assert_array_equal(masks.key_padding(valid.astype(np.int32)), m)
  assert masks.key_padding(None) is None


@pytest.mark.parametrize('arg, kw, match', [
    (np.ones((2, 3, 4), bool), {}, r'\[B, S\]'),
    (np.ones((2, 4, 1, 3), bool), {}, r'\(2, 4, 1, 3\)'),
    (np.array([3, 1]), {}, 'max_length'),
    (np.array([True, False]), {'max_length': 2}, 'integer lengths'),
    (np.ones((2, 3), bool), {'max_length': 4}, 'max_length=4'),
])
def test_key_padding_bad_shapes_raise(arg, kw, match):
  with pytest.raises(ValueError, match=match):
    masks.key_padding(arg, **kw)
