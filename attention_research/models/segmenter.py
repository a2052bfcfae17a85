"""Segmenter-style semantic segmentation (Strudel et al. 2021) over any registered attention variant.

image [B, H, W, C] -> patches [B, P, D] -> ViT encoder (TransformerStack, `attention`) -> patch features.
One learned token per class (the mask tokens) goes through a small decoder stack: self-attention among the
class tokens and cross-attention over the encoded patches. Each class's mask over the patch grid is the cosine
similarity of projected patch features and projected class tokens, normalised across classes (Segmenter's
mask_norm), then upsampled bilinearly to per-pixel logits [B, H, W, K].

Segmenter's mask transformer runs joint self-attention over patches and class tokens; here the class tokens
read the patches through cross-attention (as the query decoders of MaskFormer do), so the attention of each
mask token over the patches is one map, sown as the 'cross' group, and the encoder's is the 'encoder' group.

Dimension letters: B batch, H W image, P patches (gh * gw), D d_model, K classes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict

from attention_research import attention
from attention_research.models._checks import check_positive
from attention_research.models.transformer import TransformerConfig, TransformerStack
from attention_research.models.vit import ViTConfig, embed_patches, patch_embedding


@dataclasses.dataclass(frozen=True)
class SegmenterConfig:
  """image_size, patch_size, channels, patch_embedding, positional and the attention fields mean what they mean
  in ViTConfig (num_layers: encoder layers). num_classes: K, background included. decoder_layers: layers of the
  class-token decoder. decoder_attention: the variant of the class tokens' self- and cross-attention; None
  takes the encoder's variant where it has a cross-attention form, dot_product otherwise (local, recurrent
  or a hybrid)."""
  image_size: Any = 48
  patch_size: Any = 4
  channels: int = 1
  num_classes: int = 11
  d_model: int = 64
  num_heads: int = 4
  num_kv_heads: int | None = None
  num_layers: int = 3
  decoder_layers: int = 1
  mlp_dim: int | None = None
  dropout_rate: float = 0.0
  positional: str = 'learned'
  attention: str | tuple[str, ...] = attention.DEFAULT_VARIANT
  attention_options: Mapping[str, Any] | tuple[Mapping[str, Any], ...] = dataclasses.field(default_factory=FrozenDict)
  decoder_attention: str | None = None
  patch_embedding: str = 'conv'

  def __post_init__(self):
    vit = self.vit_config()  # validates the encoder and normalises sizes and variants
    for name in ('image_size', 'patch_size', 'attention', 'attention_options'):
      object.__setattr__(self, name, getattr(vit, name))
    check_positive('decoder_layers', self.decoder_layers)
    if self.num_classes < 2:
      raise ValueError(f'num_classes must be >= 2 (background and at least one class); got {self.num_classes}.')
    self.decoder_config()

  def vit_config(self) -> ViTConfig:
    return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, channels=self.channels,
                     num_classes=self.num_classes, d_model=self.d_model, num_heads=self.num_heads,
                     num_kv_heads=self.num_kv_heads, num_layers=self.num_layers, mlp_dim=self.mlp_dim,
                     dropout_rate=self.dropout_rate, positional=self.positional, attention=self.attention,
                     attention_options=self.attention_options, pooling='mean',
                     patch_embedding=self.patch_embedding)

  @property
  def grid(self) -> tuple[int, int]:
    return self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1]

  @property
  def num_patches(self) -> int:
    return self.grid[0] * self.grid[1]

  @property
  def decoder_variant(self) -> str:
    if self.decoder_attention is not None:
      return self.decoder_attention
    return self.vit_config().encoder_config().cross_variant

  def decoder_config(self) -> TransformerConfig:
    variant = self.decoder_variant
    same = not isinstance(self.attention, tuple) and variant == self.attention
    # Class tokens are a set: no positions. max_length covers the longest key sequence (the patches).
    return TransformerConfig(
        d_model=self.d_model, num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
        num_encoder_layers=self.decoder_layers, num_decoder_layers=self.decoder_layers, mlp_dim=self.mlp_dim,
        dropout_rate=self.dropout_rate, max_length=max(self.num_patches, self.num_classes), positional='none',
        attention=variant, attention_options=self.attention_options if same else FrozenDict(),
        cross_attention=variant)


def _l2_normalize(x, eps: float = 1e-6):
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


class Segmenter(nnx.Module):
  """image [B, H, W, C] -> per-pixel class logits [B, H, W, K]."""

  Config = SegmenterConfig

  def __init__(self, cfg: SegmenterConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    vit = cfg.vit_config()
    D = cfg.d_model
    self.patch_embed = patch_embedding(cfg, rngs=rngs)
    self.encoder = TransformerStack(vit.encoder_config(), cfg.num_layers, rngs=rngs)
    self.class_tokens = nnx.Param(jax.random.normal(rngs.params(), (1, cfg.num_classes, D)) * 0.02)
    self.decoder = TransformerStack(cfg.decoder_config(), cfg.decoder_layers, cross=True, rngs=rngs)
    self.patch_proj = nnx.Linear(D, D, use_bias=False, rngs=rngs)
    self.class_proj = nnx.Linear(D, D, use_bias=False, rngs=rngs)
    self.mask_norm = nnx.LayerNorm(cfg.num_classes, rngs=rngs)

  def patches(self, image):
    """image [B, H, W, C] -> patch embeddings [B, P, D] in raster order."""
    return embed_patches(self.cfg, self.patch_embed, image)

  def patch_masks(self, image, *, deterministic: bool = True):
    """image [B, H, W, C] -> class scores per patch [B, gh, gw, K] (before upsampling)."""
    cfg = self.cfg
    patches_BPD = self.encoder(self.patches(image), deterministic=deterministic)
    B = patches_BPD.shape[0]
    tokens_BKD = jnp.broadcast_to(self.class_tokens[...], (B, cfg.num_classes, cfg.d_model)).astype(patches_BPD.dtype)
    tokens_BKD = self.decoder(tokens_BKD, memory=patches_BPD, deterministic=deterministic)
    masks_BPK = jnp.einsum('BPD,BKD->BPK', _l2_normalize(self.patch_proj(patches_BPD)),
                           _l2_normalize(self.class_proj(tokens_BKD)))
    masks_BPK = self.mask_norm(masks_BPK)
    return masks_BPK.reshape(B, *cfg.grid, cfg.num_classes)

  def __call__(self, image, *, deterministic: bool = True):
    """image [B, H, W, C] -> logits [B, H, W, K] (float32). layers.capture_attention reads
    {'encoder': [per-layer [B, N, P, P]], 'self': [per-layer [B, N, K, K]], 'cross': [per-layer [B, N, K, P]]}."""
    masks = self.patch_masks(image, deterministic=deterministic)
    B, (H, W), K = masks.shape[0], self.cfg.image_size, self.cfg.num_classes
    return jax.image.resize(masks, (B, H, W, K), method='bilinear')
