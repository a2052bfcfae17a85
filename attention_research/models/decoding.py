"""Greedy and beam search over any step function, shared by every autoregressive model.

A step function maps (tokens [R], state) -> (log_probs [R, V], state), where R is the number of rows being
decoded (batch, or batch * beam) and state is any pytree whose leaves have R as their leading dimension
(a key/value cache, an RNN state, tiled encoder outputs). Sequences are [B, L] with EOS then 0-padding;
token 0 is padding and is never emitted.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

NEG_INF = -1.0e9
StepFn = Callable[[jax.Array, Any], tuple[jax.Array, Any]]


def length_penalty(length, alpha: float):
  """GNMT's ((5 + length) / 6) ** alpha (Wu et al. 2016); alpha = 0 ranks by total log-probability."""
  return ((5.0 + length) / 6.0) ** alpha


def tile_beams(tree, beam_size: int):
  """Repeats every leaf's leading (batch) rows beam_size times: [B, ...] -> [B * beam, ...]."""
  return jax.tree.map(lambda x: jnp.repeat(x, beam_size, axis=0), tree)


def _no_padding(logp):
  return logp.at[:, 0].set(NEG_INF)


def greedy(step_fn: StepFn, state, *, batch_size: int, max_length: int, bos_id: int, eos_id: int):
  """Argmax decoding. Returns (tokens [B, max_length], log-probability [B], final state)."""
  def body(i, carry):
    seq, last, score, done, state = carry
    logp, state = step_fn(last, state)
    logp = _no_padding(logp)
    tok = jnp.argmax(logp, axis=-1).astype(jnp.int32)
    score = score + jnp.where(done, 0.0, jnp.take_along_axis(logp, tok[:, None], -1)[:, 0])
    tok = jnp.where(done, 0, tok)
    seq = seq.at[:, i].set(tok)
    return seq, tok, score, done | (tok == eos_id), state

  init = (jnp.zeros((batch_size, max_length), jnp.int32), jnp.full((batch_size,), bos_id, jnp.int32),
          jnp.zeros((batch_size,)), jnp.zeros((batch_size,), bool), state)
  seq, _, score, _, state = jax.lax.fori_loop(0, max_length, body, init)
  return seq, score, state


def _gather_beams(tree, beam_idx, batch_size: int, beam_size: int):
  """Selects beams: leaves [B * W_old, ...] indexed by beam_idx [B, W_new] -> [B * W_new, ...]."""
  def gather(x):
    x = x.reshape((batch_size, -1) + x.shape[1:])
    x = jnp.take_along_axis(x, beam_idx.reshape(beam_idx.shape + (1,) * (x.ndim - 2)), axis=1)
    return x.reshape((-1,) + x.shape[2:])
  return jax.tree.map(gather, tree)


def beam_search(step_fn: StepFn, state, *, batch_size: int, beam_size: int, max_length: int, bos_id: int,
                eos_id: int, alpha: float = 0.6):
  """Beam search with GNMT length penalty. `state` must already be tiled to [B * beam, ...] (see tile_beams).

  Returns (best tokens [B, max_length], best scores [B], all beams [B, beam, max_length], their scores [B, beam]),
  beams sorted best first. A sequence ends at EOS; live hypotheses are returned only for rows where none
  finished within max_length.
  """
  B, W, L = batch_size, beam_size, max_length

  def body(i, carry):
    alive_seq, alive_logp, fin_seq, fin_score, last, state = carry
    logp, state = step_fn(last, state)
    logp = _no_padding(logp)
    V = logp.shape[-1]
    cand = alive_logp[:, :, None] + logp.reshape(B, W, V).astype(jnp.float32)
    top_logp, top_idx = jax.lax.top_k(cand.reshape(B, W * V), 2 * W)
    beam_idx, tok = top_idx // V, (top_idx % V).astype(jnp.int32)
    seq = jnp.take_along_axis(alive_seq, beam_idx[:, :, None], axis=1).at[:, :, i].set(tok)
    is_eos = tok == eos_id
    # Finished pool: the best W among the old finished and the candidates that just emitted EOS within the
    # top W (as in fairseq), so that a beam of 1 takes exactly the greedy path.
    finishes = is_eos & (jnp.arange(2 * W) < W)[None, :]
    new_fin_score = jnp.where(finishes, top_logp / length_penalty(i + 1, alpha), NEG_INF)
    pool_seq = jnp.concatenate([fin_seq, seq], axis=1)
    pool_score = jnp.concatenate([fin_score, new_fin_score], axis=1)
    fin_score, fin_idx = jax.lax.top_k(pool_score, W)
    fin_seq = jnp.take_along_axis(pool_seq, fin_idx[:, :, None], axis=1)
    # Live beams: the best W candidates that did not emit EOS.
    live_logp, live_idx = jax.lax.top_k(jnp.where(is_eos, NEG_INF, top_logp), W)
    alive_seq = jnp.take_along_axis(seq, live_idx[:, :, None], axis=1)
    state = _gather_beams(state, jnp.take_along_axis(beam_idx, live_idx, axis=1), B, W)
    last = jnp.take_along_axis(tok, live_idx, axis=1).reshape(B * W)
    return alive_seq, live_logp, fin_seq, fin_score, last, state

  alive_logp = jnp.tile(jnp.asarray([0.0] + [NEG_INF] * (W - 1)), (B, 1))
  init = (jnp.zeros((B, W, L), jnp.int32), alive_logp, jnp.zeros((B, W, L), jnp.int32),
          jnp.full((B, W), NEG_INF), jnp.full((B * W,), bos_id, jnp.int32), state)
  alive_seq, alive_logp, fin_seq, fin_score, _, _ = jax.lax.fori_loop(0, L, body, init)
  any_finished = jnp.any(fin_score > NEG_INF / 2, axis=1)
  seqs = jnp.where(any_finished[:, None, None], fin_seq, alive_seq)
  scores = jnp.where(any_finished[:, None], fin_score, alive_logp / length_penalty(L, alpha))
  return seqs[:, 0], scores[:, 0], seqs, scores
