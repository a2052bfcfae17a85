"""The shared search driver (decoding.search) and joint CTC/attention scoring, against brute force.

Brute force enumerates every output sequence of a tiny vocabulary up to a small length and scores it with the
model's own teacher-forced log-probabilities (and, for joint decoding, the exact CTC log-probability).
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attention_research.models import ctc, decoding
from attention_research.models import transformer as tr
from attention_research.models.seq2seq_rnn import RNNSeq2Seq, RNNSeq2SeqConfig

BOS, EOS = 1, 2


def _sequences(V, L):
  """Every output the searches can return that ends with EOS: n - 1 tokens of 1..V-1 other than EOS, then EOS."""
  labels = [t for t in range(1, V) if t != EOS]
  for n in range(1, L + 1):
    for seq in itertools.product(labels, repeat=n - 1):
      yield list(seq) + [EOS]


def _well_formed(tokens):
  """No padding before EOS, only padding after it."""
  seq = list(np.asarray(tokens))
  end = seq.index(EOS) + 1 if EOS in seq else len(seq)
  return 0 not in seq[:end] and all(t == 0 for t in seq[end:])


# ------------------------------------------------------------------------------------ driver vs brute force
def _lm():
  cfg = tr.TransformerConfig(vocab_size=5, d_model=16, num_heads=2, num_decoder_layers=1, mlp_dim=32,
                             max_length=8)
  model = tr.DecoderLM(cfg, rngs=nnx.Rngs(0))
  prompt = jnp.array([[BOS], [BOS]])
  return model, prompt, lambda x: x, lambda out: out[:, 1:]


def _rnn():
  cfg = RNNSeq2SeqConfig(vocab_size=7, target_vocab_size=5, embed_size=8, hidden_size=8)
  model = RNNSeq2Seq(cfg, rngs=nnx.Rngs(1))
  return model, jnp.array([[3, 4, 5], [6, 3, 0]]), None, lambda out: out


def _teacher_forced_logp(model, inputs, seqs):
  """log p(seq) [S] of each output sequence [S, T] (0-padded) for one input row."""
  seqs = jnp.asarray(seqs)
  targets_in = jnp.concatenate([jnp.full((len(seqs), 1), BOS), seqs[:, :-1]], axis=1)
  return np.asarray(_sequence_logp(model, jnp.repeat(inputs[None], len(seqs), axis=0), targets_in, seqs))


@nnx.jit
def _sequence_logp(model, inputs, targets_in, seqs):
  logits = model(targets_in) if isinstance(model, tr.DecoderLM) else model(inputs, targets_in)
  logp = jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32)), seqs[..., None], -1)[..., 0]
  return jnp.sum(jnp.where(seqs != 0, logp, 0.0), axis=-1)


def _generate(model, inputs, L, W, alpha):
  if isinstance(model, tr.DecoderLM):
    return np.asarray(model.generate(inputs, max_new_tokens=L, beam_size=W, alpha=alpha)[:, 1:])
  return np.asarray(model.generate(inputs, max_length=L, beam_size=W, alpha=alpha))


@pytest.mark.parametrize('family', [_lm, _rnn])
def test_driver_matches_greedy_and_brute_force_references(family):
  model, inputs, _, _ = family()
  L, V = 3, 5
  # Greedy reference: the argmax of the teacher-forced model over the tokens that may be emitted, one step
  # at a time.
  greedy = _generate(model, inputs, L, 1, 0.0)
  for b in range(len(inputs)):
    seq = []
    for _ in range(L):
      cand = [seq + [t] + [0] * (L - len(seq) - 1) for t in range(1, V)]
      logp = _teacher_forced_logp(model, inputs[b], cand)
      seq.append(1 + int(np.argmax(logp)))
      if seq[-1] == EOS:
        break
    np.testing.assert_array_equal(greedy[b], seq + [0] * (L - len(seq)))
  # A beam wider than every prefix finds the best sequence (GNMT length penalty alpha) of brute force.
  seqs = [s + [0] * (L - len(s)) for s in _sequences(V, L)]
  for alpha in (0.0, 0.6):
    beam = _generate(model, inputs, L, 32, alpha)
    for b in range(len(inputs)):
      lengths = np.asarray([np.count_nonzero(s) for s in seqs])
      scores = _teacher_forced_logp(model, inputs[b], seqs) / decoding.length_penalty(lengths, alpha)
      np.testing.assert_array_equal(beam[b], seqs[int(np.argmax(scores))])


# ---------------------------------------------------------------------------- joint CTC/attention scoring
def _joint_problem(V, F, seed):
  """A Markov 'attention decoder' (log-probs by position and previous token) and CTC posteriors [1, F, V]."""
  k1, k2 = jax.random.split(jax.random.key(seed))
  att = jax.nn.log_softmax(2.0 * jax.random.normal(k1, (8, V, V)), -1)
  ctc_logp = jax.nn.log_softmax(3.0 * jax.random.normal(k2, (1, F, V)), -1)
  return att, ctc_logp


@functools.partial(jax.jit, static_argnames=('beam_size', 'L'))
def _joint_search(att, ctc_logp, ctc_weight, *, beam_size, L):
  V = att.shape[-1]
  not_ctc = jnp.zeros((V,), bool).at[jnp.array([0, BOS])].set(True)
  state = {'t': jnp.zeros((1,), jnp.int32),
           'ctc': ctc.joint_init(ctc_logp, jnp.array([ctc_logp.shape[1]]), ctc_weight, candidates=V)}

  def step(tokens, state):
    scores, cs = ctc.joint_scores(state['ctc'], att[state['t'][0], tokens], tokens, not_ctc=not_ctc, eos_id=EOS)
    return scores, {'t': state['t'] + 1, 'ctc': cs}

  best, score, _, _ = decoding.beam_search(step, decoding.tile_beams(state, beam_size), batch_size=1,
                                           beam_size=beam_size, max_length=L, bos_id=BOS, eos_id=EOS, alpha=0.0)
  return best[0], score[0]


def _brute_force(att, ctc_logp, L):
  """Every EOS-terminated sequence with its attention and CTC log-probabilities (the labels are the sequence
  without EOS; BOS is no CTC label: LOG_ZERO)."""
  seqs = list(_sequences(att.shape[-1], L))
  att = np.asarray(att)
  att_logp = []
  for seq in seqs:
    prev, lp = BOS, 0.0
    for t, tok in enumerate(seq):
      lp, prev = lp + att[t, prev, tok], tok
    att_logp.append(lp)
  labels = jnp.asarray([s[:-1] + [0] * (L - len(s) + 1) for s in seqs])
  S, F = len(seqs), ctc_logp.shape[1]
  ctc_lp = -optax.ctc_loss(jnp.repeat(ctc_logp, S, axis=0), jnp.zeros((S, F)), labels,
                           (labels == 0).astype(jnp.float32), blank_id=0)
  ctc_lp = np.where([BOS in s for s in seqs], ctc.LOG_ZERO, np.asarray(ctc_lp))
  return [tuple(s) for s in seqs], np.asarray(att_logp), ctc_lp


@pytest.mark.parametrize('V', [4, 6])
def test_joint_search_never_beats_brute_force_and_wide_beams_find_it(V):
  L, F = 3, 6
  for seed in range(2):
    att, ctc_logp = _joint_problem(V, F, seed)
    seqs, att_logp, ctc_lp = _brute_force(att, ctc_logp, L)
    for ctc_weight in (0.0, 0.3, 0.7, 1.0):
      brute = dict(zip(seqs, (1 - ctc_weight) * att_logp + ctc_weight * ctc_lp))
      best_score = max(brute.values())
      for W in sorted({1, V - 1, V, 32}):
        tokens, score = _joint_search(att, ctc_logp, ctc_weight, beam_size=W, L=L)
        tokens, score = np.asarray(tokens), float(score)
        where = f'V={V} seed={seed} ctc_weight={ctc_weight} beam={W}: {tokens.tolist()} scored {score}'
        assert _well_formed(tokens), where
        if EOS not in tokens:  # nothing finished within L (a narrow beam): the best live prefix is returned
          assert W < 32, where
          continue
        seq = tuple(int(t) for t in tokens[:list(tokens).index(EOS) + 1])
        # The search's score is the sequence's joint score, and no sequence scores above the best.
        np.testing.assert_allclose(score, brute[seq], rtol=1e-4, atol=1e-3, err_msg=where)
        assert score <= best_score + 1e-3, where
        if W == 32:  # wider than every prefix
          np.testing.assert_allclose(score, best_score, rtol=1e-4, atol=1e-3, err_msg=where)


def test_prefix_scorer_keeps_an_impossible_extension_impossible():
  _, ctc_logp = _joint_problem(5, 6, 0)
  state = ctc.init_state(ctc_logp, jnp.array([6]))
  cand = jnp.arange(5)[None]
  psi, r = ctc.prefix_scores(state, cand, eos_id=EOS)
  assert float(psi[0, 0]) == ctc.LOG_ZERO and bool(jnp.all(r[..., 0] <= ctc.LOG_ZERO))
  # Extending the blank prefix: every score stays impossible instead of jumping by -LOG_ZERO.
  state = ctc.advance(state, cand, psi, r, jnp.array([0]))
  psi2, _ = ctc.prefix_scores(state, cand, eos_id=EOS)
  np.testing.assert_array_equal(psi2, ctc.LOG_ZERO)
  # So does a token the scorer never scored (outside the candidates, e.g. cut by a pre-beam).
  fresh = ctc.init_state(ctc_logp, jnp.array([6]))
  state = ctc.advance(fresh, cand[:, 3:], psi[:, 3:], r[..., 3:], jnp.array([1]))
  assert float(state['psi'][0]) == ctc.LOG_ZERO and bool(jnp.all(state['r'] <= ctc.LOG_ZERO))
  state = ctc.advance(fresh, cand[:, 3:], psi[:, 3:], r[..., 3:], jnp.array([4]))
  assert float(state['psi'][0]) == float(psi[0, 4]) > ctc.LOG_ZERO


# ----------------------------------------------------------------------------- padding never enters a beam
def test_searches_never_emit_padding_even_when_it_is_the_likeliest_token():
  V, L = 5, 4
  # Padding is by far the likeliest token and EOS the least, so that the live hypotheses are returned.
  logp = jax.nn.log_softmax(jnp.array([20.0, 0.0, -20.0, 0.5, 0.2]))

  def step(tokens, state):
    return jnp.broadcast_to(logp, (tokens.shape[0], V)), state

  state = {'row': jnp.zeros((2,))}
  g, _, _ = decoding.greedy(step, state, batch_size=2, max_length=L, bos_id=BOS, eos_id=EOS)
  assert all(_well_formed(row) for row in g)
  for W in (1, V - 1, V, V + 1):
    _, _, beams, scores = decoding.beam_search(step, decoding.tile_beams(state, W), batch_size=2, beam_size=W,
                                               max_length=L, bos_id=BOS, eos_id=EOS)
    live = np.asarray(beams)[np.asarray(scores) > decoding.NEG_INF / 2]
    assert len(live) and all(_well_formed(row) for row in live), (W, beams)
  # A further excluded token (a CTC blank that is not padding) is never emitted either.
  g, _, _ = decoding.greedy(step, state, batch_size=2, max_length=L, bos_id=BOS, eos_id=EOS, excluded=(0, 3))
  assert 3 not in np.asarray(g)


def _favour_padding(model):
  """Makes padding the likeliest output token by far: its output bias (or, without one, weight) is raised."""
  out = model.output
  if getattr(out, 'bias', None) is not None:
    out.bias[...] = out.bias[...].at[0].add(100.0)
  else:  # DecoderLM without tied embeddings: constant features after the final norm, then a large weight
    model.decoder.final_norm.scale[...] = jnp.zeros_like(model.decoder.final_norm.scale[...])
    model.decoder.final_norm.bias[...] = jnp.ones_like(model.decoder.final_norm.bias[...])
    out.kernel[...] = out.kernel[...].at[:, 0].set(10.0)
  return model


@pytest.mark.parametrize('family', ['decoder_lm', 'seq2seq_rnn'])
def test_model_searches_never_emit_padding(family):
  if family == 'decoder_lm':
    cfg = tr.TransformerConfig(vocab_size=5, d_model=16, num_heads=2, num_decoder_layers=1, mlp_dim=32,
                               max_length=8, tie_embeddings=False)
    model = _favour_padding(tr.DecoderLM(cfg, rngs=nnx.Rngs(0)))
    run = lambda W: model.generate(jnp.array([[BOS], [BOS]]), max_new_tokens=4, beam_size=W)[:, 1:]
  else:
    model = _favour_padding(RNNSeq2Seq(RNNSeq2SeqConfig(vocab_size=7, target_vocab_size=5, embed_size=8,
                                                        hidden_size=8), rngs=nnx.Rngs(1)))
    run = lambda W: model.generate(jnp.array([[3, 4, 5], [6, 3, 0]]), max_length=4, beam_size=W)
  for W in (1, 5):
    assert all(_well_formed(row) for row in np.asarray(run(W))), W
