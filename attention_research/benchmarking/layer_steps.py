"""Training steps of the project's NNX attention layer and Transformer block against the same built on Flax's.

Both sides share everything but attention: the same widths, the same pre-LN block with the project's MLP,
the same loss and plain SGD update, so the difference in a step is the attention layer alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research import layers


class FlaxBlock(nnx.Module):
  """layers.TransformerBlock with Flax's nnx.MultiHeadAttention in place of the project's layer."""

  def __init__(self, d_model: int, num_heads: int, mlp_dim: int, *, rngs: nnx.Rngs):
    self.ln_self = nnx.LayerNorm(d_model, rngs=rngs)
    self.self_attention = nnx.MultiHeadAttention(num_heads, d_model, use_bias=False, decode=False, rngs=rngs)
    self.ln_mlp = nnx.LayerNorm(d_model, rngs=rngs)
    self.mlp = layers.MLP(d_model, mlp_dim, rngs=rngs)

  def __call__(self, x):
    x = x + self.self_attention(self.ln_self(x))
    return x + self.mlp(self.ln_mlp(x))


def build(kind: str, implementation: str, *, d_model: int, num_heads: int, mlp_dim: int, dtype=jnp.float32):
  """kind 'attention' or 'block'; implementation 'flax' or a variant name of the project's layer."""
  rngs = nnx.Rngs(0)
  if kind == 'attention':
    if implementation == 'flax':
      return nnx.MultiHeadAttention(num_heads, d_model, use_bias=False, decode=False, dtype=dtype, rngs=rngs)
    return layers.MultiHeadAttention(num_heads, d_model, variant=implementation, dtype=dtype, rngs=rngs)
  if kind == 'block':
    if implementation == 'flax':
      return FlaxBlock(d_model, num_heads, mlp_dim, rngs=rngs)
    return layers.TransformerBlock(d_model, num_heads, mlp_dim, attention={'variant': implementation}, rngs=rngs)
  raise ValueError(f"unknown layer kind {kind!r}; known: 'attention', 'block'.")


def train_step(model, learning_rate: float = 1e-3):
  """(step, params): step(params, x) -> (loss, new params), one SGD step on mean(model(x) ** 2)."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def step(params, x):
    def loss(params):
      return jnp.mean(nnx.merge(graphdef, params, rest)(x).astype(jnp.float32) ** 2)
    value, grads = jax.value_and_grad(loss)(params)
    return value, jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)

  return step, params
