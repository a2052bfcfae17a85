"""Greedy and beam search over any step function, shared by every autoregressive model.

A step function maps (tokens [R], state) -> (log_probs [R, V], state), where R is the number of rows being
decoded (batch, or batch * beam) and state is any pytree whose leaves have R as their leading dimension
(a key/value cache, an RNN state, tiled encoder outputs). Sequences are [B, L] with EOS then 0-padding;
token 0 is padding and is never emitted.

`search` is the driver every model's generate calls: it splits the model, compiles the search once per static
configuration, and runs greedy or beam search over a step method of the model (see its docstring).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Hashable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention_research.models._checks import check_positive

NEG_INF = -1.0e9
StepFn = Callable[[jax.Array, Any], tuple[jax.Array, Any]]


def length_penalty(length, alpha: float):
  """GNMT's ((5 + length) / 6) ** alpha (Wu et al. 2016); alpha = 0 ranks by total log-probability."""
  return ((5.0 + length) / 6.0) ** alpha


def tile_beams(tree, beam_size: int):
  """Repeats every leaf's leading (batch) rows beam_size times: [B, ...] -> [B * beam, ...]."""
  return jax.tree.map(lambda x: jnp.repeat(x, beam_size, axis=0), tree)


def _emittable(logp, excluded: Sequence[int]):
  """The columns of logp [..., V] that may be emitted, and their token ids: excluded tokens (padding, a CTC
  blank) are left out of the candidates altogether, so no score, however low, lets them into a hypothesis."""
  V = logp.shape[-1]
  ids = np.asarray([t for t in range(V) if t not in set(excluded) | {0}], np.int32)
  if len(ids) == V - 1 and ids[0] == 1:
    return logp[..., 1:], ids  # the usual case, token 0 alone: a slice
  return jnp.take(logp, ids, axis=-1), ids


def greedy(step_fn: StepFn, state, *, batch_size: int, max_length: int, bos_id: int, eos_id: int,
           excluded: Sequence[int] = (0,)):
  """Argmax decoding. Returns (tokens [B, max_length], log-probability [B], final state).

  Token 0 and the tokens in `excluded` are never emitted."""
  def body(i, carry):
    seq, last, score, done, state = carry
    logp, state = step_fn(last, state)
    logp, ids = _emittable(logp, excluded)
    tok = jnp.asarray(ids)[jnp.argmax(logp, axis=-1)]
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
                eos_id: int, alpha: float = 0.6, excluded: Sequence[int] = (0,)):
  """Beam search with GNMT length penalty. `state` must already be tiled to [B * beam, ...] (see tile_beams).

  Returns (best tokens [B, max_length], best scores [B], all beams [B, beam, max_length], their scores [B, beam]),
  beams sorted best first. A sequence ends at EOS; live hypotheses are returned only for rows where none
  finished within max_length. Token 0 and the tokens in `excluded` never enter a hypothesis, live or finished.
  """
  B, W, L = batch_size, beam_size, max_length

  def body(i, carry):
    alive_seq, alive_logp, fin_seq, fin_score, last, state = carry
    logp, state = step_fn(last, state)
    logp, ids = _emittable(logp, excluded)
    V = logp.shape[-1]  # emittable tokens only
    cand = alive_logp[:, :, None] + logp.reshape(B, W, V).astype(jnp.float32)
    top_logp, top_idx = jax.lax.top_k(cand.reshape(B, W * V), 2 * W)
    beam_idx, tok = top_idx // V, jnp.asarray(ids)[top_idx % V]
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


# ------------------------------------------------------------------------------------------------- driver
InitFn = Callable[..., Any]  # (model, *args, max_length, **options) -> state with [B, ...] leaves
ModelStepFn = Callable[[Any, jax.Array, Any], tuple[jax.Array, Any]]  # (model, tokens [R], state) -> (logp, state)


