"""objectives.alignment: the AER and frame agreement that evaluation reports, against hand computations and
against analysis.alignment_error on weights captured from a model."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research.analysis import alignment_error as ae
from attention_research.layers import capture_attention
from attention_research.models import transformer as tr
from attention_research.training.objectives import alignment, base

PAD, BOS, EOS = 0, 1, 2


def flat(pairs, width):
  """Links flattened (t0, s0, t1, s1, ...) and padded with -1, as batches carry them."""
  out = np.full(width, -1, np.int32)
  values = np.asarray(pairs, np.int32).reshape(-1)
  out[:len(values)] = values
  return out


def test_aer_scorer_hand_computed_on_a_tiny_batch():
  # Row 0: targets a b EOS; row 1: targets c EOS pad; row 2 is padding (n = 2).
  batch = {'targets': np.array([[5, 6, EOS], [7, EOS, PAD], [0, 0, 0]]),
           'alignment': np.stack([flat([(0, 1), (1, 2), (1, 3)], 8), flat([(0, 0)], 8), flat([], 8)])}
  # Two decoder layers [B, L, T]; the EOS rows' links (last column of row 0, the EOS position of row 1) must not
  # count.
  links = np.array([[[1, 0, 0], [1, 1, 0]], [[2, 0, 0], [0, 3, 3]], [[0, 0, 0], [0, 0, 0]]])
  scorer = alignment.AERScorer(pad_id=PAD, eos_id=EOS)
  scorer.add(batch, 2, links)
  # Last layer: row 0 A = {(0,1), (1,1)}, S has 3 links, |A & S| = 1; row 1 A = {(0,0)}, |A & S| = 1.
  # Corpus: 1 - 2 * 2 / (3 + 4) = 3/7. First layer: |A & S| = 1 + 0, so 1 - 2 * 1 / 7 = 5/7.
  out = scorer.metrics()
  assert out['aer'] == pytest.approx(3 / 7)
  assert out['aer_best'] == pytest.approx(3 / 7) and out['aer_best_layer'] == 1.0
  first = ae.corpus_alignment_error_rate(scorer.predicted[0], scorer.sure)
  assert first == pytest.approx(5 / 7) and scorer.predicted[0][0] == {(0, 1), (1, 0)}
  assert alignment.AERScorer(pad_id=PAD, eos_id=EOS).metrics() == {}  # nothing scored: no metric
  with pytest.raises(ValueError, match='even length'):
    alignment.gold_links(np.array([1, 2, 3]))


def test_argmax_links_equal_analysis_links_of_captured_cross_attention():
  cfg = tr.TransformerConfig(vocab_size=12, d_model=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=2,
                             mlp_dim=32, max_length=8, pad_id=PAD, bos_id=BOS, eos_id=EOS)
  model = base.init_model(tr.EncoderDecoder, cfg, 0)  # compiled: eager NNX runs each operation separately
  inputs = jnp.array([[5, 6, 7, 8, EOS, PAD], [9, 10, EOS, PAD, PAD, PAD]])
  targets = jnp.array([[3, 4, 5, EOS, PAD], [6, EOS, PAD, PAD, PAD]])
  targets_in = jnp.concatenate([jnp.full((2, 1), BOS), targets[:, :-1]], 1)
  _, maps = nnx.jit(lambda m: capture_attention(lambda m: m(inputs, targets_in), m))(model)
  links = np.asarray(alignment.argmax_links(maps, inputs, pad_id=PAD, eos_id=EOS))
  assert links.shape == (2, 2, 5)
  gold = [{(0, 0), (1, 1), (2, 3)}, {(0, 1)}]
  batch = {'targets': np.asarray(targets), 'alignment': np.stack([flat(sorted(g), 8) for g in gold])}
  scorer = alignment.AERScorer(pad_id=PAD, eos_id=EOS)
  scorer.add(batch, 2, links)
  real = [(3, 4), (1, 2)]  # (target tokens without EOS, source tokens without EOS) per row
  for layer in range(2):
    w = np.asarray(maps['cross'][layer])  # [B, N, T, S]
    predicted = [ae.attention_links(w[i, :, :t, :s]) for i, (t, s) in enumerate(real)]
    assert scorer.predicted[layer] == predicted
  expected = ae.corpus_alignment_error_rate([ae.attention_links(np.asarray(maps['cross'][-1])[i, :, :t, :s])
                                             for i, (t, s) in enumerate(real)], gold)
  assert scorer.metrics()['aer'] == pytest.approx(expected)
  # The RNN's one alignment [B, T, S] is one layer; a model without attention gives no links.
  rnn = alignment.argmax_links({'attention': np.asarray(maps['cross'][0]).mean(1)}, inputs, pad_id=PAD, eos_id=EOS)
  np.testing.assert_array_equal(np.asarray(rnn)[:, 0], links[:, 0])
  assert alignment.argmax_links({}, inputs, pad_id=PAD, eos_id=EOS) is None


def test_frame_agreement_hand_computed_from_a_ctc_forced_alignment():
  # 7 frames, tokens 3 4 then EOS; the CTC head says frames 0-1 are token 3, 2 blank, 3-4 token 4, 5-6 blank.
  V, blank = 6, 0
  frame_labels = [3, 3, blank, 4, 4, blank, blank]
  ctc_logits = np.full((1, 7, V), -5.0)
  ctc_logits[0, np.arange(7), frame_labels] = 5.0
  cross = np.zeros((1, 3, 7))
  cross[0, 0, 1] = 1.0  # token 3 peaks on frame 1: inside its segment [0, 2)
  cross[0, 1, 5], cross[0, 1, 3] = 1.0, 0.5  # token 4 peaks on frame 5: outside [3, 5)
  cross[0, 2, 4] = 1.0  # the EOS row is not scored
  assert ae.ctc_forced_alignment(ctc_logits[0], [3, 4]) == [(0, 2), (3, 5)]
  scorer = alignment.FrameAgreementScorer(limit=64, pad_id=PAD, eos_id=EOS, blank_id=blank)
  scorer.add(np.array([[3, 4, EOS]]), cross, ctc_logits, np.array([7]), 1)
  assert scorer.metrics() == {'frame_agreement': 0.5}
  # Frame lengths crop: with 5 frames token 4's peak is frame 3, inside; only the first example counts.
  limited = alignment.FrameAgreementScorer(limit=1, pad_id=PAD, eos_id=EOS, blank_id=blank)
  limited.add(np.array([[3, 4, EOS]] * 2), np.concatenate([cross] * 2), np.concatenate([ctc_logits] * 2),
              np.array([5, 7]), 2)
  assert limited.full and limited.examples == 1 and limited.metrics() == {'frame_agreement': 1.0}
