"""A small Vision Transformer (Dosovitskiy et al. 2021) classifier over any registered attention variant.

image [B, H, W, C] -> patches [B, P, D] (conv or reshape + linear) -> [cls +] TransformerStack -> logits [B, C].
Patches are in raster order, so 1-D positional schemes (learned by default) see a flattened grid.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict

from attention_research import attention
from attention_research.models._checks import check_positive
from attention_research.models.transformer import POOLINGS, TransformerConfig, TransformerStack
from attention_research.models.transformer import freeze_layer_options, parse_variants

PATCH_EMBEDDINGS = ('conv', 'linear')


def _pair(name, value) -> tuple[int, int]:
  pair = (value, value) if isinstance(value, int) else tuple(value)
  if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair):
    raise ValueError(f'{name} must be a positive int or a pair of them; got {value!r}.')
  return pair


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """image_size: int or (H, W); patch_size: int or (h, w) dividing it; pooling 'cls' or 'mean';
  patch_embedding 'conv' or 'linear' (the same map; 'linear' flattens each patch). The remaining fields mean
  what they mean in TransformerConfig."""
  image_size: Any = 32
  patch_size: Any = 4
  channels: int = 3
  num_classes: int = 10
  d_model: int = 64
  num_heads: int = 4
  num_kv_heads: int | None = None
  num_layers: int = 4
  mlp_dim: int | None = None
  dropout_rate: float = 0.0
  positional: str = 'learned'
  attention: str | tuple[str, ...] = attention.DEFAULT_VARIANT  # or one per layer, as in TransformerConfig
  attention_options: Mapping[str, Any] | tuple[Mapping[str, Any], ...] = dataclasses.field(default_factory=FrozenDict)
  pooling: str = 'cls'
  patch_embedding: str = 'conv'

  def __post_init__(self):
    image, patch = _pair('image_size', self.image_size), _pair('patch_size', self.patch_size)
    object.__setattr__(self, 'image_size', image)
    object.__setattr__(self, 'patch_size', patch)
    object.__setattr__(self, 'attention', parse_variants(self.attention))
    object.__setattr__(self, 'attention_options', freeze_layer_options(self.attention_options))
    if image[0] % patch[0] or image[1] % patch[1]:
      raise ValueError(f'patch_size={patch} does not divide image_size={image}.')
    for name in ('channels', 'num_classes'):
      check_positive(name, getattr(self, name))
    if self.pooling not in POOLINGS:
      raise ValueError(f'unknown pooling {self.pooling!r}; known: {POOLINGS}.')
    if self.patch_embedding not in PATCH_EMBEDDINGS:
      raise ValueError(f'unknown patch_embedding {self.patch_embedding!r}; known: {PATCH_EMBEDDINGS}.')
    self.encoder_config()  # validates heads, variant, positional scheme, dropout

  @property
  def grid(self) -> tuple[int, int]:
    return self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1]

  @property
  def num_patches(self) -> int:
    return self.grid[0] * self.grid[1]

  def encoder_config(self) -> TransformerConfig:
    return TransformerConfig(
        d_model=self.d_model, num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
        num_encoder_layers=self.num_layers, num_decoder_layers=self.num_layers, mlp_dim=self.mlp_dim,
        dropout_rate=self.dropout_rate,
        max_length=self.num_patches + (self.pooling == 'cls'), positional=self.positional,
        attention=self.attention, attention_options=self.attention_options, num_classes=self.num_classes,
        pooling=self.pooling)


def patch_embedding(cfg, *, rngs: nnx.Rngs) -> nnx.Module:
  """The patch embedding cfg.patch_embedding names ('conv' or 'linear'), for any config with the ViT's image and
  patch fields (ViTConfig, SegmenterConfig)."""
  ph, pw = cfg.patch_size
  if cfg.patch_embedding == 'conv':
    return nnx.Conv(cfg.channels, cfg.d_model, kernel_size=(ph, pw), strides=(ph, pw), padding='VALID', rngs=rngs)
  return nnx.Linear(ph * pw * cfg.channels, cfg.d_model, rngs=rngs)


def embed_patches(cfg, patch_embed: nnx.Module, image):
  """image [B, H, W, C] -> patch embeddings [B, P, D] in raster order, through patch_embedding(cfg)'s module."""
  (H, W), C = cfg.image_size, cfg.channels
  if image.ndim != 4 or tuple(image.shape[1:]) != (H, W, C):
    raise ValueError(f'expected images [B, {H}, {W}, {C}]; got shape {image.shape}.')
  image = jnp.asarray(image, jnp.float32)
  B, (gh, gw), (ph, pw) = image.shape[0], cfg.grid, cfg.patch_size
  if cfg.patch_embedding == 'conv':
    return patch_embed(image).reshape(B, gh * gw, cfg.d_model)
  x = image.reshape(B, gh, ph, gw, pw, C).transpose(0, 1, 3, 2, 4, 5).reshape(B, gh * gw, ph * pw * C)
  return patch_embed(x)


class ViT(nnx.Module):
  """image [B, H, W, C] -> logits [B, num_classes]."""

  Config = ViTConfig

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.patch_embed = patch_embedding(cfg, rngs=rngs)
    if cfg.pooling == 'cls':
      self.cls_token = nnx.Param(jnp.zeros((1, 1, cfg.d_model)))
    self.encoder = TransformerStack(cfg.encoder_config(), cfg.num_layers, rngs=rngs)
    self.classifier = nnx.Linear(cfg.d_model, cfg.num_classes, rngs=rngs)

  def patches(self, image):
    """image [B, H, W, C] -> patch embeddings [B, P, D] in raster order."""
    return embed_patches(self.cfg, self.patch_embed, image)

  def __call__(self, image, *, deterministic: bool = True):
    """image [B, H, W, C] -> logits [B, C]; layers.capture_attention reads {'self': [per-layer [B, N, P', P']]},
    P' = P + 1 with the cls token (position 0)."""
    x = self.patches(image)
    if self.cfg.pooling == 'cls':
      cls = jnp.broadcast_to(self.cls_token[...], (x.shape[0], 1, x.shape[-1])).astype(x.dtype)
      x = jnp.concatenate([cls, x], axis=1)
    h = self.encoder(x, deterministic=deterministic)
    return self.classifier(h[:, 0] if self.cfg.pooling == 'cls' else jnp.mean(h, axis=1))
