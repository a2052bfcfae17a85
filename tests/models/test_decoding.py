"""Greedy and beam search on a known Markov chain, where the answers can be worked out by brute force."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from attention_research.models import decoding

V, L, BOS, EOS = 5, 4, 1, 2
TABLE = jax.nn.log_softmax(2.5 * jax.random.normal(jax.random.PRNGKey(0), (L, V, V)), -1)


def step(tokens, state):
  t = state['t']
  return TABLE[t[0], tokens], {'t': t + 1, 'row': state['row']}


def init(rows):
  return {'t': jnp.zeros((rows,), jnp.int32), 'row': jnp.arange(rows)}


def brute_force_best(alpha):
  best, best_score = None, -np.inf
  table = np.asarray(TABLE).copy()
  table[..., 0] = -1e9  # padding is never emitted
  for n in range(1, L + 1):
    for seq in itertools.product(range(1, V), repeat=n):
      if EOS in seq[:-1] or (n < L and seq[-1] != EOS):
        continue
      prev, logp = BOS, 0.0
      for t, tok in enumerate(seq):
        logp += table[t, prev, tok]
        prev = tok
      score = logp / decoding.length_penalty(n, alpha)
      if score > best_score:
        best, best_score = seq, score
  return list(best) + [0] * (L - len(best)), best_score


def test_beam_one_equals_greedy():
  g, gs, _ = decoding.greedy(step, init(3), batch_size=3, max_length=L, bos_id=BOS, eos_id=EOS)
  b, bs, _, _ = decoding.beam_search(step, decoding.tile_beams(init(3), 1), batch_size=3, beam_size=1,
                                     max_length=L, bos_id=BOS, eos_id=EOS, alpha=0.0)
  np.testing.assert_array_equal(g, b)


def test_wide_beam_finds_the_brute_force_optimum():
  for alpha in (0.0, 1.0):
    best, score = brute_force_best(alpha)
    b, bs, beams, scores = decoding.beam_search(step, decoding.tile_beams(init(2), 64), batch_size=2,
                                                beam_size=64, max_length=L, bos_id=BOS, eos_id=EOS, alpha=alpha)
    np.testing.assert_array_equal(b[0], best)
    np.testing.assert_allclose(bs[0], score, rtol=1e-5)
    assert bool(jnp.all(scores[:, :-1] >= scores[:, 1:]))


def test_greedy_pads_after_eos():
  g, _, _ = decoding.greedy(step, init(1), batch_size=1, max_length=L, bos_id=BOS, eos_id=EOS)
  seq = np.asarray(g[0]).tolist()
  if EOS in seq:
    assert all(t == 0 for t in seq[seq.index(EOS) + 1:])
  assert 0 not in seq[: seq.index(EOS) if EOS in seq else L]
