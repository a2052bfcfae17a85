"""Set-prediction object detection, DETR (Carion et al. 2020), and a fixed-grid baseline without attention.

DETR: image [B, H, W, C] -> conv backbone (stride-2 3x3 convolutions) -> features [B, S, D] on an h x w grid,
plus a learned 2-D position embedding (a row half and a column half, DETR's learned variant) -> Transformer
encoder -> decoder of Q object queries: a residual stream that starts at zero, and learned query positions added
to its attention inputs at every layer; the queries attend to each other and, by cross-attention, to the encoded
features (+ positions) -> per query a class (num_classes + no-object, the last index) and a box (sigmoid
(cx, cy, w, h), normalised to the image); each query's centre is an offset from its own learned reference
point, which starts on a square grid over the image (as in Deformable and Anchor DETR: queries that start apart
are matched to the same objects from step to step, which DETR's identical queries are not, and which its
class head needs to learn at all in a few thousand steps). The encoder's self-attention and the decoder's
cross-attention use `attention` (any registered variant that has a cross form); the queries' self-attention is
dot-product. With aux_loss the heads also read every earlier decoder layer (DETR's auxiliary decoding losses).
With two_stage (Zhu et al. 2021's two-stage Deformable DETR; Zhang et al. 2023's DINO keeps the learned query
embeddings beside the selected positions, as here) the encoder proposes a class and a box at every feature cell, and
the queries start from the best-scoring proposals instead of fixed points: each query's reference box is its
proposal's box, which the decoder refines, and its content starts as the encoded feature of that cell.

GridDetector, the baseline: the same backbone, then per grid cell a small conv head that scores each of a few
fixed square anchors centred on the cell; its boxes are the anchors themselves. Same outputs, same loss.

Inside `layers.capture_attention` the decoder's cross-attention maps are group 'cross' ([B, N, Q, S] per layer).
Dimension letters: B batch, S feature positions (h * w), Q queries, D width, C classes + 1, L decoder layers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention_research import attention as attention_lib
from attention_research.layers import MLP, MultiHeadAttention, TransformerBlock
from attention_research.models._checks import check_positive, freeze_options


def _check_backbone(cfg):
  for name in ('num_classes', 'image_size', 'channels'):
    check_positive(name, getattr(cfg, name))
  channels = tuple(cfg.backbone_channels)
  if not channels:
    raise ValueError('backbone_channels must name at least one stage.')
  for c in channels:
    check_positive('backbone_channels', c)
  object.__setattr__(cfg, 'backbone_channels', channels)
  stride = 2 ** len(channels)
  if cfg.image_size % stride:
    raise ValueError(f'{len(channels)} stride-2 backbone stages need image_size divisible by {stride}; got '
                     f'{cfg.image_size}.')


@dataclasses.dataclass(frozen=True)
class DETRConfig:
  num_classes: int = 10  # real classes; the model adds no-object
  image_size: int = 48  # square images [B, image_size, image_size, channels]
  channels: int = 1
  backbone_channels: tuple[int, ...] = (32, 64, 64)  # one stride-2 conv per stage: a 6 x 6 grid for 48 pixels
  d_model: int = 64
  num_heads: int = 4
  num_encoder_layers: int = 2
  num_decoder_layers: int = 2
  mlp_dim: int | None = None  # default 4 * d_model
  num_queries: int = 8
  attention: str = attention_lib.DEFAULT_VARIANT
  attention_options: Any = ()
  dropout_rate: float = 0.0
  aux_loss: bool = True
  # Start each query's residual stream from the encoded features at its reference point (bilinear), as two-stage
  # DETRs start from encoder features, instead of from zero: its class can then be read from the start.
  query_content: bool = True
  # Two-stage query selection (Deformable DETR's two-stage variant, DINO's mixed query selection): the encoder
  # scores a class and a box at every feature cell ('enc_logits', 'enc_boxes', trained with the same set loss);
  # the Q cells of highest real-class probability give the queries their reference boxes (the decoder refines
  # them) and their first content (the encoded feature there); the learned query embeddings stay as each slot's
  # position term, plus the position embedding at the reference centre. Without it every query keeps one fixed
  # reference point, and an object far from all of them is found only through diffuse cross-attention.
  two_stage: bool = False

  def __post_init__(self):
    _check_backbone(self)
    for name in ('d_model', 'num_heads', 'num_encoder_layers', 'num_decoder_layers', 'num_queries'):
      check_positive(name, getattr(self, name))
    check_positive('mlp_dim', self.mlp_dim, allow_none=True)
    if self.two_stage and self.num_queries > self.grid[0] * self.grid[1]:
      raise ValueError(f'two_stage selects num_queries={self.num_queries} of the {self.grid[0] * self.grid[1]} '
                       'feature cells; use at most that many queries.')
    if self.d_model % self.num_heads or self.d_model % 2:
      raise ValueError(f'd_model={self.d_model} must be even and divisible by num_heads={self.num_heads}.')
    attention_lib.check_cross(self.attention)  # ValueError for an unknown variant or one without a cross form
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f'dropout_rate must be in [0, 1); got {self.dropout_rate!r}.')
    object.__setattr__(self, 'attention_options', freeze_options(self.attention_options, 'attention_options'))

  @property
  def grid(self) -> tuple[int, int]:
    side = self.image_size // 2 ** len(self.backbone_channels)
    return side, side


def _logit(p):
  return jax.scipy.special.logit(jnp.clip(p, 1e-4, 1 - 1e-4))  # clipped: a box edge at 0 or 1 stays finite


def cell_centres(h: int, w: int) -> np.ndarray:
  """[h * w, 2] (x, y) centres of an h x w grid's cells in [0, 1], row-major (the feature positions' order)."""
  cy, cx = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing='ij')
  return np.stack([cx, cy], -1).reshape(-1, 2)


def reference_logits(num_queries: int) -> np.ndarray:
  """Logits [Q, 2] of the queries' initial reference points (x, y): the centres of the smallest square grid with
  Q cells, row-major, so every query starts responsible for its own part of the image."""
  side = int(np.ceil(np.sqrt(num_queries)))
  ys, xs = np.divmod(np.arange(num_queries), side)
  points = np.stack([(xs + 0.5) / side, (ys + 0.5) / side], -1)
  return np.log(points / (1 - points)).astype(np.float32)


class Backbone(nnx.Module):
  """image [B, H, W, C] -> features [B, h, w, F]: stride-2 3x3 convolutions with ReLU."""

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    self.cfg = cfg
    sizes = (cfg.channels,) + tuple(cfg.backbone_channels)
    self.convs = nnx.List([nnx.Conv(a, b, (3, 3), strides=2, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

  def __call__(self, image):
    cfg = self.cfg
    x = jnp.asarray(image, jnp.float32)
    if x.ndim == 3 and cfg.channels == 1:
      x = x[..., None]
    want = (cfg.image_size, cfg.image_size, cfg.channels)
    if x.ndim != 4 or x.shape[1:] != want:
      raise ValueError(f'image must be [B, {", ".join(map(str, want))}]; got {jnp.shape(image)}.')
    for conv in self.convs:
      x = jax.nn.relu(conv(x))
    return x


class DecoderLayer(nnx.Module):
  """DETR's decoder layer, pre-norm: the learned query positions join the queries' inputs of both attentions at
  every layer but never the residual stream, which starts at zero and carries only what was read from the image
  (with the query embedding in the stream instead, it dominates the stream and classes are barely learned)."""

  def __init__(self, cfg: DETRConfig, *, rngs: nnx.Rngs):
    D, rate = cfg.d_model, cfg.dropout_rate
    S = cfg.grid[0] * cfg.grid[1]
    self.ln_self, self.ln_cross, self.ln_mlp = (nnx.LayerNorm(D, rngs=rngs) for _ in range(3))
    self.self_attention = MultiHeadAttention(cfg.num_heads, D, variant='dot_product', max_length=cfg.num_queries,
                                             dropout_rate=rate, rngs=rngs)
    self.cross_attention = MultiHeadAttention(cfg.num_heads, D, variant=cfg.attention,
                                              variant_options=dict(cfg.attention_options), max_length=S,
                                              dropout_rate=rate, rngs=rngs)
    self.mlp = MLP(D, cfg.mlp_dim or 4 * D, dropout_rate=rate, rngs=rngs)
    self.dropout = nnx.Dropout(rate, rngs=rngs if rate > 0 else None)

  def __call__(self, x_BQD, query_pos, memory_BSD, *, deterministic=True):
    def add(x, h):
      return x + self.dropout(h, deterministic=deterministic)

    x = add(x_BQD, self.self_attention(self.ln_self(x_BQD) + query_pos, deterministic=deterministic))
    x = add(x, self.cross_attention(self.ln_cross(x) + query_pos, memory_BSD, deterministic=deterministic))
    return add(x, self.mlp(self.ln_mlp(x), deterministic=deterministic))


class DETR(nnx.Module):
  """image [B, H, W, C] -> {'logits' [B, Q, C+1], 'boxes' [B, Q, 4] (cx, cy, w, h) in [0, 1]} (+ 'aux_logits'
  [L-1, B, Q, C+1] and 'aux_boxes' [L-1, B, Q, 4] with aux_loss and more than one decoder layer; with two_stage
  also the encoder's proposals 'enc_logits' [B, S, C+1] and 'enc_boxes' [B, S, 4])."""

  Config = DETRConfig

  def __init__(self, cfg: DETRConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    D, (h, w), S = cfg.d_model, cfg.grid, cfg.grid[0] * cfg.grid[1]
    self.backbone = Backbone(cfg, rngs=rngs)
    self.project = nnx.Linear(cfg.backbone_channels[-1], D, rngs=rngs)
    init = nnx.initializers.normal(0.02)
    self.row_embed = nnx.Param(init(rngs.params(), (h, D // 2)))
    self.col_embed = nnx.Param(init(rngs.params(), (w, D // 2)))
    self.queries = nnx.Param(nnx.initializers.normal(1.0)(rngs.params(), (cfg.num_queries, D)))
    self.reference = nnx.Param(jnp.asarray(reference_logits(cfg.num_queries)))
    mlp = cfg.mlp_dim or 4 * D
    att = dict(variant=cfg.attention, variant_options=dict(cfg.attention_options), max_length=S)
    self.encoder = nnx.List([TransformerBlock(D, cfg.num_heads, mlp, attention=att, dropout_rate=cfg.dropout_rate,
                                              rngs=rngs) for _ in range(cfg.num_encoder_layers)])
    self.decoder = nnx.List([DecoderLayer(cfg, rngs=rngs) for _ in range(cfg.num_decoder_layers)])
    self.encoder_norm = nnx.LayerNorm(D, rngs=rngs)
    self.decoder_norm = nnx.LayerNorm(D, rngs=rngs)
    self.class_head = nnx.Linear(D, cfg.num_classes + 1, rngs=rngs)
    self.box_head = nnx.List([nnx.Linear(D, D, rngs=rngs), nnx.Linear(D, D, rngs=rngs), nnx.Linear(D, 4, rngs=rngs)])
    if cfg.two_stage:
      self.proposal_norm = nnx.LayerNorm(D, rngs=rngs)
      self.proposal_class = nnx.Linear(D, cfg.num_classes + 1, rngs=rngs)
      self.proposal_box = nnx.List([nnx.Linear(D, D, rngs=rngs), nnx.Linear(D, 4, rngs=rngs)])

  def positions(self):
    """Learned 2-D position embedding [S, D], row-major over the feature grid."""
    (h, w), half = self.cfg.grid, self.cfg.d_model // 2
    rows = jnp.broadcast_to(self.row_embed[...][:, None, :], (h, w, half))
    cols = jnp.broadcast_to(self.col_embed[...][None, :, :], (h, w, half))
    return jnp.concatenate([rows, cols], -1).reshape(h * w, -1)

  def reference_weights(self, points=None):
    """[..., Q, S]: bilinear (tent) weights of the feature cells around reference points [..., Q, 2] (x, y) in
    [0, 1]; by default the queries' own learned points."""
    (h, w) = self.cfg.grid
    ref = jax.nn.sigmoid(self.reference[...]) if points is None else points
    wx = jnp.clip(1 - jnp.abs(ref[..., 0:1] * w - (jnp.arange(w) + 0.5)), 0)  # [..., Q, w]
    wy = jnp.clip(1 - jnp.abs(ref[..., 1:2] * h - (jnp.arange(h) + 0.5)), 0)  # [..., Q, h]
    return (wy[..., :, None] * wx[..., None, :]).reshape(ref.shape[:-1] + (h * w,))

  def cell_boxes(self):
    """[S, 4] (cx, cy, w, h): each feature cell's own square, row-major: the anchors of the encoder's proposals."""
    (h, w) = self.cfg.grid
    centres = cell_centres(h, w)
    return jnp.asarray(np.concatenate([centres, np.broadcast_to([1 / w, 1 / h], centres.shape)], -1), jnp.float32)

  def encode(self, image, *, deterministic=True):
    """image -> memory [B, S, D] that the queries cross-attend to."""
    f = self.backbone(image)
    B = f.shape[0]
    pos_SD = self.positions()
    x = self.project(f.reshape(B, -1, f.shape[-1])) + pos_SD
    for block in self.encoder:
      x = block(x, deterministic=deterministic)
    # Positions again on the keys and values of every cross-attention, as DETR adds them to its keys.
    return self.encoder_norm(x) + pos_SD

  def _box(self, layers, x, reference=None):
    b = x
    for i, layer in enumerate(layers):
      b = layer(b) if i == len(layers) - 1 else jax.nn.relu(layer(b))
    b = b.astype(jnp.float32)
    if reference is None:  # the centre is an offset from the query's reference point, in logit space
      return jnp.concatenate([jax.nn.sigmoid(b[..., :2] + self.reference[...]), jax.nn.sigmoid(b[..., 2:])], -1)
    # the whole box refines a reference box in logit space, as Deformable DETR refines boxes
    return jax.nn.sigmoid(b + _logit(reference))

  def _heads(self, x, reference=None):
    x = self.decoder_norm(x)
    return self.class_head(x), self._box(self.box_head, x, reference)

  def _select(self, memory_BSD, pos_SD):
    """Two-stage query selection: (proposal logits [B, S, C+1], proposal boxes [B, S, 4], first content
    [B, Q, D], query positions [B, Q, D], reference boxes [B, Q, 4])."""
    x = self.proposal_norm(memory_BSD - pos_SD)
    logits_BSC = self.proposal_class(x)
    boxes_BS4 = self._box(self.proposal_box, x, self.cell_boxes())
    score_BS = jax.nn.softmax(logits_BSC.astype(jnp.float32), -1)[..., :-1].max(-1)
    _, idx_BQ = jax.lax.top_k(jax.lax.stop_gradient(score_BS), self.cfg.num_queries)
    reference_BQ4 = jax.lax.stop_gradient(jnp.take_along_axis(boxes_BS4, idx_BQ[..., None], axis=1))
    content_BQD = jnp.take_along_axis(memory_BSD, idx_BQ[..., None], axis=1)
    query_pos_BQD = self.queries[...] + self.reference_weights(reference_BQ4[..., :2]) @ pos_SD
    return logits_BSC, boxes_BS4, content_BQD, query_pos_BQD, reference_BQ4

  def __call__(self, image, *, deterministic=True):
    memory = self.encode(image, deterministic=deterministic)
    B = memory.shape[0]
    out, reference = {}, None
    if self.cfg.two_stage:
      out['enc_logits'], out['enc_boxes'], x, query_pos, reference = self._select(memory, self.positions())
    else:
      query_pos = self.queries[...]
      x = jnp.einsum('QS,BSD->BQD', self.reference_weights(), memory) if self.cfg.query_content else \
          jnp.zeros((B,) + query_pos.shape, memory.dtype)
    outs = []
    for layer in self.decoder:
      x = layer(x, query_pos, memory, deterministic=deterministic)
      outs.append(x)
    if not (self.cfg.aux_loss and len(outs) > 1):
      outs = outs[-1:]
    logits_LBQC, boxes_LBQ4 = self._heads(jnp.stack(outs), reference)
    out.update(logits=logits_LBQC[-1], boxes=boxes_LBQ4[-1])
    if len(outs) > 1:
      out.update(aux_logits=logits_LBQC[:-1], aux_boxes=boxes_LBQ4[:-1])
    return out


@dataclasses.dataclass(frozen=True)
class GridConfig:
  num_classes: int = 10
  image_size: int = 48
  channels: int = 1
  backbone_channels: tuple[int, ...] = (32, 64, 64)
  hidden: int = 64  # width of the per-cell head
  anchor_sizes: tuple[float, ...] = (12.0, 18.0)  # square anchors per cell, in pixels

  def __post_init__(self):
    _check_backbone(self)
    check_positive('hidden', self.hidden)
    sizes = tuple(self.anchor_sizes)
    if not sizes or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s <= self.image_size
                            for s in sizes):
      raise ValueError(f'anchor_sizes must be sizes in (0, image_size={self.image_size}]; got {self.anchor_sizes!r}.')
    object.__setattr__(self, 'anchor_sizes', tuple(float(s) for s in sizes))

  @property
  def grid(self) -> tuple[int, int]:
    side = self.image_size // 2 ** len(self.backbone_channels)
    return side, side


class GridDetector(nnx.Module):
  """image -> {'logits' [B, A, C+1], 'boxes' [B, A, 4]}: A = h * w * len(anchor_sizes) fixed anchors, ordered
  (row, column, size); a 3x3 conv and a 1x1 conv score each anchor, the boxes are the anchors."""

  Config = GridConfig

  def __init__(self, cfg: GridConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    K = len(cfg.anchor_sizes)
    self.backbone = Backbone(cfg, rngs=rngs)
    self.hidden = nnx.Conv(cfg.backbone_channels[-1], cfg.hidden, (3, 3), rngs=rngs)
    self.scores = nnx.Conv(cfg.hidden, K * (cfg.num_classes + 1), (1, 1), rngs=rngs)
    (h, w), size = cfg.grid, float(cfg.image_size)
    centres, sizes = cell_centres(h, w), np.asarray(cfg.anchor_sizes) / size
    # anchors ordered (row, column, size)
    anchors = np.concatenate([np.repeat(centres, K, 0), np.tile(sizes, len(centres))[:, None].repeat(2, 1)], -1)
    self.anchors = nnx.Variable(jnp.asarray(anchors, jnp.float32))

  def __call__(self, image, *, deterministic=True):
    del deterministic  # no dropout
    f = jax.nn.relu(self.hidden(self.backbone(image)))
    logits = self.scores(f)
    B = logits.shape[0]
    anchors = self.anchors[...]
    return {'logits': logits.reshape(B, anchors.shape[0], self.cfg.num_classes + 1),
            'boxes': jnp.broadcast_to(anchors[None], (B,) + anchors.shape)}
