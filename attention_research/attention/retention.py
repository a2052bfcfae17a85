"""Retention (Sun et al. 2023, "Retentive Network: A Successor to Transformer for Large Language Models").

Per kv head j, with one constant decay gamma_j = exp(log_decay_j) < 1:
    S_t = gamma_j S_{t-1} + k_t v_t^T,    o_t = S_t^T (scale q_t)
i.e. o_t = sum_{s <= t} gamma_j^(t - s) (scale q_t . k_s) v_s. The default decays are RetNet's,
gamma_j = 1 - 2^(-5 - j). The rotation (xPos) and the group norm of a RetNet layer are not part of this function.
This is `ssd` with a gate that does not depend on the position.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from attention_research.attention import _recurrent
from attention_research.attention import gla as _gla
from attention_research.attention._recurrent import init_state, state_size  # pylint: disable=unused-import

DEFAULT_CHUNK_SIZE = _recurrent.DEFAULT_CHUNK_SIZE


def default_log_decay(num_kv_heads: int):
  """RetNet's per-head decays log(1 - 2^(-5 - j)), float32 [K]."""
  return jnp.asarray(np.log1p(-2.0 ** (-5.0 - np.arange(num_kv_heads))), jnp.float32)


def _log_decay(log_decay, K, where):
  if log_decay is None:
    return default_log_decay(K)
  log_decay = jnp.asarray(log_decay, jnp.float32)
  if log_decay.shape != (K,):
    raise ValueError(f'{where}: log_decay must have shape [K] = ({K},), one decay per kv head; got {log_decay.shape}.')
  return log_decay


def retention(q, k, v, *, log_decay=None, mask=None, is_causal=True, scale=None, return_weights=False,
              implementation='chunked', chunk_size=DEFAULT_CHUNK_SIZE, initial_state=None, return_state=False):
  """Retention with a constant decay per kv head.

  Args:
    log_decay: [K], log of each kv head's decay (<= 0; not checked); default RetNet's log(1 - 2^(-5 - j)).
    Everything else as in `gla.gla`: q [..., T, N, H], k [..., T, K, H], v [..., T, K, V], key-padding mask (a padded
    position neither decays nor writes the state), is_causal True only, scale (default 1 / sqrt(H)),
    implementation 'parallel' | 'chunked' | 'recurrent', chunk_size, initial_state [..., K, H, V].

  Returns:
    out [..., T, N, V] in v's dtype, or (out, weights), (out, state), (out, weights, state).
  """
  def gate(x):
    g = _log_decay(log_decay, x.d.K, 'retention')
    return jnp.broadcast_to(g[None, :, None, None], (x.d.B, x.d.K, x.d.T, 1))

  return _gla.diagonal('retention', q, k, v, gate, mask=mask, is_causal=is_causal, scale=scale,
                       return_weights=return_weights, implementation=implementation, chunk_size=chunk_size,
                       initial_state=initial_state, return_state=return_state)


# Hooks for layers (see registry): no parameters; the fixed decays are passed explicitly so that a caller repeating
# kv heads (grouped-query to multi-head) sees them.
EXAMPLE_OPTIONS = _recurrent.EXAMPLE_OPTIONS


def call_kwargs(params, *, k, options, **_):
  del params
  return {'log_decay': options['log_decay'] if options.get('log_decay') is not None else default_log_decay(k.shape[-2])}


def step(state, q_t, k_t, v_t, *, log_decay=None, scale=None):
  """One position: state [..., K, H, V], q_t [..., N, H], k_t [..., K, H], v_t [..., K, V], log_decay [K]."""
  g = _log_decay(log_decay, k_t.shape[-2], 'retention.step')
  g = jnp.broadcast_to(g[:, None], k_t.shape[:-1] + (1,))
  return _recurrent.one_step('retention', _gla.FAMILY.step, state, q_t, k_t, v_t, (g,), scale)
