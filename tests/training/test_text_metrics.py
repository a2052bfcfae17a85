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


def test_bucket_metrics_score_each_source_length_bucket(segment):
  refs = [number_translation.german(n) for n in NUMBERS]
  lengths = [41, 15, 25, 11, 3, 9, 10]  # the long numbers in 1..10: corpus BLEU needs 4-grams
  hyps = list(refs)
  hyps[3] = number_translation.german(24)  # one wrong output, in the 11..20 bucket
  out = seq2seq.bucket_metrics(['exact_match', 'bleu', 'chrf'], hyps, refs, lengths, (10, 20, 40), segment)
  assert out[seq2seq.bucket_key('exact_match', 1, 10)] == 1.0
  assert out['bleu_len_001_010'] == pytest.approx(100.0)
  assert out['examples_len_001_010'] == 3.0 and out['examples_len_011_020'] == 2.0
  assert out['exact_match_len_011_020'] == 0.5 and out['bleu_len_011_020'] < 100.0
  assert out['examples_len_021_040'] == 1.0 and not any(k.startswith('chrf') for k in out)  # 41: no bucket
  assert seq2seq.parse_bucket_key('bleu_len_011_020') == ('bleu', 11, 20)
  assert seq2seq.parse_bucket_key('exact_match') is None
  with pytest.raises(ValueError, match='increasing'):
    seq2seq.bucket_metrics(['bleu'], hyps, refs, lengths, (20, 10))
  with pytest.raises(ValueError, match='source lengths'):
    seq2seq.bucket_metrics(['bleu'], hyps, refs, lengths[:2], (10,))
