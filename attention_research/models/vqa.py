"""Visual question answering with stacked attention over image regions (in the style of Yang et al. 2016,
"Stacked Attention Networks for Image Question Answering"), over any registered attention variant.

  question [B, L] -> embeddings + a cls token -> Transformer encoder (self-attention) -> u_0 = h_cls [B, D]
  image [B, H, W, C] -> conv net -> mean-pooled to a grid x grid of regions [B, R, D] (+ learned positions)
  hop k = 1..K:  c_k = CrossAttention(LN u_{k-1}, regions)
                 u'_k = u_{k-1} + c_k + Linear(c_k * Linear(LN u_{k-1})),  u_k = u'_k + MLP(LN u'_k)
  logits = Linear(LN u_K) [B, C]

The query of each hop is the question vector refined by what the previous hops read, so a hop can find "the 7"
and the next one what lies left of it. `image=False` is the question-only baseline: the same model without the
region encoder and without cross-attention (the hops keep their MLPs), so it sees the question alone.

Inside `layers.capture_attention` the maps are {'question': [per-layer [B, N, L+1, L+1]], 'cross': [per-hop
[B, N, 1, R]]}; `hop_attention` returns the hops' attention over the regions averaged over heads, [B, K, R].

Dimension letters: B batch, L question length, R regions, D width, N heads, K hops, C answer classes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research import attention as attention_lib
from attention_research.layers import MLP, MultiHeadAttention, capture_attention
from attention_research.models._checks import check_positive, freeze_options
from attention_research.models.transformer import TransformerConfig, TransformerStack


@dataclasses.dataclass(frozen=True)
class VQAConfig:
  """Sizes and choices of `VQA`; `attention` is the hops' cross-attention variant, `question_attention` the
  question encoder's self-attention variant."""
  vocab_size: int
  num_classes: int
  max_length: int = 16  # longest question L
  image: bool = True  # False: the question-only baseline
  image_size: int = 64  # square images [B, image_size, image_size, channels]
  channels: int = 1
  grid: int = 8  # regions per side, R = grid * grid; must divide image_size / 4
  conv_features: int = 32  # width of the conv net before the projection to d_model
  d_model: int = 64
  num_heads: int = 4
  num_layers: int = 2  # question encoder layers
  hops: int = 2
  mlp_dim: int | None = None  # default 4 * d_model
  attention: str = attention_lib.DEFAULT_VARIANT
  attention_options: Any = ()
  question_attention: str = attention_lib.DEFAULT_VARIANT
  dropout: float = 0.0
  pad_id: int = 0

  def __post_init__(self):
    for name in ('vocab_size', 'num_classes', 'max_length', 'image_size', 'channels', 'grid', 'conv_features',
                 'd_model', 'num_heads', 'num_layers', 'hops'):
      check_positive(name, getattr(self, name))
    check_positive('mlp_dim', self.mlp_dim, allow_none=True)
    if not isinstance(self.image, bool):
      raise ValueError(f'image must be True or False; got {self.image!r}.')
    if self.image_size % 4 or (self.image_size // 4) % self.grid:
      raise ValueError(f'the conv net downsamples by 4 and then pools to the grid: image_size={self.image_size} '
                       f'must be a multiple of 4 * grid = 4 * {self.grid}.')
    if self.d_model % self.num_heads:
      raise ValueError(f'd_model={self.d_model} must be divisible by num_heads={self.num_heads}.')
    attention_lib.check_cross(self.attention)  # ValueError for unknown variants and for windows / recurrences
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f'dropout must be in [0, 1); got {self.dropout!r}.')
    object.__setattr__(self, 'attention_options', freeze_options(self.attention_options, 'attention_options'))
    self.question_config()  # validates the question encoder's variant and sizes

  @property
  def num_regions(self) -> int:
    return self.grid * self.grid

  def question_config(self) -> TransformerConfig:
    return TransformerConfig(vocab_size=self.vocab_size, d_model=self.d_model, num_heads=self.num_heads,
                             num_encoder_layers=self.num_layers, mlp_dim=self.mlp_dim, dropout_rate=self.dropout,
                             max_length=self.max_length + 1, positional='learned',
                             attention=self.question_attention, pad_id=self.pad_id)


