"""The listen-attend-spell attentions against transcriptions of their equations, and MoChA's properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research.layers import las_attention
from attention_research.layers.las_attention import LASAttention

B, S, Q, A, D = 2, 7, 5, 6, 4
# Compiled once each: op-by-op dispatch would compile every small op of the scans on its own.
expected_alignment = jax.jit(las_attention.expected_alignment)
hard_alignment = jax.jit(las_attention.hard_alignment)
chunk_attention = jax.jit(las_attention.chunk_attention, static_argnums=3)


def _inputs(seed=0):
  rng = np.random.RandomState(seed)
  query = jnp.asarray(rng.randn(B, Q), jnp.float32)
  values = jnp.asarray(rng.randn(B, S, A), jnp.float32)
  mask = jnp.asarray(np.arange(S)[None, :] < np.array([[S], [4]]))  # the second utterance has 4 frames
  return query, values, mask


@nnx.jit(static_argnames='hard')
def _step(att, query, values, mask, state, hard=False):
  """One compiled step: (context, weights, state, energies)."""
  keys = att.project_keys(values)
  return att.step(query, keys, values, mask, state, hard=hard) + (att.energies(query, keys, state),)


def _softmax_rows(e, mask):
  e = np.where(mask, e, -np.inf)
  w = np.exp(e - e.max(-1, keepdims=True))
  return w / w.sum(-1, keepdims=True)


def _additive_reference(att, query, values, extra):
  """e_s = v . tanh(W_q q + W_k h_s + extra_s + b), written out per frame."""
  p = {k: np.asarray(getattr(att, k)[...]) for k in ('w_q', 'w_k', 'b', 'v')}
  e = np.zeros((B, S))
  for b in range(B):
    for s in range(S):
      e[b, s] = p['v'] @ np.tanh(np.asarray(query[b]) @ p['w_q'] + np.asarray(values[b, s]) @ p['w_k'] + extra[b, s]
                                 + p['b'])
  return e


def test_location_aware_attention_matches_its_equations():
  query, values, mask = _inputs()
  att = LASAttention('location', Q, A, D, location_filters=3, location_kernel=3, rngs=nnx.Rngs(0))
  state = att.initial_state(mask)
  np.testing.assert_allclose(state['prev'][1], [0.25] * 4 + [0.0] * 3)  # uniform over the real frames
  prev = np.random.RandomState(1).dirichlet(np.ones(S), B).astype(np.float32) * np.asarray(mask)
  ctx, w, new, _ = _step(att, query, values, mask, {'prev': jnp.asarray(prev, jnp.float32)})
  # f_s = sum_r a_prev[s + r - 1] F[r] (width 3, centred, zero outside), then U f_s inside the energy.
  conv, u = np.asarray(att.conv[...]), np.asarray(att.u[...])
  padded = np.pad(prev, ((0, 0), (1, 1)))
  f = np.stack([sum(padded[:, s + r][:, None] * conv[r] for r in range(3)) for s in range(S)], 1)
  want = _softmax_rows(_additive_reference(att, query, values, f @ u), np.asarray(mask))
  np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new['prev'], w)
  np.testing.assert_allclose(ctx, np.einsum('bs,bsa->ba', want, values), rtol=1e-5, atol=1e-6)


def test_coverage_attention_matches_its_equations_over_steps():
  query, values, mask = _inputs(1)
  att = LASAttention('coverage', Q, A, D, rngs=nnx.Rngs(0))
  state = att.initial_state(mask)
  w_c = np.asarray(att.w_c[...])
  coverage = np.zeros((B, S))
  for step in range(3):
    q = query * (step + 1)
    _, w, state, _ = _step(att, q, values, mask, state)
    want = _softmax_rows(_additive_reference(att, q, values, coverage[..., None] * w_c), np.asarray(mask))
    np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-6)
    coverage = coverage + want
    np.testing.assert_allclose(state['coverage'], coverage, rtol=1e-5, atol=1e-6)


def _expected_alignment_loops(p, prev):
  """a_j = p_j sum_{k <= j} prev_k prod_{l=k}^{j-1} (1 - p_l), the definition (Raffel et al. 2017, eq. 9)."""
  out = np.zeros_like(p)
  for b in range(p.shape[0]):
    for j in range(p.shape[1]):
      out[b, j] = p[b, j] * sum(prev[b, k] * np.prod(1 - p[b, k:j]) for k in range(j + 1))
  return out


def test_mocha_expected_alignment_is_the_definition_and_sums_to_at_most_one():
  rng = np.random.RandomState(0)
  p = rng.uniform(size=(3, S)).astype(np.float32)
  prev = rng.dirichlet(np.ones(S), 3).astype(np.float32)
  alpha = np.asarray(expected_alignment(jnp.asarray(p), jnp.asarray(prev)))
  np.testing.assert_allclose(alpha, _expected_alignment_loops(p, prev), rtol=1e-5, atol=1e-7)
  assert (alpha >= 0).all() and (alpha.sum(-1) <= 1 + 1e-6).all()
  # Over decoding steps too, starting one-hot at frame 0.
  state = np.eye(S, dtype=np.float32)[[0, 0, 0]]
  for _ in range(4):
    state = np.asarray(expected_alignment(jnp.asarray(rng.uniform(size=(3, S))), jnp.asarray(state)))
    assert (state.sum(-1) <= 1 + 1e-6).all()
  # Saturated probabilities (0 or 1) make the expected alignment the hard one.
  hard_p = (rng.uniform(size=(3, S)) > 0.6).astype(np.float32)
  np.testing.assert_allclose(hard_alignment(jnp.asarray(hard_p), jnp.asarray(prev)),
                             _expected_alignment_loops(hard_p, prev), atol=1e-6)
  # In the limit: probabilities near 0 or 1 give nearly the hard alignment from a one-hot start.
  one_hot = np.eye(S, dtype=np.float32)[[0, 2, 5]]
  near = np.where(hard_p > 0, 0.9999, 0.0001).astype(np.float32)
  np.testing.assert_allclose(expected_alignment(jnp.asarray(near), jnp.asarray(one_hot)),
                             hard_alignment(jnp.asarray(near), jnp.asarray(one_hot)), atol=1e-3)


def test_mocha_chunk_attention_spreads_each_frame_over_its_window():
  rng = np.random.RandomState(2)
  alpha, u = rng.uniform(size=(1, S)) / S, rng.randn(1, S)
  mask = np.ones((1, S), bool)
  w = 3
  beta = np.asarray(chunk_attention(jnp.asarray(alpha), jnp.asarray(u), jnp.asarray(mask), w))
  want = np.zeros(S)
  for j in range(S):
    lo = max(0, j - w + 1)
    sm = np.exp(u[0, lo:j + 1]) / np.exp(u[0, lo:j + 1]).sum()
    want[lo:j + 1] += alpha[0, j] * sm
  np.testing.assert_allclose(beta[0], want, rtol=1e-5, atol=1e-7)


def test_mocha_hard_decoding_never_moves_backwards():
  rng = np.random.RandomState(3)
  rows = 64
  alpha = jnp.asarray(np.eye(S, dtype=np.float32)[np.zeros(rows, int)])
  last, ended, moved = np.zeros(rows, int), np.zeros(rows, bool), 0
  for _ in range(10):
    alpha = np.asarray(hard_alignment(jnp.asarray(rng.uniform(size=(rows, S)), jnp.float32), alpha))
    sums = alpha.sum(-1)
    assert ((sums == 0) | ((sums == 1) & (alpha.max(-1) == 1))).all()  # one frame, or none
    assert (sums[ended] == 0).all()  # nothing selected once: nothing at every later step
    ended |= sums == 0
    t = alpha.argmax(-1)
    assert (t[~ended] >= last[~ended]).all()
    moved += int((t[~ended] > last[~ended]).sum())
    last = np.where(ended, last, t)
  assert moved and ended.any() and not ended.all()  # the run saw it move, stay and stop


def test_mocha_hard_step_attends_to_the_chunk_ending_at_the_selected_frame():
  query, values, mask = _inputs(3)
  att = LASAttention('mocha', Q, A, D, chunk_size=2, mocha_bias=0.0, rngs=nnx.Rngs(0))
  prev = jnp.asarray(np.eye(S, dtype=np.float32)[[2, 1]])
  ctx, w, state, e = _step(att, query, values, mask, {'prev': prev}, hard=True)
  p = 1 / (1 + np.exp(-np.asarray(e)))
  for b in range(B):
    chosen = [j for j in range(int(prev[b].argmax()), int(mask[b].sum())) if p[b, j] >= 0.5]
    if not chosen:
      assert float(jnp.abs(w[b]).sum()) == 0 and float(jnp.abs(ctx[b]).sum()) == 0
      continue
    t = chosen[0]
    assert state['prev'][b, t] == 1 and np.isclose(w[b].sum(), 1)
    assert set(np.nonzero(np.asarray(w[b]))[0]) <= {t - 1, t}


def test_unknown_attention_names_the_known_ones():
  with pytest.raises(ValueError, match=r"unknown LAS attention 'luong'.*'dot', 'additive', 'location', 'coverage', "
                                       r"'mocha'"):
    LASAttention('luong', Q, A, D, rngs=nnx.Rngs(0))
