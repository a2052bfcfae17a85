"""number_phrases: multilingual number phrases, a length-generalisation split, and gold word alignments."""

import numpy as np
import pytest

from attention_research import data
from attention_research.data.builders import number_phrases as npb
from attention_research.data.tokenizers import PieceTokenizer


@pytest.fixture(scope='module')
def toks():
  return PieceTokenizer(npb.source_pieces()), PieceTokenizer(npb.target_pieces())


def _links(ex, toks):
  src, tgt = toks
  sp, tp = src.pieces(ex['source']), tgt.pieces(ex['target'])
  return {(tp[j].strip(), sp[i].strip()) for j, i in ex['alignment']}, sp, tp


def _render(segments_orders, lang, toks):
  return npb.render(segments_orders, lang, *toks)


def test_german_units_before_tens_align_to_the_english_words(toks):
  ex = _render([([npb._number(23)], {})], 'de', toks)
  assert (ex['source'], ex['target']) == ('<de> twenty-three', 'dreiundzwanzig')
  links, sp, tp = _links(ex, toks)
  assert tp == ['drei', 'und', 'zwanzig']
  assert ('drei', 'three') in links and ('zwanzig', 'twenty') in links
  assert ('drei', 'twenty') not in links
  assert {s for t, s in links if t == 'und'} == {'twenty', 'three'}  # no value of its own: its number's words


def test_dates_reorder_per_language_and_keep_their_links(toks):
  gen = np.random.default_rng(0)
  segments, orders = npb.phrase_segments('date', gen, 12)
  month, day, year = segments
  for lang in npb.LANGUAGES:
    ex = _render([(segments, orders)], lang, toks)
    text = ex['target']
    positions = [text.find(seg.targets[lang]) for seg in (day, month, year)]
    assert min(positions) >= 0, (lang, text)
    if lang == 'ja':
      assert positions[2] < positions[1] < positions[0]  # year month day
    else:
      assert positions[0] < positions[1] < positions[2]  # day month year (English: month day year)
    links, _, tp = _links(ex, toks)
    assert (month.targets[lang][:1] if lang == 'ja' else month.targets[lang], month.source) in {
        (t[:1] if lang == 'ja' else t, s) for t, s in links}


def test_alignment_format(build, toks):
  built = build('number_phrases')
  for split, ex in built.examples.items():
    for source, target, alignment in list(zip(ex['source'], ex['target'], ex['alignment']))[:50]:
      a = np.asarray(alignment)
      assert a.dtype == np.int32 and a.ndim == 2 and a.shape[1] == 2 and len(a)
      assert [tuple(r) for r in a] == sorted({tuple(r) for r in a}), 'sorted, no repeats'
      n_src, n_tgt = len(toks[0].encode(source)), len(toks[1].encode(target))
      assert (a[:, 0] < n_tgt).all() and (a[:, 1] < n_src).all() and (a >= 0).all()
      assert (a[:, 1] > 0).all(), 'nothing renders the language tag'


def test_vocabularies_are_saved_and_cover_every_text(build):
  built = build('number_phrases')
  task = built.task
  src, tgt = task.tokenizers['inputs'], task.tokenizers['targets']
  for split, ex in built.examples.items():
    for s, t in zip(ex['source'], ex['target']):
      assert src.decode(src.encode(s)) == s and src.unk_id not in src.encode(s)
      assert tgt.decode(tgt.encode(t)) == t and tgt.unk_id not in tgt.encode(t)
  assert set(built.builder.info.metadata) >= {'source_tokenizer', 'target_tokenizer'}
  assert set(built.examples['train']['language']) == set(npb.LANGUAGES)


def test_length_generalisation_split(build):
  built = build('number_phrases')
  task, config = built.task, built.builder.builder_config
  train = task.columns['train']['inputs'].lengths
  assert (task.columns['test_long']['inputs'].lengths > train.max()).all()
  assert task.info['train_source_length'] == train.max() - 1
  assert max(built.examples['train']['num_phrases']) <= config.max_phrases
  assert max(built.examples['test']['num_phrases']) == config.max_test_phrases
  sources = {s: {*built.examples[s]['source']} for s in built.examples}
  assert not sources['test_long'] & (sources['train'] | sources['validation'] | sources['test'])
  assert task.info['length_buckets'][-1] >= task.info['max_input_length'] - 1


def test_numbers_reach_twelve_digits_and_a_perfect_output_scores_100(toks):
  ex = _render([([npb._number(987_654_321_012)], {})], 'de', toks)
  assert 'Milliarden' in ex['target']
  from attention_research.training.objectives import seq2seq  # pylint: disable=g-import-not-at-top
  segment = seq2seq.bleu_segmenter({'bleu_units': 'pieces'}, toks[1])
  refs = [_render([([npb._number(n)], {})], lang, toks)['target']
          for n in (7, 23, 4_500_017, 987_654_321_012) for lang in npb.LANGUAGES]
  assert seq2seq.text_metrics(['bleu'], refs, refs, segment=segment)['bleu'] == pytest.approx(100.0)


@pytest.mark.parametrize('overrides, message', [
    ({'languages': ('de', 'xx')}, 'languages'),
    ({'max_phrases': 3, 'max_test_phrases': 2}, 'max_phrases'),
    ({'max_digits': 13}, 'max_digits'),
])
def test_bad_configs_are_clear_errors(tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    data.load_task('number_phrases', size='small', data_dir=str(tmp_path), **overrides)
