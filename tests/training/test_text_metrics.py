"""Generated text is scored per task: number_translation's BLEU counts German morphemes, not words."""

import pytest

from attention_research.data import metrics
from attention_research.data.builders import number_translation
from attention_research.data.tokenizers import PieceTokenizer, WordTokenizer
from attention_research.training.objectives import seq2seq

NUMBERS = (7, 23, 101, 117, 23400, 60616, 999999)


@pytest.fixture(scope='module')
def segment():
  tokenizer = PieceTokenizer(number_translation.german_pieces())
  return seq2seq.bleu_segmenter({'bleu_units': 'pieces'}, tokenizer)


def test_german_numbers_are_segmented_into_morphemes(segment):
  assert segment('dreiundzwanzig') == 'drei und zwanzig'
  assert segment('neunhundertneunundneunzigtausendneunhundertneunundneunzig') == (
      'neun hundert neun und neunzig tausend neun hundert neun und neunzig')
  assert segment('') == ''


def test_a_perfect_translation_scores_100_bleu(segment):
  refs = [number_translation.german(n) for n in NUMBERS]
  scores = seq2seq.text_metrics(['exact_match', 'bleu', 'chrf'], refs, refs, segment=segment)
  assert scores == pytest.approx({'exact_match': 1.0, 'bleu': 100.0, 'chrf': 100.0})
  assert seq2seq.text_metrics(['bleu'], refs, refs) == {'bleu': 0.0}  # words: one per number, no 4-grams


def test_an_imperfect_translation_scores_sacrebleus_morpheme_bleu(segment):
  refs = [number_translation.german(n) for n in NUMBERS]
  hyps = list(refs)
  hyps[4] = number_translation.german(23500)  # dreiundzwanzigtausend{fünf,vier}hundert
  hyps[1] = 'dreiundzwanzigtausend'  # longer than its reference
  got = seq2seq.text_metrics(['bleu'], hyps, refs, segment=segment)['bleu']
  expected = metrics.bleu([segment(h) for h in hyps], [segment(r) for r in refs], tokenize='none')
  assert got == pytest.approx(expected) and 0 < got < 100
  # Hand count over the corpus (reference morphemes: 1 + 3 + 3 + 3 + 6 + 5 + 11 = 32; hypothesis: 33).
  # Clipped matches of 1..4-grams: 31/33, 23/26, 17/20, 11/14; no brevity penalty (33 > 32).
  assert got == pytest.approx(100 * (31 / 33 * 23 / 26 * 17 / 20 * 11 / 14) ** 0.25)


def test_word_tasks_keep_sacrebleus_13a_words():
  assert seq2seq.bleu_segmenter({}, WordTokenizer(['a'])) is None
  assert 'tok:13a' in seq2seq.bleu_note({}) and 'tok:none' in seq2seq.bleu_note({'bleu_units': 'pieces'})
  with pytest.raises(ValueError, match="bleu_units='pieces' needs a tokenizer with pieces"):
    seq2seq.bleu_segmenter({'bleu_units': 'pieces'}, WordTokenizer(['a']))
  with pytest.raises(ValueError, match="bleu_units='morphemes'; known"):
    seq2seq.bleu_segmenter({'bleu_units': 'morphemes'}, WordTokenizer(['a']))
