"""The Conformer encoder (Gulati et al. 2020) over any registered attention variant.

Each block: x + FFN/2, + MHSA, + convolution module, + FFN/2, then LayerNorm. LayerNorm replaces the
paper's BatchNorm in the convolution module, and the depthwise convolution sees padded frames as zeros, so an
utterance's outputs on its real frames depend neither on its batch nor on its padding.

Dimension letters: B batch, F frames, D d_model.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research.attention import positional as pos_lib
from attention_research.layers.attention import MultiHeadAttention

POSITIONAL = ('sinusoidal', 'rope', 'none')


class FeedForward(nnx.Module):
  """LayerNorm, Linear, Swish, dropout, Linear, dropout (the Conformer's half-step FFN)."""

  def __init__(self, d_model: int, mlp_dim: int, dropout_rate: float, *, rngs: nnx.Rngs):
    self.norm = nnx.LayerNorm(d_model, rngs=rngs)
    self.up = nnx.Linear(d_model, mlp_dim, rngs=rngs)
    self.down = nnx.Linear(mlp_dim, d_model, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

  def __call__(self, x, *, deterministic):
    h = self.dropout(jax.nn.swish(self.up(self.norm(x))), deterministic=deterministic)
    return self.dropout(self.down(h), deterministic=deterministic)


class ConvModule(nnx.Module):
  """LayerNorm, pointwise conv + GLU, depthwise conv, LayerNorm, Swish, pointwise conv, dropout."""

  def __init__(self, d_model: int, kernel_size: int, dropout_rate: float, *, rngs: nnx.Rngs):
    if kernel_size < 1 or kernel_size % 2 == 0:
      raise ValueError(f'kernel_size must be odd (centred, same length); got {kernel_size}.')
    self.norm = nnx.LayerNorm(d_model, rngs=rngs)
    self.pointwise_in = nnx.Linear(d_model, 2 * d_model, rngs=rngs)
    self.depthwise = nnx.Conv(d_model, d_model, (kernel_size,), padding='SAME', feature_group_count=d_model,
                              rngs=rngs)
    self.conv_norm = nnx.LayerNorm(d_model, rngs=rngs)
    self.pointwise_out = nnx.Linear(d_model, d_model, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

  def __call__(self, x_BFD, valid_BF, *, deterministic):
    h = jax.nn.glu(self.pointwise_in(self.norm(x_BFD)), axis=-1)
    h = jnp.where(valid_BF[..., None], h, 0.0)  # padded frames must not leak into real ones
    h = jax.nn.swish(self.conv_norm(self.depthwise(h)))
    return self.dropout(self.pointwise_out(h), deterministic=deterministic)


class ConformerBlock(nnx.Module):
  """x + FFN/2, + MHSA, + Conv, + FFN/2, LayerNorm; MHSA with any variant.

  attention_kwargs: MultiHeadAttention keyword arguments (variant, variant_options, num_kv_heads, use_rope,
  max_length, layer options), e.g. TransformerConfig.attention_kwargs().
  """

  def __init__(self, d_model: int, num_heads: int, mlp_dim: int, kernel_size: int, dropout_rate: float = 0.0,
               *, attention_kwargs: Mapping[str, Any] | None = None, rngs: nnx.Rngs):
    self.ffn1 = FeedForward(d_model, mlp_dim, dropout_rate, rngs=rngs)
    self.norm_att = nnx.LayerNorm(d_model, rngs=rngs)
    self.self_attention = MultiHeadAttention(num_heads, d_model, dropout_rate=dropout_rate, rngs=rngs,
                                             **dict(attention_kwargs or {}))
    self.conv = ConvModule(d_model, kernel_size, dropout_rate, rngs=rngs)
    self.ffn2 = FeedForward(d_model, mlp_dim, dropout_rate, rngs=rngs)
    self.norm_out = nnx.LayerNorm(d_model, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

  def __call__(self, x_BFD, mask, valid_BF, *, deterministic):
    """x [B, F, D], mask broadcastable to [B, N, F, F] (True = may attend), valid_BF [B, F] real frames."""
    x = x_BFD + 0.5 * self.ffn1(x_BFD, deterministic=deterministic)
    h = self.self_attention(self.norm_att(x), mask=mask, deterministic=deterministic)
    x = x + self.dropout(h, deterministic=deterministic)
    x = x + self.conv(x, valid_BF, deterministic=deterministic)
    return self.norm_out(x + 0.5 * self.ffn2(x, deterministic=deterministic))


class ConformerStack(nnx.Module):
  """Positions ('sinusoidal' added here; 'rope' inside attention, through attention_kwargs' use_rope) and
  num_layers Conformer blocks over [B, F, D]; max_length bounds F (the sinusoidal table)."""

  def __init__(self, num_layers: int, d_model: int, num_heads: int, mlp_dim: int, kernel_size: int,
               dropout_rate: float = 0.0, *, positional: str = 'sinusoidal', max_length: int = 1024,
               attention_kwargs: Mapping[str, Any] | None = None, rngs: nnx.Rngs):
    if positional not in POSITIONAL:
      raise ValueError(f'unknown positional {positional!r} for the Conformer; known: {POSITIONAL}.')
    self.positional, self.max_length, self.d_model = positional, max_length, d_model
    self.blocks = nnx.List([
        ConformerBlock(d_model, num_heads, mlp_dim, kernel_size, dropout_rate, attention_kwargs=attention_kwargs,
                       rngs=rngs) for _ in range(num_layers)])
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

  def __call__(self, x_BFD, valid_BF, *, deterministic=True):
    if self.positional == 'sinusoidal':
      x_BFD = x_BFD + pos_lib.sinusoidal(self.max_length, self.d_model)[:x_BFD.shape[1]].astype(x_BFD.dtype)
    x = self.dropout(x_BFD, deterministic=deterministic)
    mask = valid_BF[:, None, None, :]
    for block in self.blocks:
      x = block(x, mask, valid_BF, deterministic=deterministic)
    return x
