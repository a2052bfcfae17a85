"""Flash attention: exact softmax attention in blocks, O(T + S) memory in the forward and backward pass.

Equal to `dot_product` (values and gradients) up to float rounding; see `_blocked` for the kernel. Causal
attention skips the key blocks above the diagonal instead of computing and masking them.

On a GPU, half-precision inputs that cuDNN's fused attention accepts go to
`jax.nn.dot_product_attention(implementation='cudnn')`; those it does not take (boolean masks, soft-caps,
sinks) run the fused Pallas forward of `_pallas_gpu` when its shapes fit; everything else, and every CPU call,
runs the blocked kernel. A few query rows (T * N <= 64: a decoding step) take the dense form, whose scores are only
[N, T, S] and which reads the key/value cache in place.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attention_research.attention import _blocked, _checks, _pallas_gpu
from attention_research.attention._dense import FEW_QUERY_ROWS, reference

# cuDNN's fused attention: 16-bit inputs, head sizes up to 128 in steps of 8.
_CUDNN_DTYPES = (jnp.float16, jnp.bfloat16)
_CUDNN_MAX_HEAD = 128


def _cudnn_fits(q, k, v, d: _checks.Dims, mask, bias, is_causal, block_q, block_k) -> bool:
  """True where cuDNN computes exactly what the blocked kernel would (checked when tracing)."""
  if jax.default_backend() != 'gpu' or block_q is not None or block_k is not None:
    return False
  if not all(x.dtype == q.dtype for x in (k, v)) or q.dtype not in _CUDNN_DTYPES:
    return False
  if q.ndim != 4 or d.H != d.V or d.H % 8 or d.H > _CUDNN_MAX_HEAD:
    return False
  # A mask can empty a row, which must give zeros here; jax.nn's causal mask is top-left aligned, which is
  # ours (queries are the last T keys) only when T == S.
  return mask is None and (bias is None or bias.ndim == 4) and (not is_causal or d.T == d.S)


def _cudnn(q, k, v, bias, is_causal, scale, d: _checks.Dims):
  try:
    return jax.nn.dot_product_attention(q, k, v, bias=bias, is_causal=is_causal,
                                        scale=_checks.default_scale(scale, d.H), implementation='cudnn')
  except (NotImplementedError, ValueError, RuntimeError):  # this cuDNN rejects the shapes: use the kernel
    return None


def flash(q, k, v, *, mask=None, bias=None, is_causal=False, scale=None, return_weights=False,
          sinks=None, logit_soft_cap=None, block_q=None, block_k=None):
  """softmax(q k^T * scale + bias) v computed block by block with an online softmax.

  Args:
    q: [..., T, N, H] queries.  k: [..., S, K, H] keys.  v: [..., S, K, V] values; N % K == 0.
    mask: bool broadcastable to [..., N, T, S]; True = may attend. Rows with no visible key give zeros.
    bias: float broadcastable to [..., N, T, S], added to the scores (differentiable).
    is_causal: query t sees keys s <= t + S - T; key blocks past the diagonal are skipped.
    scale: score scale; defaults to 1/sqrt(H).
    return_weights: also return the [..., N, T, S] weights, from the reference (materialises T x S).
    sinks: [N] attention-sink logits (a key per head without value, see `dot_product`); differentiable.
    logit_soft_cap: c > 0 maps the scaled logits s to c * tanh(s / c) before bias and mask (Gemma 2).
    block_q, block_k: query/key block sizes (defaults suit a CPU; lengths need not be multiples).

  Returns:
    out [..., T, N, V] in v's dtype, or (out, weights) with return_weights=True.
  """
  d = _checks.check_qkv(q, k, v)
  mask, bias = _checks.check_mask_bias(mask, bias, d)
  sinks = _checks.check_sinks(sinks, d)
  logit_soft_cap = _checks.check_soft_cap(logit_soft_cap)
  for name, size in (('block_q', block_q), ('block_k', block_k)):
    if size is not None:
      _checks.check_int(name, size)
  if return_weights:
    return reference(q, k, v, mask=mask, bias=bias, is_causal=is_causal, scale=scale, return_weights=True,
                     sinks=sinks, logit_soft_cap=logit_soft_cap)
  plain = sinks is None and logit_soft_cap is None  # what cuDNN's fused attention computes
  if plain and _cudnn_fits(q, k, v, d, mask, bias, is_causal, block_q, block_k):
    out = _cudnn(q, k, v, bias, is_causal, scale, d)
    if out is not None:
      return out
  if block_q is None and block_k is None and d.T * d.N <= FEW_QUERY_ROWS:
    # A decoding step: one query block would visit every key block in a loop, while the dense form reads the
    # cache once in place (see _dense.few_queries); its scores are only [N, T, S].
    return reference(q, k, v, mask=mask, bias=bias, is_causal=is_causal, scale=scale, sinks=sinks,
                     logit_soft_cap=logit_soft_cap)
  default_blocks = block_q is None and block_k is None
  if default_blocks and _pallas_gpu.fits(q, k, v, d, bias, mask, sinks, logit_soft_cap):
    return _pallas_gpu.attention(q, k, v, d, mask=mask, scale=scale, left=_blocked.UNBOUNDED,
                                 right=0 if is_causal else _blocked.UNBOUNDED, sinks=sinks,
                                 soft_cap=logit_soft_cap)
  return _blocked.blocked_attention(q, k, v, d, mask=mask, bias=bias, scale=scale, is_causal=is_causal,
                                    block_q=block_q, block_k=block_k, sinks=sinks, soft_cap=logit_soft_cap)
