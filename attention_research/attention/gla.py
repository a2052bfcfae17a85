"""Gated linear attention (Yang et al. 2024, "Gated Linear Attention Transformers with Hardware-Efficient Training").

Per kv head, with g_t = log_gate_t <= 0 (one value per key channel):
    S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,    o_t = S_t^T (scale q_t)
so o_t = sum_{s <= t} (scale q_t * exp(G_t - G_s)) . k_s v_s with G the cumulative sum of g.

This file also holds the machinery of every diagonal-decay recurrence: `ssd` (one gate per head) and `retention`
(one constant per head) are the same computation with a gate of width E = 1 instead of E = H.
Internal layout as in `_recurrent`; E gate width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attention_research.attention import _recurrent
from attention_research.attention._recurrent import init_state, state_size  # pylint: disable=unused-import

DEFAULT_CHUNK_SIZE = _recurrent.DEFAULT_CHUNK_SIZE


def cumsum(g):
  """Cumulative sum over positions (axis -2) as an associative scan: jnp.cumsum lowers to a reduce-window on CPU,
  which timed about 2x slower than the scan on chunk-shaped gates [B, K, c, C, H]."""
  return jax.lax.associative_scan(jnp.add, g, axis=g.ndim - 2)


def _scores(q, k, g):
  """The decayed causal scores [..., G, L, L] and the cumulative log gates [..., L, E] of one chunk."""
  gc = cumsum(g)
  decay = _recurrent.causal_decay(jnp.swapaxes(gc, -1, -2))  # [..., E, L, L]
  if g.shape[-1] == 1:
    a = jnp.einsum('...tgh,...sh->...gts', q, k) * decay[..., None, 0, :, :]
  else:
    a = jnp.einsum('...tgh,...sh,...hts->...gts', q, k, decay)
  return a, gc


def _intra(q, k, v, g):
  a, gc = _scores(q, k, g)
  o = jnp.einsum('...gts,...sv->...tgv', a, v)
  q_eff = q * jnp.exp(gc)[..., :, None, :]
  r = jnp.einsum('...sh,...sv->...hv', k * jnp.exp(gc[..., -1:, :] - gc), v)
  return o, q_eff, jnp.exp(gc[..., -1, :]), r


# Block length below which the chunked form's per-channel gate forms its decay tensor (see _halving_intra); 4 timed
# fastest of 1, 2, 4, 8 for chunks of 64 and 128 (B=1, 8 heads, H=64, T=4096).
LEAF = 4


def _halving_intra(q, k, v, g):
  """`_intra` of one chunk for a gate per key channel (E = H), with matmuls instead of a [L, L, H] decay tensor.

  The chunk (zero-padded to a power of two; padding neither decays nor writes) is halved recursively. Queries of
  a second half attend to keys of its first half through the cumulative gate m at the last key of that half:
      exp(G_t - G_s) = exp(G_t - m) exp(m - G_s),    both factors at most 1 (the gates are <= 0),
  so the first scales the queries and the second the keys, none overflows however small the gates are, and the
  block is a matmul. Blocks of LEAF positions on the diagonal use `_intra`'s decay tensor, [LEAF, LEAF, H] each.
  Elementwise work per position is then about H (LEAF + 3 log2(L / LEAF)) instead of H L.
  """
  L = k.shape[-2]
  if g.shape[-1] == 1 or L <= LEAF:
    return _intra(q, k, v, g)
  P2 = 1 << (L - 1).bit_length()
  if P2 != L:
    pad = lambda x, axis: jnp.pad(x, [(0, 0)] * (x.ndim + axis) + [(0, P2 - L)] + [(0, 0)] * (-axis - 1))
    q, k, v, g = pad(q, -3), pad(k, -2), pad(v, -2), pad(g, -2)
  gc = cumsum(g)
  lead, G, V = k.shape[:-2], q.shape[-2], v.shape[-1]
  # Leaves: the diagonal blocks of LEAF positions.
  split = lambda x, b, axis: x.reshape(x.shape[:x.ndim + axis] + (-1, b) + x.shape[x.ndim + axis + 1:])
  o, _, _, _ = _intra(split(q, LEAF, -3), split(k, LEAF, -2), split(v, LEAF, -2), split(g, LEAF, -2))
  o = o.reshape(lead + (P2, G, V))
  b = LEAF
  while b < P2:  # second half of every 2b-block attends to its first half
    qs, ks, vs, gs = split(q, 2 * b, -3), split(k, 2 * b, -2), split(v, 2 * b, -2), split(gc, 2 * b, -2)
    m = gs[..., b - 1:b, :]  # [..., P, 1, H]
    q2 = qs[..., b:, :, :] * jnp.exp(gs[..., b:, :] - m)[..., None, :]
    k1 = ks[..., :b, :] * jnp.exp(m - gs[..., :b, :])
    o2 = jnp.einsum('...tgs,...sv->...tgv', jnp.einsum('...tgh,...sh->...tgs', q2, k1), vs[..., :b, :])
    o = o + jnp.concatenate([jnp.zeros_like(o2), o2], axis=-3).reshape(o.shape)
    b *= 2
  o = o[..., :L, :, :]
  q, k, v, gc = q[..., :L, :, :], k[..., :L, :], v[..., :L, :], gc[..., :L, :]
  q_eff = q * jnp.exp(gc)[..., :, None, :]
  r = jnp.einsum('...sh,...sv->...hv', k * jnp.exp(gc[..., -1:, :] - gc), v)
  return o, q_eff, jnp.exp(gc[..., -1, :]), r


def _step(s, q, k, v, g):
  s = jnp.exp(g)[..., None] * s + k[..., :, None] * v[..., None, :]
  return jnp.einsum('...gh,...hv->...gv', q, s), s


def _weights(q, k, v, g):
  del v
  return _scores(q, k, g)[0]


FAMILY = _recurrent.Family(step=_step, intra=_intra, weights=_weights, chunk_intra=_halving_intra)


def diagonal(variant, q, k, v, log_gate_fn, *, mask, is_causal, scale, return_weights, implementation, chunk_size,
             initial_state, return_state):
  """Shared body of gla, ssd and retention: log_gate_fn(prepared) -> float32 gate [B, K, T, E] before masking."""
  x = _recurrent.prepare(variant, q, k, v, mask=mask, is_causal=is_causal, scale=scale,
                         implementation=implementation, chunk_size=chunk_size, initial_state=initial_state)
  g = x.masked(log_gate_fn(x))
  return _recurrent.attend(x, FAMILY, (g,), implementation=implementation, chunk_size=chunk_size,
                           return_weights=return_weights, return_state=return_state)


def gla(q, k, v, *, log_gate, mask=None, is_causal=True, scale=None, return_weights=False, implementation='chunked',
        chunk_size=DEFAULT_CHUNK_SIZE, initial_state=None, return_state=False):
  """Gated linear attention with a per-channel forget gate.

  Args:
    q: [..., T, N, H].  k: [..., T, K, H].  v: [..., T, K, V]; N % K == 0, query head n reads kv head n // (N / K).
    log_gate: [..., T, K, H], the log of the forget gate (<= 0; not checked, positive values make the state grow).
    mask: key padding only, bool broadcastable to [..., 1, 1, T] (True = real key). A padded position is the
      identity on the state: it neither decays it nor writes into it. Outputs at padded positions are not zeroed.
    is_causal: must be True (or left out): the recurrence is causal by construction.
    scale: multiplies q; default 1 / sqrt(H).
    return_weights: also return the implied matrix w [..., N, T, T] (float32, from the parallel form) with
      out = w v when there is no initial state.
    implementation: 'parallel' (quadratic), 'chunked' (linear in T) or 'recurrent' (a scan over time).
    chunk_size: chunk length of the chunked form (T need not be a multiple).
    initial_state: [..., K, H, V] state before position 0 (default zeros).
    return_state: also return the state after the last position, float32 [..., K, H, V].

  Returns:
    out [..., T, N, V] in v's dtype; with return_weights and/or return_state: (out, weights), (out, state) or
    (out, weights, state).
  """
  return diagonal('gla', q, k, v, lambda x: x.gate('log_gate', log_gate, (x.d.H,)), mask=mask, is_causal=is_causal,
                  scale=scale, return_weights=return_weights, implementation=implementation, chunk_size=chunk_size,
                  initial_state=initial_state, return_state=return_state)


# Hooks for layers (see registry): the forget gate of Yang et al. 2024, a low-rank projection of the layer input,
#   log_gate = logsigmoid(x gate_down gate_up + gate_bias) / GATE_NORMALIZER     [..., T, K, H]
# The normaliser (their tau = 16) keeps a fresh layer's gates near 1, i.e. long memory at the start of training.
LAYER_OPTIONS = ('gate_rank',)
DEFAULT_GATE_RANK = 16
GATE_NORMALIZER = 16.0
EXAMPLE_OPTIONS = {**_recurrent.EXAMPLE_OPTIONS, 'gate_rank': 4}


def init_layer_params(key, *, num_kv_heads, head_dim, in_features, dtype, gate_rank=DEFAULT_GATE_RANK, **_):
  if isinstance(gate_rank, bool) or not isinstance(gate_rank, int) or gate_rank < 1:
    raise ValueError(f'gla: gate_rank must be a positive int; got {gate_rank!r}.')
  kd, ku = jax.random.split(key)
  width = num_kv_heads * head_dim
  return {'gate_down': _recurrent.dense_init(kd, (in_features, gate_rank), in_features, dtype),
          'gate_up': _recurrent.dense_init(ku, (gate_rank, width), gate_rank, dtype),
          'gate_bias': jnp.zeros((width,), dtype)}


def call_kwargs(params, *, k, inputs_q, **_):
  p = {n: params[n].astype(jnp.float32) for n in ('gate_down', 'gate_up', 'gate_bias')}
  z = inputs_q.astype(jnp.float32) @ p['gate_down'] @ p['gate_up'] + p['gate_bias']
  return {'log_gate': (jax.nn.log_sigmoid(z) / GATE_NORMALIZER).reshape(z.shape[:-1] + k.shape[-2:])}


def step(state, q_t, k_t, v_t, *, log_gate, scale=None):
  """One position for cached decoding: state [..., K, H, V] (float32), q_t [..., N, H], k_t [..., K, H],
  v_t [..., K, V], log_gate [..., K, H] -> (out_t [..., N, V] in v's dtype, new state)."""
  g = _recurrent.check_step_gate('gla', 'log_gate', log_gate, k_t.shape)
  return _recurrent.one_step('gla', _step, state, q_t, k_t, v_t, (g,), scale)
