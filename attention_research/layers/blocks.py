"""Pre-LN Transformer blocks shared by the Transformer, ViT and ASR models."""

from __future__ import annotations

import jax
from flax import nnx

from attention_research.layers.attention import MultiHeadAttention


class MLP(nnx.Module):
  def __init__(self, d_model: int, mlp_dim: int, *, dropout_rate: float = 0.0, rngs: nnx.Rngs):
    self.up = nnx.Linear(d_model, mlp_dim, rngs=rngs)
    self.down = nnx.Linear(mlp_dim, d_model, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs if dropout_rate > 0 else None)

  def __call__(self, x, *, deterministic=None):
    return self.down(self.dropout(jax.nn.gelu(self.up(x)), deterministic=deterministic))


class TransformerBlock(nnx.Module):
  """x + SelfAttention(LN x) [+ CrossAttention(LN x, memory)] + MLP(LN x).

  `attention` holds MultiHeadAttention keyword arguments for self-attention (variant, variant_options,
  num_kv_heads, use_rope, max_length, ...); `cross_attention` those for cross-attention, or None for none.
  Inside an nnx.capture both attention layers sow their weights (see layers.capture).
  """

  def __init__(self, d_model: int, num_heads: int, mlp_dim: int, *, attention: dict | None = None,
               cross_attention: dict | None = None, memory_features: int | None = None,
               dropout_rate: float = 0.0, rngs: nnx.Rngs):
    self.ln_self = nnx.LayerNorm(d_model, rngs=rngs)
    self.self_attention = MultiHeadAttention(num_heads, d_model, dropout_rate=dropout_rate, rngs=rngs,
                                             **(attention or {}))
    self.has_cross = cross_attention is not None
    if self.has_cross:
      self.ln_cross = nnx.LayerNorm(d_model, rngs=rngs)
      self.cross_attention = MultiHeadAttention(num_heads, d_model, kv_features=memory_features or d_model,
                                                dropout_rate=dropout_rate, rngs=rngs, **cross_attention)
    self.ln_mlp = nnx.LayerNorm(d_model, rngs=rngs)
    self.mlp = MLP(d_model, mlp_dim, dropout_rate=dropout_rate, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs if dropout_rate > 0 else None)

  def __call__(self, x, *, mask=None, bias=None, is_causal=False, positions=None, memory=None,
               memory_mask=None, decode=False, deterministic=None):
    h = self.self_attention(self.ln_self(x), mask=mask, bias=bias, is_causal=is_causal, positions=positions,
                            decode=decode, deterministic=deterministic)
    x = x + self.dropout(h, deterministic=deterministic)
    if self.has_cross:
      if memory is None:
        raise ValueError('this block has cross-attention and needs memory=[B, S, D].')
      h = self.cross_attention(self.ln_cross(x), memory, mask=memory_mask, deterministic=deterministic)
      x = x + self.dropout(h, deterministic=deterministic)
    x = x + self.dropout(self.mlp(self.ln_mlp(x), deterministic=deterministic), deterministic=deterministic)
    return x
