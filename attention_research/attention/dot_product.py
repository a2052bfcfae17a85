"""Scaled dot-product attention: the public entry point, choosing the reference or the blocked kernel.

The reference itself and the dense helpers live in `_dense`; this module only dispatches.
"""

from __future__ import annotations

from attention_research.attention import _checks
from attention_research.attention._dense import reference
from attention_research.attention.flash import flash
from attention_research.attention.normalizers import NORMALIZING, get_normalizer

__all__ = ['dot_product', 'reference', 'IMPLEMENTATIONS', 'AUTO_FLASH_MIN_SCORES']

IMPLEMENTATIONS = ('auto', 'reference', 'flash')

# Below this many scores per head the blocked kernel's loop overhead outweighs the memory it saves.
AUTO_FLASH_MIN_SCORES = 256 * 256


def dot_product(q, k, v, *, mask=None, bias=None, is_causal=False, scale=None, return_weights=False,
                normalizer='softmax', sinks=None, logit_soft_cap=None, sigmoid_bias=None, implementation='auto'):
  """Scaled dot-product attention, softmax(q k^T * scale + bias) v, with the layout of jax.nn.dot_product_attention.

  Args:
    q: [..., T, N, H] queries.  k: [..., S, K, H] keys.  v: [..., S, K, V] values; N % K == 0
      (K < N is grouped-query attention, K == 1 multi-query).
    mask: bool broadcastable to [..., N, T, S]; True = may attend.
    bias: float broadcastable to [..., N, T, S], added to the scores.
    is_causal: query t sees keys s <= t + S - T.
    scale: score scale; defaults to 1/sqrt(H).
    return_weights: also return the weights [..., N, T, S] (always computed by the reference path).
    normalizer: 'softmax', 'sparsemax', 'entmax15' or 'sigmoid' (sigmoid(s + sigmoid_bias) per key, unnormalised).
    sinks: [N] learned attention-sink logits, one per query head: a key without value that takes a share of
      the normalisation, p_ts = exp(s_ts) / (exp(sink_n) + sum_s' exp(s_ts')); the weights then sum to < 1.
      Not with normalizer='sigmoid', which does not normalise.
    logit_soft_cap: c > 0 maps the scaled logits s = q.k * scale to c * tanh(s / c) (Gemma 2), before the bias
      and the mask are applied (Gemma 2 caps the scaled logits before masking and has no bias).
    sigmoid_bias: the b of normalizer='sigmoid'; defaults to -log(S) (Ramapuram et al. 2024).
    implementation: 'reference' materialises the score matrix; 'flash' runs the blocked exact kernel;
      'auto' takes the blocked kernel for softmax without weights on long inputs, the reference otherwise.

  Returns:
    out [..., T, N, V], or (out, weights) with return_weights=True. Rows with every key masked give zeros.
  """
  d = _checks.check_qkv(q, k, v)
  mask, bias = _checks.check_mask_bias(mask, bias, d)
  get_normalizer(normalizer)
  sinks = _checks.check_sinks(sinks, d)
  logit_soft_cap = _checks.check_soft_cap(logit_soft_cap)
  if sinks is not None and normalizer not in NORMALIZING:
    raise ValueError(f'sinks need a normaliser whose weights sum to 1 ({NORMALIZING}); got {normalizer!r}.')
  if sigmoid_bias is not None and normalizer != 'sigmoid':
    raise ValueError(f'sigmoid_bias applies to normalizer=\'sigmoid\' only; got normalizer={normalizer!r}.')
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f'unknown implementation {implementation!r}; known: {IMPLEMENTATIONS}.')
  wants_flash = implementation == 'flash' or (
      implementation == 'auto' and d.T * d.S >= AUTO_FLASH_MIN_SCORES)
  if wants_flash and not return_weights and normalizer == 'softmax':
    return flash(q, k, v, mask=mask, bias=bias, is_causal=is_causal, scale=scale, sinks=sinks,
                 logit_soft_cap=logit_soft_cap)
  return reference(q, k, v, mask=mask, bias=bias, is_causal=is_causal, scale=scale,
                   return_weights=return_weights, normalizer=normalizer, sinks=sinks,
                   logit_soft_cap=logit_soft_cap, sigmoid_bias=sigmoid_bias)
