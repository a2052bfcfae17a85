"""STNClassifier: both backbones, the spatial transformer's starting point, and its checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research.models.stn import STNClassifier, STNConfig

SMALL = dict(image_size=16, backbone_size=8, localisation_features=4, localisation_hidden=8, cnn_features=(4,),
             cnn_hidden=8, patch_size=4, d_model=16, num_heads=2, num_layers=1, mlp_dim=16)


def test_at_initialisation_the_transformer_feeds_the_backbone_what_the_baseline_sees():
  # Identity init: with and without the transformer the backbone starts from the same 8x8 resampling of the
  # image (2x2 averages), so any difference after training is the learned transform's.
  image = jax.random.uniform(jax.random.key(0), (2, 16, 16, 1))
  with_stn = STNClassifier(STNConfig(**SMALL, stn=True), rngs=nnx.Rngs(0))
  without = STNClassifier(STNConfig(**SMALL, stn=False), rngs=nnx.Rngs(0))
  pooled = image.reshape(2, 8, 2, 8, 2, 1).mean(axis=(2, 4))
  rectified = nnx.jit(lambda a, b: (a.rectify(image), b.rectify(image)))(without, with_stn)
  for r in rectified:
    np.testing.assert_allclose(r, pooled, atol=1e-5)


def test_vit_backbone_with_another_variant_trains_through_the_transformer():
  model = STNClassifier(STNConfig(**SMALL, backbone='vit', attention='linear'), rngs=nnx.Rngs(0))
  image = jax.random.uniform(jax.random.key(1), (3, 16, 16, 1))
  assert model.cfg.grid == (2, 2)

  @nnx.jit
  def logits_and_grads(model):
    loss = lambda model: jnp.mean(jax.nn.log_softmax(model(image))[:, 0])
    return model(image), nnx.grad(loss)(model)

  logits, grads = logits_and_grads(model)
  assert logits.shape == (3, 10)
  assert float(jnp.abs(grads.transformer.localisation.head.bias[...]).max()) > 0


@pytest.mark.parametrize('fields, match', [
    (dict(backbone='resnet'), "unknown backbone 'resnet'"),
    (dict(localisation_scale=0.0), 'localisation_scale must be > 0'),
    (dict(backbone_size=2, cnn_features=(4, 4)), 'max-pool stages need inputs of at least 4'),
    (dict(backbone='vit', patch_size=3), 'does not divide'),
])
def test_bad_config_raises_value_error(fields, match):
  with pytest.raises(ValueError, match=match):
    STNConfig(**{**SMALL, **fields})


def test_bad_image_raises_value_error():
  model = STNClassifier(STNConfig(**SMALL), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r'expected images \[B, 16, 16, 1\]'):
    model(jnp.zeros((2, 16, 16, 3)))
