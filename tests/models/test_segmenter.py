"""Segmenter: per-pixel logits, the mask tokens' attention over patches, class tokens as a set, bad input."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research.layers import capture_attention
from attention_research.models.segmenter import Segmenter, SegmenterConfig

TINY = dict(image_size=16, patch_size=4, channels=1, num_classes=5, d_model=16, num_heads=2, num_layers=1,
            mlp_dim=32)


IMAGE = np.random.default_rng(0).uniform(size=(2, 16, 16, 1)).astype(np.float32)


def test_pixel_logits_mask_token_attention_over_patches_and_class_tokens_as_a_set():
  model = Segmenter(SegmenterConfig(**TINY, attention='linear'), rngs=nnx.Rngs(0))
  call = nnx.jit(lambda m: capture_attention(lambda m: m(IMAGE), m))
  logits, maps = call(model)
  assert logits.shape == (2, 16, 16, 5) and logits.dtype == jnp.float32
  assert {k: [w.shape for w in v] for k, v in maps.items()} == {
      'encoder': [(2, 2, 16, 16)], 'self': [(2, 2, 5, 5)], 'cross': [(2, 2, 5, 16)]}
  np.testing.assert_allclose(np.asarray(maps['cross'][0]).sum(-1), 1.0, rtol=1e-5)
  # The class tokens carry no positions, so permuting them permutes the output classes (the mask norm's per-class
  # scale and bias are still 1 and 0 at initialisation).
  perm = np.array([3, 0, 4, 1, 2])
  model.class_tokens[...] = model.class_tokens[...][:, perm]
  np.testing.assert_allclose(call(model)[0], logits[..., perm], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('overrides, match', [
    ({'num_classes': 1}, 'num_classes must be >= 2'),
    ({'patch_size': 5}, 'does not divide'),
    ({'decoder_layers': 0}, 'decoder_layers'),
    ({'attention': 'nope'}, "unknown attention variant 'nope'"),
])
def test_bad_configs_are_clear_errors(overrides, match):
  with pytest.raises(ValueError, match=match):
    SegmenterConfig(**{**TINY, **overrides})


def test_wrong_image_shape_is_a_clear_error():
  model = Segmenter(SegmenterConfig(**TINY), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r'expected images \[B, 16, 16, 1\]'):
    model(np.zeros((2, 16, 16, 3), np.float32))
