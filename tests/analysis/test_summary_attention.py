"""Summary words against report sentences: sentence spans, mass per sentence, goal sentences and scorer mass."""

import numpy as np
import pytest

from attention_research.analysis import summaries

SOURCE = ('rovers hosted city . first half . king scored for city in the 7 minute . smith was booked . '
          'second half . hall scored for rovers in the 60 minute . </s>').split()
TARGET = 'rovers drew with city 1 - 1 . goals : king , hall . </s>'.split()


def test_sentences_goals_and_scorers():
  spans = summaries.sentence_spans(SOURCE)
  assert [' '.join(SOURCE[a:b]) for a, b in spans][:3] == ['rovers hosted city .', 'first half .',
                                                           'king scored for city in the 7 minute .']
  assert spans[-1] == (len(SOURCE) - 1, len(SOURCE))  # EOS is a span of its own
  assert summaries.goal_sentences(SOURCE) == [2, 5]
  assert [TARGET[i] for i in summaries.scorer_positions(TARGET)] == ['king', 'hall']
  assert summaries.scorer_positions('rovers drew with city 0 - 0 . no goals .'.split()) == []


def test_sentence_mass_sums_the_tokens_and_averages_heads():
  rng = np.random.default_rng(0)
  w = rng.random((2, len(TARGET), len(SOURCE)))
  w /= w.sum(-1, keepdims=True)
  mass = summaries.sentence_mass(w, SOURCE)
  spans = summaries.sentence_spans(SOURCE)
  assert mass.shape == (len(TARGET), len(spans))
  np.testing.assert_allclose(mass.sum(-1), 1.0)
  a, b = spans[2]
  np.testing.assert_allclose(mass[:, 2], w.mean(0)[:, a:b].sum(-1))
  with pytest.raises(ValueError, match='source_tokens'):
    summaries.sentence_mass(w, SOURCE[:-1])


def test_scorer_mass_on_own_goal_and_its_uniform_share():
  spans = summaries.sentence_spans(SOURCE)
  w = np.full((len(TARGET), len(SOURCE)), 1.0 / len(SOURCE))
  uniform = summaries.scorer_mass(w, SOURCE, TARGET)
  assert uniform['own_goal'] == pytest.approx(uniform['own_goal_share'])
  assert uniform['any_goal'] == pytest.approx(uniform['any_goal_share'])
  # 'king' reads its own goal sentence, 'hall' reads king's: own-goal mass 1/2, any-goal mass 1.
  for position, sentence in zip(summaries.scorer_positions(TARGET), (2, 2)):
    a, b = spans[sentence]
    w[position] = 0.0
    w[position, a:b] = 1.0 / (b - a)
  m = summaries.scorer_mass(w, SOURCE, TARGET)
  assert m['own_goal'] == pytest.approx(0.5) and m['any_goal'] == pytest.approx(1.0)
  assert np.isnan(summaries.scorer_mass(w, SOURCE, TARGET[:1] + ['x'] * (len(TARGET) - 1))['own_goal'])


def test_sentence_figure(tmp_path):
  w = np.full((2, len(TARGET), len(SOURCE)), 1.0 / len(SOURCE))
  fig = summaries.sentence_figure(w, SOURCE, TARGET, title='uniform', path=tmp_path / 's.png')
  assert (tmp_path / 's.png').stat().st_size > 0
  labels = fig.axes[0].get_xticklabels()
  assert [lbl.get_color() for lbl in labels].count('tab:red') == 2
  fig = summaries.sentence_figure(w, SOURCE, TARGET, highlight=[1], row_label='question word')
  labels = fig.axes[0].get_xticklabels()
  assert [lbl.get_color() for lbl in labels].index('tab:red') == 1
  assert [lbl.get_color() for lbl in labels].count('tab:red') == 1
  assert fig.axes[0].get_ylabel() == 'question word'
