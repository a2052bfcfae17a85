"""Delta rule (Schlag et al. 2021, "Linear Transformers Are Secretly Fast Weight Programmers"; chunked training as in
Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule over Sequence Length").

Per kv head, with beta_t in [0, 1] a scalar:
    S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,    o_t = S_t^T (scale q_t)
each step replaces the value the state holds under key k_t by a beta_t-mix of it and v_t. This is `gated_delta`
with no decay (log gate 0); see that file for the WY representation behind the parallel and chunked forms.
"""

from __future__ import annotations

import jax.numpy as jnp

from attention_research.attention import _recurrent
from attention_research.attention import gated_delta as _gated_delta
from attention_research.attention._recurrent import init_state, state_size  # pylint: disable=unused-import

DEFAULT_CHUNK_SIZE = _recurrent.DEFAULT_CHUNK_SIZE


def delta(q, k, v, *, beta, mask=None, is_causal=True, scale=None, return_weights=False, implementation='chunked',
          chunk_size=DEFAULT_CHUNK_SIZE, initial_state=None, return_state=False, normalize_qk=False):
  """The delta rule as attention.

  Args:
    beta: [..., T, K], the writing strength (values outside [0, 1] are accepted and computed as written).
    Everything else as in `gated_delta.gated_delta`: q [..., T, N, H], k [..., T, K, H] (not normalised here),
    v [..., T, K, V], key-padding mask (a padded position leaves the state unchanged), is_causal True only, scale
    (default 1 / sqrt(H)), implementation 'parallel' | 'chunked' | 'recurrent', chunk_size, initial_state,
    normalize_qk.

  Returns:
    out [..., T, N, V] in v's dtype, or (out, weights), (out, state), (out, weights, state).
  """
  return _gated_delta.delta_rule('delta', q, k, v, beta=beta, log_gate=None, mask=mask, is_causal=is_causal,
                                 scale=scale, return_weights=return_weights, implementation=implementation,
                                 chunk_size=chunk_size, initial_state=initial_state, return_state=return_state,
                                 normalize_qk=normalize_qk)


# Hooks for layers (see registry): beta = sigmoid(x beta_proj) [..., T, K]; queries and keys L2-normalised as the
# delta rule needs (Schlag et al. 2021; Yang et al. 2024) unless the options say normalize_qk=False.
EXAMPLE_OPTIONS = _recurrent.EXAMPLE_OPTIONS


def init_layer_params(key, *, num_kv_heads, in_features, dtype, **_):
  return _recurrent.init_beta_params(key, in_features=in_features, num_kv_heads=num_kv_heads, dtype=dtype)


def call_kwargs(params, *, inputs_q, options, **_):
  return {'beta': _recurrent.write_strength(params, inputs_q), 'normalize_qk': options.get('normalize_qk', True)}


def step(state, q_t, k_t, v_t, *, beta, scale=None, normalize_qk=False):
  """One position: state [..., K, H, V], q_t [..., N, H], k_t [..., K, H], v_t [..., K, V], beta [..., K]."""
  b = _recurrent.check_step_gate('delta', 'beta', beta, k_t.shape[:-1])
  return _recurrent.one_step('delta', _gated_delta.FAMILY.step, state, q_t, k_t, v_t, (jnp.zeros_like(b), b), scale,
                              normalize_qk)
