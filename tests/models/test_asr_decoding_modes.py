"""ASR decoding modes beyond greedy and joint search: CTC prefix beam search against brute force on tiny
vocabularies, windowed CTC prefix scores against the full scorer, and every mode through ASR.decode."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research.models import asr, asr_search, ctc

BLANK, BOS, EOS = 0, 1, 2  # CTC emits tokens 3..V-1


def _collapse(path):
  return tuple(p for i, p in enumerate(path) if p != BLANK and (i == 0 or path[i - 1] != p))


def _brute_force(lp, emit):
  """{label sequence: log p_ctc} over every frame path of lp [F, V] whose labels use only `emit` tokens."""
  F, V = lp.shape
  totals = {}
  for path in itertools.product(range(V), repeat=F):
    labels = _collapse(path)
    if all(t in emit for t in labels):
      totals[labels] = np.logaddexp(totals.get(labels, -np.inf), sum(lp[t, s] for t, s in enumerate(path)))
  return totals


def _strip(seq):
  seq = list(np.asarray(seq))
  return tuple(seq[:seq.index(EOS)]) if EOS in seq else tuple(t for t in seq if t)


@pytest.mark.parametrize('seed, V, F, length', [(0, 5, 3, 3), (1, 5, 4, 4), (2, 6, 3, 2)])
def test_ctc_prefix_beam_search_equals_brute_force(seed, V, F, length):
  """With a beam that holds every prefix, the n-best are the most probable label sequences with their exact
  log-probabilities; a small beam still finds the best here. BOS and EOS are kept improbable but possible per
  frame, so the search must refuse them."""
  logits = 2.0 * jax.random.normal(jax.random.PRNGKey(seed), (1, F, V))
  log_probs = jax.nn.log_softmax(logits, -1)
  lp = np.asarray(log_probs, np.float64)[0, :length]
  # The probability mass of frame paths through BOS/EOS counts for no label sequence.
  truth = sorted(_brute_force(lp, set(range(3, V))).items(), key=lambda kv: -kv[1])
  seqs, scores = asr_search.ctc_prefix_beam(log_probs, jnp.array([length]), beam_size=64, max_length=F + 1)
  n = len(truth)
  got = [(_strip(s), float(v)) for s, v in zip(np.asarray(seqs)[0, :n], np.asarray(scores)[0, :n])]
  assert [g[0] for g in got] == [t[0] for t in truth]
  np.testing.assert_allclose([g[1] for g in got], [t[1] for t in truth], rtol=1e-5, atol=1e-5)
  assert np.all(np.asarray(scores)[0, n:] < -1e8)  # nothing else is a sequence
  for s in np.asarray(seqs)[0, :n]:
    assert not set(_strip(s)) & {BLANK, BOS, EOS}
  small, _ = asr_search.ctc_prefix_beam(log_probs, jnp.array([length]), beam_size=3, max_length=F + 1)
  assert _strip(np.asarray(small)[0, 0]) == truth[0][0]


def _score_path(log_probs, length, prefix, margin):
  """psi of every candidate after each prefix, and the state's start frames, with or without a window."""
  V = log_probs.shape[-1]
  cand = jnp.arange(V)[None]
  state = ctc.init_state(log_probs, jnp.array([length]), margin=margin)
  out = []
  for tok in prefix:
    psi, r, start = ctc.prefix_scores(state, cand, eos_id=EOS, return_start=True)
    out.append(psi)
    state = ctc.advance(state, cand, psi, r, jnp.array([tok]), start=start)
  out.append(ctc.prefix_scores(state, cand, eos_id=EOS)[0])
  return np.stack([np.asarray(p) for p in out])


@pytest.mark.parametrize('length', [12, 9])
def test_windowed_prefix_scores_equal_full_scores_when_the_window_covers_everything(length):
  F, V = 12, 7
  log_probs = jax.nn.log_softmax(1.5 * jax.random.normal(jax.random.PRNGKey(3), (1, F, V)), -1)
  prefix = (3, 4, 4, 5)
  full = _score_path(log_probs, length, prefix, None)
  np.testing.assert_array_equal(_score_path(log_probs, length, prefix, F), full)
  # A narrow window keeps only some alignments: never more probable, and here strictly less for some prefix.
  narrow = _score_path(log_probs, length, prefix, 1)
  assert np.all(narrow <= full + 1e-5)
  assert np.any(narrow < full - 1e-3)


N = 4800  # 0.3 s at 16 kHz: 6 encoder frames
CFG = asr.ASRConfig(vocab_size=6, num_mel_bins=20, d_model=32, num_heads=4, num_encoder_layers=1,
                    num_decoder_layers=1, mlp_dim=64, conv_kernel_size=5, dropout_rate=0.0, ctc_weight=0.3,
                    max_frames=64, max_target_length=16)


@pytest.fixture(scope='module')
def model_and_audio():
  t = np.arange(N) / 16000
  audio = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * (300 + 900 * t) * t)]).astype(np.float32)
  audio[1, 4000:] = 0.0
  return asr.ASR(CFG, rngs=nnx.Rngs(1)), audio, np.array([N, 4000], np.int32)


@pytest.mark.parametrize('method', asr.METHODS)
@pytest.mark.parametrize('beam_size', [2, 6])
def test_every_mode_returns_a_valid_transcript(model_and_audio, method, beam_size):
  """Untrained model, V = 6 (beams up to V): no pad, blank or BOS inside a transcript, EOS at most once, at
  its end, and nothing after it."""
  model, audio, lengths = model_and_audio
  tokens = np.asarray(model.decode(audio, lengths, method=method, beam_size=beam_size, max_length=7))
  assert tokens.shape == (2, 7)
  for row in tokens:
    n = int(np.sum(np.cumsum(row == 0) == 0))  # tokens before the first padding
    assert np.all(row[n:] == 0), row
    body = list(row[:n])
    assert BOS not in body
    if EOS in body:
      assert body.index(EOS) == n - 1, row


def test_joint_with_a_covering_window_equals_joint(model_and_audio):
  model, audio, lengths = model_and_audio
  for method in ('joint', 'rescoring'):
    plain = model.decode(audio, lengths, method=method, beam_size=3, max_length=7, ctc_weight=0.5)
    covering = model.decode(audio, lengths, method=method, beam_size=3, max_length=7, ctc_weight=0.5,
                            ctc_margin=6)
    np.testing.assert_array_equal(covering, plain)
  with pytest.raises(ValueError, match='ctc_margin'):
    model.decode(audio, lengths, method='joint', ctc_margin=-1)
