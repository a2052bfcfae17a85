import numpy as np
import pytest

from attention_research.data import metrics


def test_text_metrics():
  refs = ['dreiundzwanzig', 'einhundert']
  assert metrics.exact_match(refs, refs) == 1.0
  assert metrics.exact_match(['dreiundzwanzig', 'x'], refs) == 0.5
  assert metrics.bleu(['the cat sat on the mat'], ['the cat sat on the mat']) == pytest.approx(100.0)
  assert metrics.chrf(refs, refs) == pytest.approx(100.0)
  assert 0 < metrics.chrf(['dreiundzwanzich', 'einhundert'], refs) < 100


def test_error_rates():
  assert metrics.wer(['three one four'], ['three one four']) == 0.0
  assert metrics.wer(['three one five'], ['three one four']) == pytest.approx(1 / 3)
  assert metrics.cer(['abd'], ['abc']) == pytest.approx(1 / 3)
  with pytest.raises(ValueError, match='empty reference'):
    metrics.cer(['a'], [''])


def test_accuracy_with_weights():
  assert metrics.accuracy([1, 2, 3], [1, 2, 0]) == pytest.approx(2 / 3)
  targets = np.asarray([[0, 5, 0, 7]])
  predictions = np.asarray([[9, 5, 9, 1]])
  assert metrics.accuracy(predictions, targets, weights=targets != 0) == 0.5


def test_mismatched_lengths():
  with pytest.raises(ValueError, match='2 predictions but 1 references'):
    metrics.bleu(['a', 'b'], ['a'])
