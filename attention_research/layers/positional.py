"""Positional modules: learned absolute embeddings and learned T5-style relative biases."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research.attention import positional

POSITIONAL_SCHEMES = ('sinusoidal', 'learned', 'rope', 'alibi', 'relative', 'none')


def check_scheme(name: str) -> str:
  if name not in POSITIONAL_SCHEMES:
    raise ValueError(f'unknown positional scheme {name!r}; known: {POSITIONAL_SCHEMES}.')
  return name


class LearnedPositionEmbedding(nnx.Module):
  def __init__(self, max_length: int, features: int, *, rngs: nnx.Rngs):
    self.max_length = max_length
    self.table = nnx.Param(jax.random.normal(rngs.params(), (max_length, features)) * 0.02)

  def __call__(self, positions):
    positions = jnp.asarray(positions)
    # Out-of-range gathers clamp silently in JAX, so check whenever the positions are concrete.
    if not isinstance(positions, jax.core.Tracer) and positions.size and int(positions.max()) >= self.max_length:
      raise ValueError(f'position {int(positions.max())} >= max_length={self.max_length} of the learned table.')
    return self.table[...][positions]


class RelativePositionBias(nnx.Module):
  """T5's learned bias per (bucketed) relative distance and head; returns [N, T, S] to add to the scores."""

  def __init__(self, num_heads: int, *, num_buckets: int = 32, max_distance: int = 128,
               bidirectional: bool = True, rngs: nnx.Rngs):
    self.table = nnx.Param(jax.random.normal(rngs.params(), (num_buckets, num_heads)) * 0.02)
    self.max_distance, self.bidirectional = max_distance, bidirectional

  def __call__(self, T: int, S: int | None = None, *, offset: int | None = None):
    return positional.t5_relative_bias(self.table[...], T, S, bidirectional=self.bidirectional,
                                       max_distance=self.max_distance, offset=offset)
