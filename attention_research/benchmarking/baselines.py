"""Implementations outside the project that every row is compared with: jax.nn and (when installed) PyTorch.

torch is not a dependency: `torch_sdpa` returns a skip reason instead of a case when it is not importable.
Both take the package's layout q [B, T, N, H], k/v [B, S, K, H]; torch gets its own [B, N, T, H] copies,
made before timing starts.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from attention_research.benchmarking import timing

TORCH_MISSING = 'skipped: torch not installed'
# jax.nn's XLA path materialises [B, N, T, S] float32 scores (three such arrays with the backward pass).
MAX_MATERIALISED_BYTES = 4 << 30


def materialised_bytes(B, N, T, S, backward: bool) -> int:
  return B * N * T * S * 4 * (3 if backward else 1)


def jax_nn(*, is_causal=False, window=None):
  """jax.nn.dot_product_attention as a function of (q, k, v) (window: its local_window_size)."""
  local = None if window is None else (window, window)
  return lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=is_causal, local_window_size=local)


def with_backward(fn, cotangent):
  """(q, k, v) -> (loss, grads): the forward and backward pass of <fn(q, k, v), cotangent>."""
  return jax.value_and_grad(lambda q, k, v: jnp.sum(fn(q, k, v).astype(jnp.float32) * cotangent), (0, 1, 2))


def torch_module():
  # Timings interleave torch and XLA calls on the same cores. OpenMP's default lets torch's idle threads
  # spin after every call, which took CPU from the XLA call timed next (flash forward at 4096: 88 instead
  # of 137 GFLOP/s); passive waiting keeps each side's time its own. It must be set before torch loads.
  os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return torch


def torch_sdpa(q, k, v, cotangent, *, is_causal: bool, backward: bool) -> timing.Prepared | str:
  """torch.nn.functional.scaled_dot_product_attention on copies of q, k, v (and its backward pass)."""
  torch = torch_module()
  if torch is None:
    return TORCH_MISSING
  dtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[str(q.dtype)]

  def to_torch(x):  # [B, L, heads, H] -> [B, heads, L, H], contiguous like a model's own tensors
    t = torch.from_numpy(np.array(jnp.asarray(x, jnp.float32))).transpose(1, 2).contiguous().to(dtype)
    return t.requires_grad_(backward)

  tq, tk, tv = to_torch(q), to_torch(k), to_torch(v)
  tcot = to_torch(cotangent).detach()
  gqa = q.shape[-2] != k.shape[-2]

  def forward():
    return torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=is_causal, enable_gqa=gqa)

  if backward:
    def call():
      return torch.autograd.grad(forward(), (tq, tk, tv), tcot)
  else:
    def call():
      with torch.no_grad():
        return forward()
  return timing.Prepared(call)
