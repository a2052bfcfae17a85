"""An image classifier with an optional spatial transformer in front (Jaderberg et al. 2015).

image [B, H, W, C] -> SpatialTransformer -> rectified [B, h, w, C] -> backbone -> logits [B, num_classes].
The backbone is a small CNN (two conv + max-pool stages and a hidden layer, the paper's baseline shape) or a
ViT over any registered attention variant (`attention`, as in ViTConfig). `stn=False` gives the baseline the
transformer is measured against: the same backbone on the image resampled to the same h x w through the fixed
identity transform (bilinear; at half size that is 2x2 average pooling), so the two differ only in the learned
transform.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict

from attention_research import attention
from attention_research.layers.spatial_transformer import IDENTITY, SpatialTransformer, warp
from attention_research.models._checks import check_positive
from attention_research.models.transformer import freeze_layer_options, parse_variants
from attention_research.models.vit import ViT, ViTConfig, _pair

BACKBONES = ('cnn', 'vit')


@dataclasses.dataclass(frozen=True)
class STNConfig:
  """image_size / backbone_size / patch_size: int or (H, W); backbone_size (the transformer's output grid, the
  backbone's input) None = image_size.
  localisation_scale multiplies how far each step moves the transform (its own learning rate, in effect);
  localisation_bounded keeps each entry of the transform within 1 of the identity (LocalisationNet).
  The ViT fields (patch_size ... patch_embedding) mean what they mean in ViTConfig; the CNN ignores them."""
  image_size: Any = 40
  channels: int = 1
  num_classes: int = 10
  backbone: str = 'cnn'
  stn: bool = True
  backbone_size: Any = None
  localisation_features: int = 16
  localisation_hidden: int = 64
  localisation_scale: float = 1.0
  localisation_pool: int = 2
  localisation_bounded: bool = False
  cnn_features: tuple[int, ...] = (16, 32)
  cnn_hidden: int = 64
  patch_size: Any = 5
  d_model: int = 64
  num_heads: int = 4
  num_layers: int = 2
  mlp_dim: int | None = None
  dropout_rate: float = 0.0
  positional: str = 'learned'
  attention: str | tuple[str, ...] = attention.DEFAULT_VARIANT
  attention_options: Mapping[str, Any] | tuple[Mapping[str, Any], ...] = dataclasses.field(default_factory=FrozenDict)
  pooling: str = 'mean'
  patch_embedding: str = 'conv'

  def __post_init__(self):
    if self.backbone not in BACKBONES:
      raise ValueError(f'unknown backbone {self.backbone!r}; known: {BACKBONES}.')
    for name in ('stn', 'localisation_bounded'):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f'{name} must be True or False; got {getattr(self, name)!r}.')
    object.__setattr__(self, 'image_size', _pair('image_size', self.image_size))
    out = self.image_size if self.backbone_size is None else _pair('backbone_size', self.backbone_size)
    object.__setattr__(self, 'backbone_size', out)
    object.__setattr__(self, 'patch_size', _pair('patch_size', self.patch_size))
    features = tuple(self.cnn_features)
    object.__setattr__(self, 'cnn_features', features)
    for name, value in (('channels', self.channels), ('num_classes', self.num_classes),
                        ('localisation_features', self.localisation_features),
                        ('localisation_hidden', self.localisation_hidden),
                        ('localisation_pool', self.localisation_pool), ('cnn_hidden', self.cnn_hidden),
                        *((f'cnn_features[{i}]', f) for i, f in enumerate(features))):
      check_positive(name, value)
    if not features:
      raise ValueError('cnn_features must name at least one convolution stage; got ().')
    if isinstance(self.localisation_scale, bool) or not float(self.localisation_scale) > 0:
      raise ValueError(f'localisation_scale must be > 0; got {self.localisation_scale!r}.')
    # Hashable like ViTConfig's (the config is a static argument of compiled steps); the CNN ignores them.
    object.__setattr__(self, 'attention', parse_variants(self.attention))
    object.__setattr__(self, 'attention_options', freeze_layer_options(self.attention_options))
    if self.backbone == 'vit':
      self.vit_config()  # validates the ViT fields against the backbone's input size
    elif min(self.backbone_size) < 2 ** len(features):
      raise ValueError(f'{len(features)} max-pool stages need inputs of at least {2 ** len(features)} pixels a side; '
                       f'the CNN sees {self.backbone_size}.')

  @property
  def grid(self) -> tuple[int, int]:
    """The ViT's patch grid (what attention plots of a ViT read)."""
    return self.vit_config().grid

  def vit_config(self) -> ViTConfig:
    return ViTConfig(image_size=self.backbone_size, patch_size=self.patch_size, channels=self.channels,
                     num_classes=self.num_classes, d_model=self.d_model, num_heads=self.num_heads,
                     num_layers=self.num_layers, mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
                     positional=self.positional, attention=self.attention, attention_options=self.attention_options,
                     pooling=self.pooling, patch_embedding=self.patch_embedding)


class CNN(nnx.Module):
  """image [B, H, W, C] -> logits: per stage a 3x3 convolution, ReLU and 2x2 max-pooling; then a hidden layer."""

  def __init__(self, image_hw: tuple[int, int], channels: int, features: tuple[int, ...], hidden: int,
               num_classes: int, *, rngs: nnx.Rngs):
    sizes = (channels, *features)
    self.convs = nnx.List([nnx.Conv(a, b, kernel_size=(3, 3), rngs=rngs) for a, b in zip(sizes, sizes[1:])])
    h, w = image_hw
    for _ in features:
      h, w = h // 2, w // 2
    self.hidden = nnx.Linear(h * w * features[-1], hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

  def __call__(self, image_BHWC):
    x = image_BHWC
    for conv in self.convs:
      x = nnx.max_pool(nnx.relu(conv(x)), window_shape=(2, 2), strides=(2, 2))
    return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))


