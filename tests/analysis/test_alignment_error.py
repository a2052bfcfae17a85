"""analysis.alignment_error: AER against hand-computed cases, links from attention, speech frame agreement."""

import numpy as np
import pytest

from attention_research.analysis import alignment_error as ae


def test_aer_hand_computed_with_sure_and_possible_links():
  predicted = {(0, 0), (1, 1), (2, 1)}
  sure = {(0, 0), (1, 1)}
  # |A & S| = 2, |A & P| = 2, |A| = 3, |S| = 2: 1 - 4/5.
  assert ae.alignment_error_rate(predicted, sure, sure | {(2, 2)}) == pytest.approx(0.2)
  # (2, 1) possible: |A & P| = 3, so 1 - 5/5.
  assert ae.alignment_error_rate(predicted, sure, {(2, 1)}) == pytest.approx(0.0)
  # Sure only: 1 - 2 |A & S| / (|A| + |S|) = 1 - 2 * 1 / 4.
  assert ae.alignment_error_rate([[0, 0], [1, 2]], sure) == pytest.approx(0.5)
  assert ae.alignment_error_rate(sure, sure) == 0.0
  assert ae.alignment_error_rate({(5, 5)}, sure) == 1.0


def test_boolean_matrix_and_pairs_are_the_same_alignment():
  m = np.zeros((3, 4), bool)
  m[0, 0] = m[1, 2] = m[2, 3] = True
  assert ae.links(m) == {(0, 0), (1, 2), (2, 3)} == ae.links(np.array([[0, 0], [1, 2], [2, 3]]))
  with pytest.raises(ValueError, match='pairs'):
    ae.links([(0, 1, 2)])
  with pytest.raises(ValueError, match='undefined'):
    ae.alignment_error_rate([], [])


def test_corpus_aer_sums_counts_before_dividing():
  # Sentence 1: |A&S| = 1, |A| = 1, |S| = 1; sentence 2: |A&S| = 0, |A| = 1, |S| = 3.
  predicted = [{(0, 0)}, {(0, 1)}]
  sure = [{(0, 0)}, {(0, 0), (1, 1), (2, 2)}]
  assert ae.corpus_alignment_error_rate(predicted, sure) == pytest.approx(1 - 2 * 1 / 6)
  mean_of_sentences = np.mean([ae.alignment_error_rate(a, s) for a, s in zip(predicted, sure)])
  assert mean_of_sentences == pytest.approx(0.5)  # differs: the corpus ratio weights sentences by their links


def test_links_from_attention_argmax_and_threshold():
  w = np.array([[0.7, 0.2, 0.1],
                [0.1, 0.45, 0.45],
                [0.0, 0.3, 0.7]])
  assert ae.attention_links(w) == {(0, 0), (1, 1), (2, 2)}  # ties go to the first source
  assert ae.attention_links(w, threshold=0.4) == {(0, 0), (1, 1), (1, 2), (2, 2)}
  heads = np.stack([w, w[:, ::-1]])  # the head mean is symmetric in the two outer sources
  assert ae.attention_links(heads) == {(0, 0), (1, 1), (2, 0)}
  assert ae.attention_alignment_error_rate(w, {(0, 0), (1, 2), (2, 2)}) == pytest.approx(1 - 4 / 6)
  assert ae.attention_alignment_error_rate(w, {(0, 0), (1, 2), (2, 2)}, threshold=0.4) == pytest.approx(1 - 6 / 7)


def _peaked(frames_of_tokens, F):
  w = np.full((len(frames_of_tokens), F), 0.01)
  for t, f in enumerate(frames_of_tokens):
    w[t, f] = 1.0
  return w / w.sum(-1, keepdims=True)


def test_peak_distance_and_frame_agreement():
  w = _peaked([1, 5, 9], 10)
  spans = [(0, 3), (6, 8), (2, 4)]
  np.testing.assert_array_equal(ae.peak_frame_distance(w, spans), [0, 1, 6])
  assert ae.frame_agreement(w, spans) == pytest.approx(1 / 3)
  assert ae.frame_agreement(w, [(0, 3), None, (9, 10)]) == pytest.approx(2 / 3)
  assert np.isnan(ae.peak_frame_distance(w, [(0, 3), None, (9, 10)])[1])
  with pytest.raises(ValueError, match='frame span'):
    ae.frame_agreement(w, [(0, 3), (6, 11), (2, 4)])


def _ctc_logits(best_path, V=4):
  logits = np.full((len(best_path), V), -5.0)
  logits[np.arange(len(best_path)), best_path] = 5.0
  return logits


def test_ctc_forced_alignment_and_best_path_segments():
  # Frames emit 1 1 _ 1 2 2: the repeated token 1 needs the blank between its two occurrences.
  logits = _ctc_logits([1, 1, 0, 1, 2, 2])
  assert ae.ctc_forced_alignment(logits, [1, 1, 2]) == [(0, 2), (3, 4), (4, 6)]
  assert ae.ctc_segments(logits, [1, 1, 2]) == [(0, 2), (3, 4), (4, 6)]
  assert ae.ctc_segments(logits, [1, 3, 1, 2], forced=False) == [(0, 2), None, (3, 4), (4, 6)]
  # Forcing a token the frames do not favour still gives every token a segment, in order.
  forced = ae.ctc_forced_alignment(logits, [1, 3, 2])
  assert len(forced) == 3 and all(a < b for a, b in forced) and forced[0][1] <= forced[1][0] < forced[2][0]
  with pytest.raises(ValueError, match='cannot hold'):
    ae.ctc_forced_alignment(_ctc_logits([1, 1]), [1, 1])
  w = _peaked([1, 3, 5], 6)
  assert ae.frame_agreement(w, ae.ctc_segments(logits, [1, 1, 2])) == 1.0
