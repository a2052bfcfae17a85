"""Gated delta rule (Yang et al. 2025, "Gated Delta Networks: Improving Mamba2 with Delta Rule").

Per kv head, with g_t = log_gate_t <= 0 and beta_t in [0, 1] scalars:
    S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,    o_t = S_t^T (scale q_t)
Keys are used as given (the function does not normalise them; the rule is a contraction for |k|^2 beta <= 2).

Chunked form (the WY/UT representation of Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule
over Sequence Length", with decays). Writing S_t = exp(g_t) S_{t-1} + k_t u_t^T, a chunk with state S0 before it and
gamma_t = exp(G_t) (G the cumulative log gate inside the chunk) has
    (I + L) U = diag(beta) (V - diag(gamma) K S0),   L_ts = beta_t exp(G_t - G_s) k_t . k_s for s < t,
solved as U = T V - W S0 with T = (I + L)^{-1} diag(beta) and W = T diag(gamma) K (one forward substitution). Then
    O = (Q K^T * D) U + diag(gamma) Q S0,            D_ts = exp(G_t - G_s) for s <= t,
    S_L = gamma_L S0 + (K * exp(G_L - G))^T U,
both affine in S0, which is what the inter-chunk scan carries. Over the whole sequence with S0 = 0 the implied
attention matrix is w = (Q K^T * D) T. `delta` is this rule with g = 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attention_research.attention import _recurrent
from attention_research.attention._recurrent import init_state, state_size  # pylint: disable=unused-import

DEFAULT_CHUNK_SIZE = _recurrent.DEFAULT_CHUNK_SIZE


def _forward_substitution(l, b):
  """x with (I + l) x = b for l [..., L, L] strictly lower triangular, b [..., L, M]: one row per step.

  On CPU this loop is about 30 times faster than XLA's batched triangular solve.
  """
  def row(t, x):
    l_t = jax.lax.dynamic_index_in_dim(l, t, axis=-2, keepdims=False)
    x_t = jax.lax.dynamic_index_in_dim(b, t, axis=-2, keepdims=False) - jnp.einsum('...s,...sm->...m', l_t, x)
    return jax.lax.dynamic_update_index_in_dim(x, x_t, t, axis=-2)

  if l.shape[-1] == 0:  # no rows (an empty sequence): the body would not even trace
    return jnp.zeros_like(b)
  return jax.lax.fori_loop(0, l.shape[-1], row, jnp.zeros_like(b))


@jax.custom_vjp
def unit_lower_solve(l, b):
  """(I + l)^{-1} b for l strictly lower triangular (entries on and above the diagonal are ignored)."""
  return _forward_substitution(l * jnp.tri(l.shape[-1], k=-1, dtype=l.dtype), b)


def _solve_fwd(l, b):
  x = unit_lower_solve(l, b)
  return x, (l, x)


def _solve_bwd(res, gx):
  # The gradient needs (I + l)^{-T} gx, an upper triangular system: reversing positions makes it lower triangular
  # again, so the backward pass is one more forward substitution and keeps no per-row residuals.
  l, x = res
  strict = jnp.tri(l.shape[-1], k=-1, dtype=l.dtype)
  l_rev = jnp.flip(jnp.swapaxes(l * strict, -1, -2), (-2, -1))
  gb = jnp.flip(_forward_substitution(l_rev, jnp.flip(gx, -2)), -2)
  return -jnp.einsum('...tm,...sm->...ts', gb, x) * strict, gb


unit_lower_solve.defvjp(_solve_fwd, _solve_bwd)


def _wy(q, k, g, beta):
  """Pieces of one chunk: decayed causal scores a [..., G, L, L], the strictly lower L, log gates G [..., L]."""
  L = k.shape[-2]
  gc = jnp.cumsum(g, axis=-1)
  decay = _recurrent.causal_decay(gc)
  strict = jnp.tri(L, k=-1, dtype=jnp.float32)
  l = beta[..., :, None] * jnp.einsum('...th,...sh->...ts', k, k) * decay * strict
  a = jnp.einsum('...tgh,...sh->...gts', q, k) * decay[..., None, :, :]
  return a, l, gc


def _intra(q, k, v, g, beta):
  a, l, gc = _wy(q, k, g, beta)
  V = v.shape[-1]
  rhs = beta[..., None] * jnp.concatenate([v, jnp.exp(gc)[..., None] * k], axis=-1)
  x = unit_lower_solve(l, rhs)
  u, w = x[..., :V], x[..., V:]
  o = jnp.einsum('...gts,...sv->...tgv', a, u)
  q_eff = jnp.exp(gc)[..., :, None, None] * q - jnp.einsum('...gts,...sh->...tgh', a, w)
  kd = k * jnp.exp(gc[..., -1:] - gc)[..., None]
  H = k.shape[-1]
  m = jnp.exp(gc[..., -1])[..., None, None] * jnp.eye(H, dtype=jnp.float32) - jnp.einsum('...sh,...sj->...hj', kd, w)
  return o, q_eff, m, jnp.einsum('...sh,...sv->...hv', kd, u)


def _step(s, q, k, v, g, beta):
  k_s = jnp.einsum('...h,...hv->...v', k, s)
  s = jnp.exp(g)[..., None, None] * (s - (beta[..., None] * k)[..., :, None] * k_s[..., None, :])
  s = s + (beta[..., None] * k)[..., :, None] * v[..., None, :]
  return jnp.einsum('...gh,...hv->...gv', q, s), s


def _weights(q, k, v, g, beta):
  del v
  a, l, _ = _wy(q, k, g, beta)
  t = unit_lower_solve(l, beta[..., None, :] * jnp.eye(k.shape[-2], dtype=jnp.float32))
  return jnp.einsum('...gts,...sr->...gtr', a, t)


FAMILY = _recurrent.Family(step=_step, intra=_intra, weights=_weights)


def delta_rule(variant, q, k, v, *, beta, log_gate, mask, is_causal, scale, return_weights, implementation,
               chunk_size, initial_state, return_state, normalize_qk=False):
  """Shared body of gated_delta and delta (log_gate None means no decay)."""
  x = _recurrent.prepare(variant, q, k, v, mask=mask, is_causal=is_causal, scale=scale,
                         implementation=implementation, chunk_size=chunk_size, initial_state=initial_state,
                         normalize_qk=normalize_qk)
  b = x.masked(x.gate('beta', beta))
  g = jnp.zeros_like(b) if log_gate is None else x.masked(x.gate('log_gate', log_gate))
  return _recurrent.attend(x, FAMILY, (g, b), implementation=implementation, chunk_size=chunk_size,
                           return_weights=return_weights, return_state=return_state)


def gated_delta(q, k, v, *, beta, log_gate, mask=None, is_causal=True, scale=None, return_weights=False,
                implementation='chunked', chunk_size=DEFAULT_CHUNK_SIZE, initial_state=None, return_state=False,
                normalize_qk=False):
  """The gated delta rule as attention.

  Args:
    q: [..., T, N, H].  k: [..., T, K, H].  v: [..., T, K, V]; N % K == 0, query head n reads kv head n // (N / K).
    beta: [..., T, K], the writing strength. Values outside [0, 1] are accepted and computed as written (not
      checked: they may be traced), but the state is then no longer a contraction of the past.
    log_gate: [..., T, K], the log of the per-head decay (<= 0; not checked).
    mask: key padding only, bool broadcastable to [..., 1, 1, T] (True = real key). A padded position is the
      identity on the state (beta and g set to 0). Outputs at padded positions are not zeroed.
    is_causal: must be True (or left out): the recurrence is causal by construction.
    scale: multiplies q; default 1 / sqrt(H).
    return_weights: also return the implied matrix w [..., N, T, T] (float32, from the parallel form) with
      out = w v when there is no initial state.
    implementation: 'parallel' (quadratic, a forward substitution over T), 'chunked' (linear in T) or 'recurrent'.
    chunk_size: chunk length of the chunked form (T need not be a multiple).
    initial_state: [..., K, H, V] state before position 0 (default zeros).
    return_state: also return the state after the last position, float32 [..., K, H, V].
    normalize_qk: divide every query and key by its L2 norm first (in float32, before scale), as Gated DeltaNet
      does; then |k|^2 = 1 and the rule is a contraction for beta in [0, 2].

  Returns:
    out [..., T, N, V] in v's dtype; with return_weights and/or return_state: (out, weights), (out, state) or
    (out, weights, state).
  """
  return delta_rule('gated_delta', q, k, v, beta=beta, log_gate=log_gate, mask=mask, is_causal=is_causal,
                    scale=scale, return_weights=return_weights, implementation=implementation,
                    chunk_size=chunk_size, initial_state=initial_state, return_state=return_state,
                    normalize_qk=normalize_qk)


# Hooks for layers (see registry), as in Gated DeltaNet: beta = sigmoid(x beta_proj) and Mamba-2's decay
# log_gate = -exp(a_log) softplus(x dt_proj + dt_bias), both [..., T, K]; queries and keys L2-normalised unless
# the options say normalize_qk=False.
EXAMPLE_OPTIONS = _recurrent.EXAMPLE_OPTIONS


def init_layer_params(key, *, num_kv_heads, in_features, dtype, **_):
  kb, kg = jax.random.split(key)
  return {**_recurrent.init_beta_params(kb, in_features=in_features, num_kv_heads=num_kv_heads, dtype=dtype),
          **_recurrent.init_decay_params(kg, in_features=in_features, num_kv_heads=num_kv_heads, dtype=dtype)}


def call_kwargs(params, *, inputs_q, options, **_):
  return {'beta': _recurrent.write_strength(params, inputs_q), 'log_gate': _recurrent.decay_log_gate(params, inputs_q),
          'normalize_qk': options.get('normalize_qk', True)}


def step(state, q_t, k_t, v_t, *, beta, log_gate, scale=None, normalize_qk=False):
  """One position: state [..., K, H, V], q_t [..., N, H], k_t [..., K, H], v_t [..., K, V], beta and log_gate
  [..., K] -> (out_t [..., N, V] in v's dtype, new state)."""
  b = _recurrent.check_step_gate('gated_delta', 'beta', beta, k_t.shape[:-1])
  g = _recurrent.check_step_gate('gated_delta', 'log_gate', log_gate, k_t.shape[:-1])
  return _recurrent.one_step('gated_delta', _step, state, q_t, k_t, v_t, (g, b), scale, normalize_qk)