class STNClassifier(nnx.Module):
  """image [B, H, W, C] -> logits [B, num_classes]; `rectify(image)` gives what the backbone sees."""

  Config = STNConfig

  def __init__(self, cfg: STNConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    if cfg.stn:
      self.transformer = SpatialTransformer(cfg.image_size, cfg.channels, out_hw=cfg.backbone_size,
                                            features=cfg.localisation_features, hidden=cfg.localisation_hidden,
                                            scale=cfg.localisation_scale, pool=cfg.localisation_pool,
                                            bounded=cfg.localisation_bounded, rngs=rngs)
    if cfg.backbone == 'cnn':
      self.backbone = CNN(cfg.backbone_size, cfg.channels, cfg.cnn_features, cfg.cnn_hidden, cfg.num_classes,
                          rngs=rngs)
    else:
      self.backbone = ViT(cfg.vit_config(), rngs=rngs)

  def rectify(self, image):
    """The backbone's input [B, h, w, C]: the transformer's output, or the image through the identity."""
    cfg = self.cfg
    (H, W), C = cfg.image_size, cfg.channels
    if image.ndim != 4 or tuple(image.shape[1:]) != (H, W, C):
      raise ValueError(f'expected images [B, {H}, {W}, {C}]; got shape {image.shape}.')
    image = jnp.asarray(image, jnp.float32)
    if cfg.stn:
      return self.transformer(image)
    if cfg.backbone_size == cfg.image_size:
      return image
    return warp(image, jnp.broadcast_to(jnp.asarray(IDENTITY, jnp.float32).reshape(1, 2, 3), (image.shape[0], 2, 3)),
                cfg.backbone_size)

  def __call__(self, image, *, deterministic: bool = True):
    x = self.rectify(image)
    if self.cfg.backbone == 'vit':
      return self.backbone(x, deterministic=deterministic)
    return self.backbone(x)
