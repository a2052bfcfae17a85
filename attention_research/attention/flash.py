"""Flash attention: exact softmax attention in blocks, O(T + S) memory in the forward and backward pass.

Equal to `dot_product` (values and gradients) up to float rounding; see `_blocked` for the kernel. Causal
attention skips the key blocks above the diagonal instead of computing and masking them.
"""

from __future__ import annotations

from attention_research.attention import _blocked, _checks
from attention_research.attention.dot_product import reference


def flash(q, k, v, *, mask=None, bias=None, is_causal=False, scale=None, return_weights=False,
          block_q=None, block_k=None):
  """softmax(q k^T * scale + bias) v computed block by block with an online softmax.

  Args:
    q: [..., T, N, H] queries.  k: [..., S, K, H] keys.  v: [..., S, K, V] values; N % K == 0.
    mask: bool broadcastable to [..., N, T, S]; True = may attend. Rows with no visible key give zeros.
    bias: float broadcastable to [..., N, T, S], added to the scores (differentiable).
    is_causal: query t sees keys s <= t + S - T; key blocks past the diagonal are skipped.
    scale: score scale; defaults to 1/sqrt(H).
    return_weights: also return the [..., N, T, S] weights, from the reference (materialises T x S).
    block_q, block_k: query/key block sizes (defaults suit a CPU; lengths need not be multiples).

  Returns:
    out [..., T, N, V] in v's dtype, or (out, weights) with return_weights=True.
  """
  d = _checks.check_qkv(q, k, v)
  mask, bias = _checks.check_mask_bias(mask, bias, d)
  if return_weights:
    return reference(q, k, v, mask=mask, bias=bias, is_causal=is_causal, scale=scale, return_weights=True)
  return _blocked.blocked_attention(q, k, v, d, mask=mask, bias=bias, scale=scale, is_causal=is_causal,
                                    block_q=block_q, block_k=block_k)
