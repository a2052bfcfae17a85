"""Short causal convolution over positions: the depthwise convolution + SiLU that recurrent attention layers put on
their query, key and value projections (H3, Mamba, DeltaNet / Gated DeltaNet; flash-linear-attention's
ShortConvolution), so that each position mixes in its few predecessors before the recurrence."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def check_kernel_size(kernel_size) -> int:
  if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 0:
    raise ValueError(f'short_conv must be a non-negative int kernel size (0 = off); got {kernel_size!r}.')
  return kernel_size


class ShortConvolution(nnx.Module):
  """y_t = silu(sum_i w_i * x_{t - K + 1 + i}) per feature, K = kernel_size, with x_t = 0 before the sequence
  (or, when decoding, the last K - 1 inputs of the previous steps, from `cache`).

  Args:
    features: D, the width of x [..., T, D].
    kernel_size: K >= 1 positions (the current one and K - 1 before it).
  """

  def __init__(self, features: int, kernel_size: int, *, param_dtype=jnp.float32, rngs: nnx.Rngs):
    if check_kernel_size(kernel_size) < 1:
      raise ValueError(f'ShortConvolution needs kernel_size >= 1; got {kernel_size}.')
    self.features, self.kernel_size = features, kernel_size
    # PyTorch's Conv1d default for a depthwise convolution (fan in = K), which ShortConvolution inherits.
    bound = 1.0 / kernel_size ** 0.5
    self.kernel = nnx.Param(jax.random.uniform(rngs.params(), (kernel_size, features), param_dtype, -bound, bound))

  def init_cache(self, batch_shape, dtype=jnp.float32):
    """The inputs before the first decoded position: zeros [..., K - 1, D]."""
    return jnp.zeros(tuple(batch_shape) + (self.kernel_size - 1, self.features), dtype)

  def __call__(self, x, cache=None):
    """x [..., T, D] -> (y [..., T, D], new cache [..., K - 1, D]: the last K - 1 inputs, the earlier ones first)."""
    if x.shape[-1] != self.features:
      raise ValueError(f'ShortConvolution of {self.features} features got x of shape {x.shape}.')
    K, T = self.kernel_size, x.shape[-2]
    if cache is None:
      cache = self.init_cache(x.shape[:-2], x.dtype)
    x_ext = jnp.concatenate([cache.astype(x.dtype), x], axis=-2)  # [..., K - 1 + T, D]
    w = self.kernel[...].astype(x.dtype)
    y = sum(w[i] * x_ext[..., i:i + T, :] for i in range(K))
    return jax.nn.silu(y), x_ext[..., x_ext.shape[-2] - (K - 1):, :]