class RegionEncoder(nnx.Module):
  """image [B, H, W, C] -> regions [B, R, D] in row-major grid order.

  Two stride-2 and one stride-1 3x3 convolutions (receptive field about 19 pixels, a whole 16-pixel digit),
  mean-pooled to the grid, projected to D, plus a learned embedding of each region's position.
  """

  def __init__(self, cfg: VQAConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    F = cfg.conv_features
    self.conv1 = nnx.Conv(cfg.channels, F, (3, 3), strides=2, rngs=rngs)
    self.conv2 = nnx.Conv(F, 2 * F, (3, 3), strides=2, rngs=rngs)
    self.conv3 = nnx.Conv(2 * F, 2 * F, (3, 3), rngs=rngs)
    self.project = nnx.Linear(2 * F, cfg.d_model, rngs=rngs)
    self.position = nnx.Param(jax.random.normal(rngs.params(), (cfg.num_regions, cfg.d_model)) * 0.02)
    self.norm = nnx.LayerNorm(cfg.d_model, rngs=rngs)

  def __call__(self, image):
    cfg = self.cfg
    want = (cfg.image_size, cfg.image_size, cfg.channels)
    if jnp.ndim(image) != 4 or tuple(jnp.shape(image)[1:]) != want:
      raise ValueError(f'image must be [B, {", ".join(map(str, want))}]; got {jnp.shape(image)}.')
    x = jnp.asarray(image, jnp.float32)
    x = jax.nn.relu(self.conv3(jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(x))))))
    B, S, _, F = x.shape
    g = cfg.grid
    x = x.reshape(B, g, S // g, g, S // g, F).mean(axis=(2, 4)).reshape(B, g * g, F)
    return self.norm(self.project(x) + self.position[...])


class Hop(nnx.Module):
  """u [B, D] -> u + c + Linear(c * Linear(LN u)) with c = CrossAttention(LN u, regions), then + MLP(LN u);
  without the first step when image=False. The product lets the question select features of what was read
  ("is it a 5?") directly, where a sum would leave the whole comparison to the MLP."""

  def __init__(self, cfg: VQAConfig, *, rngs: nnx.Rngs):
    D = cfg.d_model
    self.has_image = cfg.image
    if cfg.image:
      self.ln_cross = nnx.LayerNorm(D, rngs=rngs)
      self.cross_attention = MultiHeadAttention(cfg.num_heads, D, variant=cfg.attention,
                                                variant_options=dict(cfg.attention_options),
                                                max_length=cfg.num_regions, dropout_rate=cfg.dropout, rngs=rngs)
      self.gate = nnx.Linear(D, D, rngs=rngs)
      self.fuse = nnx.Linear(D, D, rngs=rngs)
    self.ln_mlp = nnx.LayerNorm(D, rngs=rngs)
    self.mlp = MLP(D, cfg.mlp_dim or 4 * D, dropout_rate=cfg.dropout, rngs=rngs)

  def __call__(self, u_BD, regions_BRD, *, deterministic: bool):
    if self.has_image:
      h_BD = self.ln_cross(u_BD)
      c_BD = self.cross_attention(h_BD[:, None], regions_BRD, deterministic=deterministic)[:, 0]
      u_BD = u_BD + c_BD + self.fuse(c_BD * self.gate(h_BD))
    return u_BD + self.mlp(self.ln_mlp(u_BD), deterministic=deterministic)


class VQA(nnx.Module):
  """(image [B, H, W, C], question [B, L]) -> answer logits [B, C]; see the module docstring."""

  Config = VQAConfig

  def __init__(self, cfg: VQAConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    D = cfg.d_model
    self.embed = nnx.Embed(cfg.vocab_size, D, rngs=rngs)
    self.cls_token = nnx.Param(jnp.zeros((1, 1, D)))
    self.question = TransformerStack(cfg.question_config(), cfg.num_layers, rngs=rngs)
    self.regions = RegionEncoder(cfg, rngs=rngs) if cfg.image else None
    self.hops = nnx.List([Hop(cfg, rngs=rngs) for _ in range(cfg.hops)])
    self.final_norm = nnx.LayerNorm(D, rngs=rngs)
    self.classifier = nnx.Linear(D, cfg.num_classes, rngs=rngs)

  def encode_question(self, question, *, deterministic: bool = True):
    """question [B, L] int (pad_id = padding) -> u_0 [B, D], the cls token's encoding."""
    cfg = self.cfg
    question = jnp.asarray(question)
    if question.ndim != 2 or not jnp.issubdtype(question.dtype, jnp.integer):
      raise ValueError(f'question must be integer ids [B, L]; got shape {question.shape}, dtype {question.dtype}.')
    if question.shape[1] > cfg.max_length:
      raise ValueError(f'question length {question.shape[1]} exceeds max_length={cfg.max_length}.')
    B = question.shape[0]
    x = self.embed(question) * math.sqrt(cfg.d_model)
    x = jnp.concatenate([jnp.broadcast_to(self.cls_token[...], (B, 1, cfg.d_model)).astype(x.dtype), x], 1)
    valid = jnp.concatenate([jnp.ones((B, 1), bool), question != cfg.pad_id], 1)
    return self.question(x, valid, deterministic=deterministic)[:, 0]

  def __call__(self, image, question, *, deterministic: bool = True):
    """image [B, H, W, C] (ignored, may be None, when cfg.image is False), question [B, L] -> logits [B, C]."""
    u = self.encode_question(question, deterministic=deterministic)
    regions = None
    if self.regions is not None:
      if image is None:
        raise ValueError('this model reads the image (image=True) and needs image=[B, H, W, C]; got None.')
      regions = self.regions(image)
      if regions.shape[0] != u.shape[0]:
        raise ValueError(f'image batch {regions.shape[0]} differs from question batch {u.shape[0]}.')
    for hop in self.hops:
      u = hop(u, regions, deterministic=deterministic)
    return self.classifier(self.final_norm(u))

  def hop_attention(self, image, question):
    """(logits [B, C], each hop's attention over the regions averaged over heads [B, K, R]); needs the image."""
    if self.regions is None:
      raise ValueError('a question-only model (image=False) has no attention over the image.')
    logits, maps = capture_attention(lambda m: m(image, question, deterministic=True), self)
    return logits, jnp.stack([w.mean(axis=1)[:, 0] for w in maps['cross']], 1).astype(jnp.float32)
