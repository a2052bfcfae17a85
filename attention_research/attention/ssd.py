"""State space duality (Dao & Gu 2024, "Transformers are SSMs", Mamba-2): linear attention with one scalar decay
per head and position.

Per kv head, with g_t = log_gate_t <= 0 a scalar:
    S_t = exp(g_t) S_{t-1} + k_t v_t^T,    o_t = S_t^T (scale q_t)
In Mamba-2 terms q = C, k = B (times the step size), v = x and g = dt * A. This is `gla` with a gate of width 1,
which makes the intra-chunk decay a [L, L] matrix per head instead of [H, L, L].
"""

from __future__ import annotations

from attention_research.attention import _recurrent
from attention_research.attention import gla as _gla
from attention_research.attention._recurrent import init_state, state_size  # pylint: disable=unused-import

DEFAULT_CHUNK_SIZE = _recurrent.DEFAULT_CHUNK_SIZE


def ssd(q, k, v, *, log_gate, mask=None, is_causal=True, scale=None, return_weights=False, implementation='chunked',
        chunk_size=DEFAULT_CHUNK_SIZE, initial_state=None, return_state=False):
  """Mamba-2's scalar-decay recurrence as attention.

  Args:
    log_gate: [..., T, K], the log of the per-head decay (<= 0; not checked).
    Everything else as in `gla.gla`: q [..., T, N, H], k [..., T, K, H], v [..., T, K, V], key-padding mask (a padded
    position neither decays nor writes the state), is_causal True only, scale (default 1 / sqrt(H)),
    implementation 'parallel' | 'chunked' | 'recurrent', chunk_size, initial_state [..., K, H, V].

  Returns:
    out [..., T, N, V] in v's dtype, or (out, weights), (out, state), (out, weights, state).
  """
  return _gla.diagonal('ssd', q, k, v, lambda x: x.gate('log_gate', log_gate)[..., None], mask=mask,
                       is_causal=is_causal, scale=scale, return_weights=return_weights,
                       implementation=implementation, chunk_size=chunk_size, initial_state=initial_state,
                       return_state=return_state)


# Hooks for layers (see registry): Mamba-2's decay, log_gate = -exp(a_log) softplus(x dt_proj + dt_bias) [..., T, K].
# (Mamba-2 also scales its input by the step size dt; here k and v stay the layer's projections.)
EXAMPLE_OPTIONS = _recurrent.EXAMPLE_OPTIONS


def init_layer_params(key, *, num_kv_heads, in_features, dtype, **_):
  return _recurrent.init_decay_params(key, in_features=in_features, num_kv_heads=num_kv_heads, dtype=dtype)


def call_kwargs(params, *, inputs_q, **_):
  return {'log_gate': _recurrent.decay_log_gate(params, inputs_q)}


def step(state, q_t, k_t, v_t, *, log_gate, scale=None):
  """One position: state [..., K, H, V], q_t [..., N, H], k_t [..., K, H], v_t [..., K, V], log_gate [..., K]."""
  g = _recurrent.check_step_gate('ssd', 'log_gate', log_gate, k_t.shape[:-1])
  return _recurrent.one_step('ssd', _gla.FAMILY.step, state, q_t, k_t, v_t, (g[..., None],), scale)
