"""The Conformer encoder with explicit sizes: padding never reaches real frames, and bad sizes raise."""

import jax
import numpy as np
import pytest
from flax import nnx

from attention_research.layers.conformer import ConformerBlock, ConformerStack


@pytest.mark.parametrize('positional,variant', [('sinusoidal', 'dot_product'), ('rope', 'linear')])
def test_padding_does_not_change_real_frames(positional, variant):
  stack = ConformerStack(2, 16, 2, 32, 3, positional=positional, max_length=16,
                         attention_kwargs=dict(variant=variant, use_rope=positional == 'rope'), rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 9, 16))
  valid = np.arange(9)[None, :] < np.array([[9], [5]])
  noisy = np.where(valid[..., None], x, 100.0 * jax.random.normal(jax.random.key(2), x.shape))
  out, out_noisy = stack(x, valid), stack(noisy, valid)
  assert out.shape == (2, 9, 16)
  np.testing.assert_allclose(np.where(valid[..., None], out, 0), np.where(valid[..., None], out_noisy, 0),
                             atol=1e-5)


def test_bad_sizes_raise():
  with pytest.raises(ValueError, match='kernel_size must be odd'):
    ConformerBlock(16, 2, 32, 4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="unknown positional 'alibi'"):
    ConformerStack(1, 16, 2, 32, 3, positional='alibi', rngs=nnx.Rngs(0))
