"""CTC decoding helpers: greedy collapse and prefix scores for joint CTC/attention beam search.

Prefix scores follow Watanabe et al. 2017 ("Hybrid CTC/attention architecture for end-to-end speech
recognition", Algorithm 2) in the vectorised form of ESPnet's CTCPrefixScorer: for a prefix g with forward
variables r^n_t(g) (paths of g ending in its last label) and r^b_t(g) (ending in blank), the probability that
the label sequence starts with h = g + c is

    psi(h) = r^n_0(h) + sum_{t >= 1} phi_{t-1} x_t(c),   phi_t = r^b_t(g) + [c != last(g)] r^n_t(g)

(in log space), and psi(g + eos) = log(r^n_{F-1}(g) + r^b_{F-1}(g)) is the probability of exactly g.
All quantities are log-probabilities; LOG_ZERO is a large finite negative so nothing becomes NaN.

Windowed scoring (an option of joint decoding, after ESPnet's windowed CTC prefix scorer): each prefix keeps the
frame where its last label most probably starts (the argmax over t of psi's summands); a new label may only start
within `margin` frames of it. The scores are those of the alignments that obey the window, so a window covering
the utterance (margin >= F) gives exactly the full scores.

Dimension letters: B batch, F encoder frames, V vocabulary (blank included), R decoding rows, K candidates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOG_ZERO = -1.0e10


def greedy_collapse(ids, lengths=None, *, blank_id: int = 0, pad_id: int = 0):
  """Best-path CTC output: ids [B, F] (per-frame argmax) -> (tokens [B, F], counts [B]).

  Merges repeats, drops blanks and frames at or after `lengths` [B] (default: all frames), and packs the
  remaining tokens to the left, padded with pad_id.
  """
  ids = jnp.asarray(ids, jnp.int32)
  if ids.ndim != 2:
    raise ValueError(f'greedy_collapse expects ids [B, F]; got shape {ids.shape}.')
  B, F = ids.shape
  valid = jnp.ones((B, F), bool) if lengths is None else jnp.arange(F)[None, :] < jnp.asarray(lengths)[:, None]
  prev = jnp.concatenate([jnp.full((B, 1), -1, jnp.int32), ids[:, :-1]], axis=1)
  keep = valid & (ids != blank_id) & (ids != prev)
  slot = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, F)  # F: out of bounds, dropped by the scatter
  rows = jnp.broadcast_to(jnp.arange(B)[:, None], (B, F))
  tokens = jnp.full((B, F), pad_id, jnp.int32).at[rows, slot].set(ids, mode='drop')
  return tokens, jnp.sum(keep, axis=1)


def greedy(logits, lengths=None, *, blank_id: int = 0, pad_id: int = 0):
  """CTC greedy (best path) decoding of logits [B, F, V] -> (tokens [B, F], counts [B])."""
  return greedy_collapse(jnp.argmax(logits, axis=-1), lengths, blank_id=blank_id, pad_id=pad_id)


def init_state(log_probs, lengths, *, blank_id: int = 0, margin=None):
  """The scorer state for the empty prefix, one row per log_probs row.

  log_probs [R, F, V]: CTC log-posteriors; lengths [R]: valid frames. Returns a dict of [R, ...] leaves
  (so beam search can gather rows): 'log_probs', 'lengths', 'r' [R, F, 2] (log r^n, log r^b of the current
  prefix), 'psi' [R] (its prefix score), 'last' [R] (its last label, -1 when empty), 'start' [R] (the frame
  where its last label most probably starts, 0 when empty) and, with a margin (frames, scalar or [R]), 'margin'
  [R]: windowed scoring.
  """
  log_probs = jnp.asarray(log_probs, jnp.float32)
  R, F, _ = log_probs.shape
  lengths = jnp.asarray(lengths, jnp.int32)
  valid = jnp.arange(F)[None, :] < lengths[:, None]
  # Frames past the end emit blank with probability one, so sums over them change nothing.
  blank = jnp.where(valid, log_probs[..., blank_id], 0.0)
  r = jnp.stack([jnp.full((R, F), LOG_ZERO), jnp.cumsum(blank, axis=1)], axis=-1)
  state = {'log_probs': log_probs, 'lengths': lengths, 'r': r, 'psi': jnp.zeros((R,)),
           'last': jnp.full((R,), -1, jnp.int32), 'start': jnp.zeros((R,), jnp.int32)}
  if margin is not None:
    state['margin'] = jnp.broadcast_to(jnp.asarray(margin, jnp.int32), (R,))
  return state


def prefix_scores(state, candidates, *, blank_id: int = 0, eos_id: int | None = None, return_start: bool = False):
  """Scores of every extension g + c of each row's prefix g, for c in candidates [R, K].

  Returns (psi [R, K], r [R, F, 2, K]) and with return_start also start [R, K]: the log prefix scores (for
  c == eos_id, the log probability that the labels are exactly g), the forward variables of each extension and
  the frame where c most probably starts, for `advance`. With state['margin'], c may only start within
  margin frames of g's last label's start (windowed scoring). Candidates equal to
  blank_id are impossible extensions: psi and every forward variable are LOG_ZERO, so that every extension of
  them is impossible too (finite forward variables under a LOG_ZERO psi would make the next step's
  psi(g + c) - psi(g) about -LOG_ZERO).
  """
  x = state['log_probs']
  R, F, _ = x.shape
  candidates = jnp.asarray(candidates, jnp.int32)
  lengths = state['lengths']
  valid = jnp.arange(F)[None, :] < lengths[:, None]  # [R, F]
  xc = jnp.take_along_axis(x, candidates[:, None, :], axis=-1)  # [R, F, K]
  xc = jnp.where(valid[..., None], xc, LOG_ZERO)
  xb = jnp.where(valid, x[..., blank_id], 0.0)  # [R, F]
  rn_g, rb_g = state['r'][..., 0], state['r'][..., 1]
  same = candidates == state['last'][:, None]  # [R, K]: a repeated label needs a blank in between
  phi = jnp.logaddexp(rb_g[..., None], jnp.where(same[:, None, :], LOG_ZERO, rn_g[..., None]))  # [R, F, K]
  empty = state['last'] < 0
  rn0 = jnp.where(empty[:, None], xc[:, 0], LOG_ZERO)  # [R, K]
  rb0 = jnp.full_like(rn0, LOG_ZERO)
  if 'margin' in state:  # c may start (enter from phi) only within the window around g's last label's start
    inside = jnp.abs(jnp.arange(F)[None, :] - state['start'][:, None]) <= state['margin'][:, None]  # [R, F]
    phi = jnp.where(inside[..., None], phi, LOG_ZERO)

  def step(carry, inputs):
    rn, rb, psi = carry
    xc_t, xb_t, phi_prev = inputs
    rn_t = jnp.logaddexp(rn, phi_prev) + xc_t
    rb_t = jnp.logaddexp(rb, rn) + xb_t[:, None]
    enter = phi_prev + xc_t  # xc_t is LOG_ZERO past the end: no contribution
    return (rn_t, rb_t, jnp.logaddexp(psi, enter)), (rn_t, rb_t, enter)

  time_major = lambda a: jnp.moveaxis(a, 1, 0)
  (_, _, psi), (rn, rb, enter) = jax.lax.scan(
      step, (rn0, rb0, rn0), (time_major(xc)[1:], time_major(xb)[1:], time_major(phi)[:-1]))
  r = jnp.stack([jnp.concatenate([rn0[None], rn]), jnp.concatenate([rb0[None], rb])], axis=2)  # [F, R, 2, K]
  r = jnp.moveaxis(r, 0, 1)
  start = jnp.argmax(jnp.concatenate([rn0[None], enter]), axis=0).astype(jnp.int32)  # [R, K]
  if eos_id is not None:
    end = jnp.clip(lengths - 1, 0, F - 1)
    last_r = jnp.take_along_axis(state['r'], end[:, None, None], axis=1)[:, 0]  # [R, 2]
    full = jnp.where(lengths > 0, jax.nn.logsumexp(last_r, axis=-1), LOG_ZERO)
    psi = jnp.where(candidates == eos_id, full[:, None], psi)
  psi, r = impossible(candidates == blank_id, jnp.maximum(psi, LOG_ZERO), r)
  return (psi, r, start) if return_start else (psi, r)


def impossible(where, psi, r):
  """psi [R, K] and r [R, F, 2, K] with the extensions where `where` [R, K] is True made impossible."""
  return jnp.where(where, LOG_ZERO, psi), jnp.where(where[:, None, None, :], LOG_ZERO, r)


def advance(state, candidates, psi, r, tokens, *, where=None, start=None):
  """Moves each row's prefix to g + tokens [R], one of its candidates [R, K] scored as (psi [R, K],
  r [R, F, 2, K], start [R, K]; start may be left out when not windowed) by prefix_scores. Rows where
  `where` [R] is False keep their prefix. A token that is not
  among its row's candidates was never scored: its prefix becomes impossible (LOG_ZERO), as do all its
  extensions."""
  match = candidates == tokens[:, None]
  idx = jnp.argmax(match, axis=1)
  scored = jnp.any(match, axis=1)
  new = dict(state,
             r=jnp.where(scored[:, None, None], jnp.take_along_axis(r, idx[:, None, None, None], axis=3)[..., 0],
                         LOG_ZERO),
             psi=jnp.where(scored, jnp.take_along_axis(psi, idx[:, None], axis=1)[:, 0], LOG_ZERO),
             last=jnp.asarray(tokens, jnp.int32))
  if start is not None:
    new['start'] = jnp.take_along_axis(start, idx[:, None], axis=1)[:, 0]
  if where is None:
    return new
  return jax.tree.map(lambda n, o: jnp.where(where.reshape(where.shape + (1,) * (n.ndim - 1)), n, o), new, state)


# ------------------------------------------------------------------------- joint CTC/attention decoding
# The score of a token left out of the pre-beam: below every scored candidate (at worst about
# ctc_weight * LOG_ZERO), so that an unscored token never displaces a scored one, however unlikely.
UNSCORED = 2.0 * LOG_ZERO


def joint_init(log_probs, lengths, weight, *, candidates: int, blank_id: int = 0, margin=None):
  """The state of `joint_scores` for the empty prefix: init_state plus the CTC weight [R] (a row leaf, so
  the search can tile it) and room for the `candidates` (K) tokens each step scores. margin: windowed prefix
  scores (frames either side of the last label's start; None: every frame)."""
  state = init_state(log_probs, lengths, blank_id=blank_id, margin=margin)
  R, F, _ = state['log_probs'].shape
  K = candidates
  # cand / cand_psi / cand_r: each row's scored candidates, kept until the search says which it chose.
  return dict(state, weight=jnp.broadcast_to(jnp.asarray(weight, jnp.float32), (R,)),
              cand=jnp.zeros((R, K), jnp.int32), cand_psi=jnp.zeros((R, K)), cand_r=jnp.zeros((R, F, 2, K)),
              cand_start=jnp.zeros((R, K), jnp.int32), started=jnp.zeros((R,), bool))


def joint_scores(state, att_logp, tokens, *, not_ctc, blank_id: int = 0, eos_id: int, pad_id: int = 0):
  """One step of joint CTC/attention decoding (Watanabe et al. 2017, eq. 44): a step function's scores.

  state: joint_init's; att_logp [R, V]: the attention decoder's log-probabilities after each row's prefix;
  tokens [R]: the tokens the search just chose (the prefixes move to them; the first call's tokens are the
  start token and move nothing). Scores (1 - w) log p_att(c) + w (psi(g + c) - psi(g)) for the K candidates
  (every token, or the K best of the attention decoder: ESPnet's pre-beam); the rest score UNSCORED.
  not_ctc [V] bool: tokens CTC never emits (padding, BOS, the blank): impossible extensions, kept impossible.
  Returns (scores [R, V], state).
  """
  cs = advance(state, state['cand'], state['cand_psi'], state['cand_r'], tokens, where=state['started'],
               start=state['cand_start'])
  R, V = att_logp.shape
  K = state['cand'].shape[1]
  if K == V:
    cand = jnp.broadcast_to(jnp.arange(V, dtype=jnp.int32), (R, V))
  else:
    ids = jnp.arange(V)
    cand = jax.lax.top_k(jnp.where((ids == pad_id) | (ids == blank_id), UNSCORED, att_logp), K)[1]
    cand = cand.astype(jnp.int32)
  psi, r, start = prefix_scores(cs, cand, blank_id=blank_id, eos_id=eos_id, return_start=True)
  psi, r = impossible(not_ctc[cand], psi, r)
  ctc_delta = jnp.where(not_ctc[cand], LOG_ZERO, psi - cs['psi'][:, None])
  w = cs['weight'][:, None]
  cand_scores = (1.0 - w) * jnp.take_along_axis(att_logp, cand, axis=1) + w * ctc_delta
  scores = jnp.full((R, V), UNSCORED).at[jnp.arange(R)[:, None], cand].set(cand_scores)
  return scores, dict(cs, cand=cand, cand_psi=psi, cand_r=r, cand_start=start, started=jnp.ones((R,), bool))
