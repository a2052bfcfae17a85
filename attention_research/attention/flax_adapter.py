"""Use any variant as the `attention_fn` of flax's nnx.MultiHeadAttention or linen.MultiHeadDotProductAttention."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attention_research.attention import _checks, registry
from attention_research.attention._dense import weighted_values


def as_flax_attention_fn(name: str = 'dot_product', **options):
  """Returns attention_fn(query, key, value, bias=None, mask=None, ..., module=None) for Flax's attention modules.

  `options` are the variant's own keyword arguments (window=..., num_features=..., params=...). Weight dropout
  and `sow_weights` work for every variant, through the weights it returns (reconstructed for approximate ones).
  """
  variant = registry.get(name)

  def attention_fn(query, key, value, bias=None, mask=None, broadcast_dropout=True, dropout_rng=None,
                   dropout_rate=0.0, deterministic=True, dtype=None, precision=None, module=None,
                   is_causal=False, **unused):
    del precision, unused
    if dtype is not None:
      query, key, value = (x.astype(dtype) for x in (query, key, value))
    if mask is not None:
      mask = jnp.asarray(mask).astype(bool)  # Flax's make_*_mask helpers give float 0/1 masks
    kwargs = dict(options, mask=mask, is_causal=is_causal)
    if bias is not None:
      kwargs['bias'] = bias
    use_dropout = dropout_rate > 0.0 and not deterministic
    if not use_dropout and module is None:
      return variant.fn(query, key, value, **kwargs)
    out, w = variant.fn(query, key, value, return_weights=True, **kwargs)
    if module is not None:
      _sow(module, w)
    if use_dropout:
      if dropout_rng is None:
        raise ValueError('dropout_rate > 0 with deterministic=False needs a dropout_rng.')
      shape = (1,) * (w.ndim - 2) + w.shape[-2:] if broadcast_dropout else w.shape
      keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, shape)
      w = jnp.where(keep, w / (1.0 - dropout_rate), 0.0)
      d = _checks.check_qkv(query, key, value, same_head_size=False)
      out = weighted_values(w.reshape((d.B,) + w.shape[-3:]), value, d)
    return out

  return attention_fn


def _sow(module, weights):
  from flax import nnx  # pylint: disable=g-import-not-at-top
  if isinstance(module, nnx.Module):
    # NNX collects intermediates only inside nnx.capture (which gives each module __captures__); a sow
    # outside one is deprecated, so the weights are then simply not kept.
    if hasattr(module, '__captures__'):
      module.sow(nnx.Intermediate, 'attention_weights', weights)
  else:
    module.sow('intermediates', 'attention_weights', weights)
