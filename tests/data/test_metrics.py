import math

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


def test_bleu_on_segmented_text_is_sacrebleus_corpus_bleu():
  # 23400 and 23500 in German morphemes. Matches of 1..4-grams: 5/6, 3/5, 2/4, 1/3; equal lengths (no brevity
  # penalty), so BLEU = 100 * (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = 100 * (1/12) ** (1/4).
  ref = 'drei und zwanzig tausend vier hundert'
  hyp = 'drei und zwanzig tausend fünf hundert'
  assert metrics.bleu([ref], [ref], tokenize='none') == pytest.approx(100.0)
  assert metrics.bleu([hyp], [ref], tokenize='none') == pytest.approx(100 * (1 / 12) ** 0.25)
  # Every n-gram of a prefix matches; only the brevity penalty exp(1 - 6/4) counts.
  assert metrics.bleu(['drei und zwanzig tausend'], [ref], tokenize='none') == pytest.approx(100 * math.exp(-0.5))
  # The same numbers as words are one token each: no 2-, 3- or 4-grams, so word BLEU cannot see them.
  assert metrics.bleu(['dreiundzwanzigtausendvierhundert'], ['dreiundzwanzigtausendvierhundert']) == 0.0


def test_bleu_signature_names_the_tokenisation():
  assert metrics.bleu_signature('none').startswith('nrefs:1|case:mixed|eff:no|tok:none|smooth:exp|version:')
  assert '|tok:13a|' in metrics.bleu_signature()


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