def search(model: nnx.Module, init: InitFn, step: ModelStepFn, *args, beam_size: int, max_length: int,
           bos_id: int, eos_id: int, alpha: float = 0.6, excluded: Sequence[int] = (0,),
           options: Mapping[str, Hashable] | None = None, return_state: bool = False):
  """Greedy (beam_size == 1) or beam search over a step method of `model`, compiled once per configuration.

  init(model, *args, max_length=max_length, **options) -> state: runs first, inside the compiled search, on a copy of the
    model. It encodes the inputs, may allocate the model's `nnx.Cache` variables for B rows (init_cache) and
    feed a prompt, and returns the search state: a pytree of [B, ...] leaves.
  step(model, tokens [R], state) -> (log_probs [R, V], state): one decoding step. `model` holds the rows of
    every nnx.Cache variable (gathered and tiled with the state: its scalars, such as a cache index, are kept
    per row and shared again when merged); everything else of the model is as it was after init.
  init and step are static: module-level functions or unbound methods (hashable), so repeated calls reuse
  the compiled search. args: arrays (or pytrees of arrays, None included) for init; options: static
  (hashable) keyword arguments of init, one compilation each.

  Token 0 and `excluded` tokens are never emitted. Returns tokens [B, max_length] (EOS then 0-padding), and
  with return_state (greedy only) also the final state.
  """
  check_positive('beam_size', beam_size)
  check_positive('max_length', max_length)
  if return_state and beam_size != 1:
    raise ValueError(f'return_state needs greedy search (beam_size=1); got beam_size={beam_size}: beam search '
                     f'keeps no single final state.')
  graphdef, params = nnx.split(model)
  return _search(graphdef, params, args, init=init, step=step, beam_size=beam_size, max_length=max_length,
                 bos_id=bos_id, eos_id=eos_id, alpha=float(alpha), excluded=tuple(excluded),
                 options=tuple(sorted((options or {}).items())), return_state=return_state)


@functools.partial(jax.jit, static_argnames=('graphdef', 'init', 'step', 'beam_size', 'max_length', 'bos_id',
                                             'eos_id', 'alpha', 'excluded', 'options', 'return_state'))
def _search(graphdef, params, args, *, init, step, beam_size, max_length, bos_id, eos_id, alpha, excluded, options,
            return_state):
  model = nnx.merge(graphdef, params)
  state = init(model, *args, max_length=max_length, **dict(options))
  B = jax.tree.leaves(state)[0].shape[0]
  graphdef, cache, rest = nnx.split(model, nnx.Cache, ...)
  # Scalar cache leaves (a cache index) become [R] rows so beams can gather them; every row holds the same.
  leaves, treedef = jax.tree.flatten(cache)
  scalar = [x.ndim == 0 for x in leaves]
  to_rows = lambda leaves, rows: [jnp.broadcast_to(x, (rows,)) if s else x for x, s in zip(leaves, scalar)]
  from_rows = lambda leaves: jax.tree.unflatten(treedef, [x[0] if s else x for x, s in zip(leaves, scalar)])

  def step_fn(tokens, carry):
    model = nnx.merge(graphdef, from_rows(carry['cache']), rest)
    logp, state = step(model, tokens, carry['state'])
    return logp, {'cache': to_rows(jax.tree.leaves(nnx.state(model, nnx.Cache)), tokens.shape[0]), 'state': state}

  carry = {'cache': to_rows(leaves, B), 'state': state}
  common = dict(batch_size=B, max_length=max_length, bos_id=bos_id, eos_id=eos_id, excluded=excluded)
  if beam_size == 1:
    tokens, _, carry = greedy(step_fn, carry, **common)
    return (tokens, carry['state']) if return_state else tokens
  return beam_search(step_fn, tile_beams(carry, beam_size), beam_size=beam_size, alpha=alpha, **common)[0]


def bind(model: nnx.Module, step: ModelStepFn) -> StepFn:
  """A pure StepFn (tokens, state) -> (log_probs, state) over the model's current variables, for a step method
  of a model without caches (to call greedy or beam_search directly)."""
  graphdef, params = nnx.split(model)
  return lambda tokens, state: step(nnx.merge(graphdef, params), tokens, state)
