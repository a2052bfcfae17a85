"""Transformer blocks shared by the Transformer, ViT and ASR models, with the options pretrained encoders need.

The defaults are the project's own blocks: pre-LN, flax's LayerNorm epsilon (1e-6), tanh-approximate GELU,
biased MLP and unbiased attention projections. A BERT-style encoder layer is
`TransformerBlock(..., norm='post', norm_epsilon=1e-12, activation='gelu', use_bias=True)`.
"""

from __future__ import annotations

import functools

import jax
from flax import nnx

from attention_research.layers.attention import MultiHeadAttention

# name -> (function, gated). A gated activation multiplies fn(gate(x)) with a second projection up(x)
# (Shazeer 2020, "GLU Variants Improve Transformer").
ACTIVATIONS = {
    'gelu': (functools.partial(jax.nn.gelu, approximate=False), False),
    'gelu_tanh': (functools.partial(jax.nn.gelu, approximate=True), False),
    'relu': (jax.nn.relu, False),
    'silu': (jax.nn.silu, False),
    'swiglu': (jax.nn.silu, True),
    'geglu': (functools.partial(jax.nn.gelu, approximate=False), True),
}
NORMS = ('pre', 'post')
LAYER_NORM_EPSILON = 1e-6  # flax's nnx.LayerNorm default, which the project's blocks always used


def check_activation(activation: str):
  if activation not in ACTIVATIONS:
    raise ValueError(f'activation={activation!r} is not one of {sorted(ACTIVATIONS)}.')
  return ACTIVATIONS[activation]


class MLP(nnx.Module):
  """down(act(up x)), or down(act(gate x) * up x) for a gated activation ('swiglu', 'geglu').

  Kernels: up and gate [d_model, mlp_dim], down [mlp_dim, d_model].
  """

  def __init__(self, d_model: int, mlp_dim: int, *, activation: str = 'gelu_tanh', use_bias: bool = True,
               dropout_rate: float = 0.0, rngs: nnx.Rngs):
    self.activation = activation
    _, gated = check_activation(activation)
    self.up = nnx.Linear(d_model, mlp_dim, use_bias=use_bias, rngs=rngs)
    if gated:
      self.gate = nnx.Linear(d_model, mlp_dim, use_bias=use_bias, rngs=rngs)
    self.down = nnx.Linear(mlp_dim, d_model, use_bias=use_bias, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs if dropout_rate > 0 else None)

  def __call__(self, x, *, deterministic=None):
    fn, gated = ACTIVATIONS[self.activation]
    h = fn(self.gate(x)) * self.up(x) if gated else fn(self.up(x))
    return self.down(self.dropout(h, deterministic=deterministic))


class TransformerBlock(nnx.Module):
  """x + SelfAttention(LN x) [+ CrossAttention(LN x, memory)] + MLP(LN x), or its post-LN form.

  `attention` holds MultiHeadAttention keyword arguments for self-attention (variant, variant_options,
  num_kv_heads, use_rope, max_length, ...); `cross_attention` those for cross-attention, or None for none.

  norm: 'pre' normalizes each sublayer's input (x + f(LN x)); 'post' normalizes after each residual
    (LN(x + f(x)), the original Transformer and BERT). The LayerNorm that follows or precedes a sublayer
    keeps its name either way (ln_self, ln_cross, ln_mlp).
  norm_epsilon: the LayerNorms' epsilon (BERT: 1e-12).
  activation: the MLP's activation, a name in ACTIVATIONS ('gelu' exact, 'gelu_tanh', 'relu', 'silu',
    'swiglu', 'geglu').
  use_bias: biases on every projection (attention q/k/v/out and the MLP); None keeps the project's mix,
    unbiased attention and biased MLP. A `use_bias` in `attention`/`cross_attention` wins for that layer.

  Inside an nnx.capture both attention layers sow their weights (see layers.capture).
  """

  def __init__(self, d_model: int, num_heads: int, mlp_dim: int, *, attention: dict | None = None,
               cross_attention: dict | None = None, memory_features: int | None = None,
               dropout_rate: float = 0.0, norm: str = 'pre', norm_epsilon: float = LAYER_NORM_EPSILON,
               activation: str = 'gelu_tanh', use_bias: bool | None = None, rngs: nnx.Rngs):
    if norm not in NORMS:
      raise ValueError(f'norm={norm!r} is not one of {NORMS}.')
    check_activation(activation)
    self.post_norm = norm == 'post'
    attention_bias = {} if use_bias is None else {'use_bias': use_bias}
    ln = dict(epsilon=norm_epsilon, rngs=rngs)
    self.ln_self = nnx.LayerNorm(d_model, **ln)
    self.self_attention = MultiHeadAttention(num_heads, d_model, dropout_rate=dropout_rate, rngs=rngs,
                                             **{**attention_bias, **(attention or {})})
    self.has_cross = cross_attention is not None
    if self.has_cross:
      self.ln_cross = nnx.LayerNorm(d_model, **ln)
      self.cross_attention = MultiHeadAttention(num_heads, d_model, kv_features=memory_features or d_model,
                                                dropout_rate=dropout_rate, rngs=rngs,
                                                **{**attention_bias, **cross_attention})
    self.ln_mlp = nnx.LayerNorm(d_model, **ln)
    self.mlp = MLP(d_model, mlp_dim, activation=activation, use_bias=True if use_bias is None else use_bias,
                   dropout_rate=dropout_rate, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs if dropout_rate > 0 else None)

  def _pre(self, ln, x):
    return x if self.post_norm else ln(x)

  def _post(self, ln, x):
    return ln(x) if self.post_norm else x

  def __call__(self, x, *, mask=None, bias=None, is_causal=False, positions=None, memory=None,
               memory_mask=None, decode=False, deterministic=None):
    h = self.self_attention(self._pre(self.ln_self, x), mask=mask, bias=bias, is_causal=is_causal,
                            positions=positions, decode=decode, deterministic=deterministic)
    x = self._post(self.ln_self, x + self.dropout(h, deterministic=deterministic))
    if self.has_cross:
      if memory is None:
        raise ValueError('this block has cross-attention and needs memory=[B, S, D].')
      h = self.cross_attention(self._pre(self.ln_cross, x), memory, mask=memory_mask, deterministic=deterministic)
      x = self._post(self.ln_cross, x + self.dropout(h, deterministic=deterministic))
    h = self.mlp(self._pre(self.ln_mlp, x), deterministic=deterministic)
    return self._post(self.ln_mlp, x + self.dropout(h, deterministic=deterministic))
