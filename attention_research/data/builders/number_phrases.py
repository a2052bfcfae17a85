"""number_phrases: English phrases of numbers, amounts and dates -> German, French, Turkish or Japanese.

A source is a target-language tag and one to a few phrases joined by ';':

  <fr> forty-two kilograms; march third two thousand and twenty-one; nine hundred and five billion, ...
  -> quarante-deux kilogrammes, le trois mars deux mille vingt et un, neuf cent cinq milliards ...

A phrase is a cardinal number, an amount (number and unit) or a date (English month day year; German, French
and Turkish day month year; Japanese year month day). Numbers are drawn uniformly over their number of digits
(1 to max_digits, up to 10^12), so short numbers are present. Every text comes from `num2words` 0.5.14 (offline):
German writes units before tens ('dreiundzwanzig') and calls 10^12 'Billion', French counts in twenties
('quatre-vingt-dix-neuf'), Turkish writes compounds without spaces ('üçyüzyirmiüç'), Japanese groups by 10^4
('二百三十四億').

Splits: train and validation hold 1..max_phrases phrases; test holds 1..max_test_phrases phrases (uniform over the
phrase count), so its longer sources lie beyond training; test_long holds only sources longer (in tokens) than
every training source, the length-generalisation test. Sources are distinct across all splits. Everything is
drawn from `seed`.

Tokens: the source tokenizer has the English words (with their leading space), '-', ',', ';' and the language
tags; the target tokenizer has the morphemes of each language's number words ('drei', 'und', 'zwanzig',
'hundert'; Japanese characters), month and unit names, each also with a leading space, and single characters as
a fallback. Both vocabularies are saved beside the data (metadata 'source_tokenizer', 'target_tokenizer'). BLEU
counts target pieces ('bleu_units': 'pieces'), so a perfect output scores 100 and a long number is many n-grams.

Feature `alignment`: the gold word alignment, int32 [n, 2], one row (target index, source index) per link, in
Pharaoh order (sorted by target, then source). Indices count the tokenizers' pieces of the texts without EOS;
source index 0 is the language tag. A target piece links to the source piece(s) it renders: within a number,
the source piece of the same value in the same order of occurrence ('drei' of 'dreiundzwanzig' -> 'three' of
'twenty-three'); a piece without such a match (German 'und', French 'quatre' of 'quatre-vingts', Japanese '万')
links to every word piece of its number (or day, year); a month, unit or joiner links to its source word(s);
spaces, hyphens and articles ('der', 'le') have no link. Batches of the task carry it as 'alignment' [B, 2K]:
the links flattened (t0, s0, t1, s1, ...) and padded with -1 (objectives.seq2seq.gold_links reads it back).
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np
import tensorflow_datasets as tfds
from num2words import num2words

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import UNK_ID, PieceTokenizer, encode_all, from_json

LANGUAGES = ('de', 'fr', 'tr', 'ja')
KINDS = ('number', 'amount', 'date')
_SCALES = (100, 1000, 10**6, 10**9, 10**12)
_ATOMS = tuple(range(20)) + tuple(range(20, 100, 10)) + _SCALES
_JA_DIGITS = '〇一二三四五六七八九'
_JA_VALUES = {**{c: i for i, c in enumerate(_JA_DIGITS)}, '十': 10, '百': 100, '千': 1000, '万': 10**4,
              '億': 10**8, '兆': 10**12, '零': 0}
MONTHS = {
    'en': ('january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october',
           'november', 'december'),
    'de': ('Januar', 'Februar', 'März', 'April', 'Mai', 'Juni', 'Juli', 'August', 'September', 'Oktober',
           'November', 'Dezember'),
    'fr': ('janvier', 'février', 'mars', 'avril', 'mai', 'juin', 'juillet', 'août', 'septembre', 'octobre',
           'novembre', 'décembre'),
    'tr': ('Ocak', 'Şubat', 'Mart', 'Nisan', 'Mayıs', 'Haziran', 'Temmuz', 'Ağustos', 'Eylül', 'Ekim', 'Kasım',
           'Aralık'),
}
# (singular, plural) per language; Japanese and Turkish nouns do not change after a number.
UNITS = {
    'en': (('kilogram', 'kilograms'), ('metre', 'metres'), ('euro', 'euros'), ('hour', 'hours')),
    'de': (('Kilogramm',) * 2, ('Meter',) * 2, ('Euro',) * 2, ('Stunde', 'Stunden')),
    'fr': (('kilogramme', 'kilogrammes'), ('mètre', 'mètres'), ('euro', 'euros'), ('heure', 'heures')),
    'tr': (('kilogram',) * 2, ('metre',) * 2, ('avro',) * 2, ('saat',) * 2),
    'ja': (('キログラム',) * 2, ('メートル',) * 2, ('ユーロ',) * 2, ('時間',) * 2),
}
JOINER = {'en': ';', 'de': ',', 'fr': ',', 'tr': ',', 'ja': '、'}
_DATE_ORDER = {'en': 'mdy', 'de': 'dmy', 'fr': 'dmy', 'tr': 'dmy', 'ja': 'ymd'}
_ARTICLE = {'de': 'der', 'fr': 'le'}
_EN_WORD = re.compile(r' ?[a-z]+|[-,;]|<[a-z]+>')


def tag(lang: str) -> str:
  return f'<{lang}>'


def cardinal(n: int, lang: str) -> str:
  return num2words(n, lang=lang)


def day_text(d: int, lang: str) -> str:
  if lang == 'en':
    return num2words(d, lang='en', to='ordinal')
  if lang == 'de':
    return num2words(d, lang='de', to='ordinal')
  if lang == 'fr':
    return 'premier' if d == 1 else cardinal(d, 'fr')
  return cardinal(d, lang) + ('日' if lang == 'ja' else '')


# --- value lexicons: which number a piece stands for (the key of the alignment within a number)
@functools.cache
def values(lang: str) -> dict[str, int]:
  """Piece text (stripped) -> the value it names, for the atoms of `lang`'s number words."""
  if lang == 'ja':
    return dict(_JA_VALUES)
  out = {}
  for v in _ATOMS:
    word = cardinal(v, lang)
    if ' ' not in word and '-' not in word:
      out[word] = v
  if lang in ('en', 'de'):
    for d in range(1, 32):
      word = num2words(d, lang=lang, to='ordinal')
      if ' ' not in word and '-' not in word and (lang == 'en' or d < 20):
        out[word] = d
  extra = {
      'en': {'hundred': 100, 'thousand': 1000, 'million': 10**6, 'billion': 10**9},
      'de': {'ein': 1, 'eine': 1, 'eins': 1, 'hundert': 100, 'tausend': 1000, 'Million': 10**6,
             'Millionen': 10**6, 'Milliarde': 10**9, 'Milliarden': 10**9, 'Billion': 10**12},
      'fr': {'un': 1, 'une': 1, 'premier': 1, 'cent': 100, 'cents': 100, 'vingts': 20, 'mille': 1000,
             'million': 10**6, 'millions': 10**6, 'milliard': 10**9, 'milliards': 10**9},
      'tr': {'yüz': 100, 'bin': 1000, 'milyon': 10**6, 'milyar': 10**9},
  }[lang]
  out.update(extra)
  return out


@functools.cache
def _morphemes(lang: str) -> tuple[str, ...]:
  words = set(values(lang))
  if lang == 'de':
    words |= {'und', 'ste', 'te'}
  if lang == 'fr':
    words |= {'et'}
  if lang != 'ja':
    words |= set(MONTHS[lang]) | set(_ARTICLE.values()) & ({_ARTICLE[lang]} if lang in _ARTICLE else set())
  words |= {w for pair in UNITS[lang] for w in pair}
  if lang == 'ja':
    words |= {'年', '月', '日'}
  return tuple(sorted(words))


@functools.cache
def source_pieces() -> tuple[str, ...]:
  words = set(values('en')) | {'and'} | set(MONTHS['en']) | {w for pair in UNITS['en'] for w in pair}
  for d in range(1, 32):  # ordinals such as 'twenty-first' split at the hyphen
    words.update(w.strip() for w in _EN_WORD.findall(num2words(d, lang='en', to='ordinal')) if w.strip() not in '-,')
  pieces = {' ' + w for w in words} | words | {'-', ',', ';'} | {tag(lang) for lang in LANGUAGES}
  letters = {c for p in pieces for c in p if not p.startswith('<')} | {' '}
  return tuple(sorted(pieces) + sorted(letters - pieces))


@functools.cache
def target_pieces() -> tuple[str, ...]:
  pieces = set()
  for lang in LANGUAGES:
    for w in _morphemes(lang):
      pieces.add(w)
      if lang != 'ja':
        pieces.add(' ' + w)
  pieces |= {JOINER[lang] for lang in LANGUAGES}
  letters = {c for p in pieces for c in p} | {' ', '-'}
  # Letters of number words that are not atoms themselves (German 'siebte', French 'quatre-vingts').
  for lang in LANGUAGES[:-1]:
    for v in list(range(100)) + [200, 2000, 10**6, 2 * 10**6, 10**9, 2 * 10**9]:
      letters.update(cardinal(v, lang))
  return tuple(sorted(pieces) + sorted(letters - pieces))


# --- phrases as segments
@dataclasses.dataclass(frozen=True)
class Segment:
  """One unit of a phrase: its English text, its text per language, and how its pieces align."""
  source: str
  targets: dict
  kind: str  # 'number': by value; 'word': every target piece to every source piece; 'none': no link


def _number(n: int) -> Segment:
  return Segment(cardinal(n, 'en'), {lang: cardinal(n, lang) for lang in LANGUAGES}, 'number')


def phrase_segments(kind: str, gen: np.random.Generator, max_digits: int) -> tuple[list[Segment], dict]:
  """([Segment, ...] in English order, {lang: the order of their indices in that language})."""
  if kind == 'number':
    return [_number(_draw_number(gen, max_digits))], {}
  if kind == 'amount':
    n, u = _draw_number(gen, max_digits), int(gen.integers(len(UNITS['en'])))
    unit = Segment(UNITS['en'][u][n != 1], {lang: UNITS[lang][u][n > 1 if lang == 'fr' else n != 1]
                                            for lang in LANGUAGES}, 'word')
    return [_number(n), unit], {}
  m, d, y = int(gen.integers(12)), int(gen.integers(1, 29)), int(gen.integers(1000, 3000))
  parts = {'m': Segment(MONTHS['en'][m], {**{lang: MONTHS[lang][m] for lang in LANGUAGES[:-1]},
                                           'ja': cardinal(m + 1, 'ja') + '月'}, 'word'),
           'd': Segment(day_text(d, 'en'), {lang: day_text(d, lang) for lang in LANGUAGES}, 'number'),
           'y': Segment(cardinal(y, 'en'), {**{lang: cardinal(y, lang) for lang in LANGUAGES[:-1]},
                                             'ja': cardinal(y, 'ja') + '年'}, 'number')}
  segments = [parts[c] for c in _DATE_ORDER['en']]
  index = {c: _DATE_ORDER['en'].index(c) for c in 'mdy'}
  return segments, {lang: [index[c] for c in _DATE_ORDER[lang]] for lang in LANGUAGES}


def _draw_number(gen, max_digits: int) -> int:
  digits = int(gen.integers(1, max_digits + 1))
  low = 0 if digits == 1 else 10**(digits - 1)
  return int(gen.integers(low, 10**digits))


# --- texts, pieces and alignment
def _encode(tok: PieceTokenizer, text: str, what: str) -> list[int]:
  ids = tok.encode(text)
  if UNK_ID in ids:
    raise ValueError(f'{what} {text!r} has characters outside the vocabulary.')
  return ids


def _value_tags(lang: str, pieces: list[str]) -> tuple[list[int | None], set[int]]:
  """(value per piece, the pieces that share the link of the piece before them)."""
  tags, follow = [values(lang).get(p) for p in pieces], set()
  if lang == 'ja':  # '六十' is sixty: a digit before 十 names the tens with it
    for i in range(len(tags) - 1):
      if tags[i] is not None and 1 <= tags[i] <= 9 and pieces[i + 1] == '十':
        tags[i], tags[i + 1] = tags[i] * 10, None
        follow.add(i + 1)
  return tags, follow


def _number_links(src_ids, tgt_ids, src_tok, tgt_tok, lang) -> list[tuple[int, int]]:
  """Links (target offset, source offset) inside one number segment: same value, same occurrence; a piece
  without a match links to the source words between its matched neighbours' links."""
  src_pieces = [src_tok.id_to_token(t).strip() for t in src_ids]
  tgt_pieces = [tgt_tok.id_to_token(t).strip() for t in tgt_ids]
  words = [i for i, p in enumerate(src_pieces) if p not in ('', '-', ',', 'and')]
  src_values: dict[int, list[int]] = {}
  for i, v in enumerate(_value_tags('en', src_pieces)[0]):
    if v is not None:
      src_values.setdefault(v, []).append(i)
  seen: dict[int, int] = {}
  matched: dict[int, int] = {}
  tags, follow = _value_tags(lang, tgt_pieces)
  for j, v in enumerate(tags):
    if j in follow and j - 1 in matched:
      matched[j] = matched[j - 1]
    if v is None:
      continue
    k = seen.get(v, 0)
    seen[v] = k + 1
    if k < len(src_values.get(v, ())):
      matched[j] = src_values[v][k]
  links = list(matched.items())
  for j, p in enumerate(tgt_pieces):
    if j in matched or p in ('', '-', ',', *_ARTICLE.values()):
      continue
    left = [matched[i] for i in matched if i < j]
    right = [matched[i] for i in matched if i > j]
    lo = left[-1] if left else -1
    hi = right[0] if right else len(src_pieces)
    lo, hi = min(lo, hi), max(lo, hi)
    between = [i for i in words if lo < i < hi] or [i for i in words if lo <= i <= hi] or words
    links.extend((j, i) for i in between)
  return links


def render(phrases: list[tuple[list[Segment], dict]], lang: str, src_tok, tgt_tok) -> dict:
  """{'source', 'target', 'alignment'} of phrases translated into lang (see the module docstring)."""
  src_ids = _encode(src_tok, tag(lang), 'source')
  src_spans = []  # per phrase, per segment: (start, ids)
  for p, (segments, _) in enumerate(phrases):
    spans = []
    for s, seg in enumerate(segments):
      if p and s == 0:
        src_ids += _encode(src_tok, ';', 'source')
      ids = _encode(src_tok, ' ' + seg.source, 'source')
      spans.append((len(src_ids), ids))
      src_ids += ids
    src_spans.append(spans)
  tgt_ids, links = [], []
  space = '' if lang == 'ja' else ' '
  for p, (segments, orders) in enumerate(phrases):
    if p:
      joiner = _encode(tgt_tok, JOINER[lang], 'target')
      links += [(len(tgt_ids) + j, src_spans[p][0][0] - 1) for j in range(len(joiner))]
      tgt_ids += joiner
    order = orders.get(lang, range(len(segments)))
    if len(segments) == 3 and lang in _ARTICLE:  # a date's article
      tgt_ids += _encode(tgt_tok, (space if tgt_ids else '') + _ARTICLE[lang], 'target')
    for s in order:
      seg = segments[s]
      ids = _encode(tgt_tok, (space if tgt_ids else '') + seg.targets[lang], 'target')
      start, sids = src_spans[p][s]
      if seg.kind == 'number':
        part = _number_links(sids, ids, src_tok, tgt_tok, lang)
      else:
        words = [i for i, t in enumerate(sids) if src_tok.id_to_token(t).strip()]
        part = [(j, i) for j, t in enumerate(ids) if tgt_tok.id_to_token(t).strip() for i in words]
      links += [(len(tgt_ids) + j, start + i) for j, i in part]
      tgt_ids += ids
  source, target = src_tok.decode(src_ids), tgt_tok.decode(tgt_ids)
  if src_tok.encode(source) != src_ids or tgt_tok.encode(target) != tgt_ids:
    raise ValueError(f'pieces of {source!r} -> {target!r} differ from their segments\' pieces.')
  alignment = np.asarray(sorted(set(links)), np.int32).reshape(-1, 2)
  return {'source': source, 'target': target, 'language': lang, 'num_phrases': len(phrases),
          'alignment': alignment}


@dataclasses.dataclass(eq=False)
class NumberPhrasesConfig(_base.TaskConfig):
  num_test_long: int = 500
  max_phrases: int = 2  # train and validation
  max_test_phrases: int = 3  # test and test_long
  max_digits: int = 12
  languages: tuple = LANGUAGES


class NumberPhrases(_base.InMemoryBuilder):
  """English phrases of numbers, amounts and dates to German, French, Turkish or Japanese (num2words)."""

  BUILDER_CONFIGS = [
      NumberPhrasesConfig(name='default', num_train=20_000, num_validation=500, num_test=1000, num_test_long=300,
                          description='20k training pairs of 1-2 phrases; test up to 3 phrases.'),
      NumberPhrasesConfig(name='small', num_train=200, num_validation=20, num_test=40, num_test_long=10,
                          description='Tiny, for tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'source': tfds.features.Text(),
        'target': tfds.features.Text(),
        'language': tfds.features.Text(),
        'num_phrases': tfds.features.Scalar(np.int32),
        'alignment': tfds.features.Tensor(shape=(None, 2), dtype=np.int32),
    })

  def metadata(self):
    return {'source_tokenizer': PieceTokenizer(source_pieces()).to_json(),
            'target_tokenizer': PieceTokenizer(target_pieces()).to_json()}

  def make_splits(self):
    config = self.builder_config
    langs = tuple(config.languages)
    if not langs or set(langs) - set(LANGUAGES):
      raise ValueError(f'languages must be a non-empty subset of {LANGUAGES}; got {langs}.')
    if not 1 <= config.max_phrases <= config.max_test_phrases:
      raise ValueError(f'need 1 <= max_phrases <= max_test_phrases; got {config.max_phrases}, '
                       f'{config.max_test_phrases}.')
    if not 1 <= config.max_digits <= 12:
      raise ValueError(f'max_digits must be in [1, 12] (numbers below 10^12); got {config.max_digits}.')
    if config.num_test_long < 1:
      raise ValueError(f'test_long size must be >= 1, got {config.num_test_long}.')
    src_tok, tgt_tok = PieceTokenizer(source_pieces()), PieceTokenizer(target_pieces())
    gen = sampling.rng(config.seed, 'number_phrases')
    draws = sampling.UniqueDraws(max_attempts=10_000)

    def make(low, high):
      count = int(gen.integers(low, high + 1))
      phrases = [phrase_segments(KINDS[int(gen.integers(len(KINDS)))], gen, config.max_digits)
                 for _ in range(count)]
      return render(phrases, langs[int(gen.integers(len(langs)))], src_tok, tgt_tok)

    key = lambda ex: ex['source'].encode()
    sizes = config.sizes()
    out = {split: [draws.draw(lambda: make(1, config.max_phrases), key) for _ in range(sizes[split])]
           for split in ('train', 'validation')}
    out['test'] = [draws.draw(lambda: make(1, config.max_test_phrases), key) for _ in range(sizes['test'])]
    longest = max(len(src_tok.encode(ex['source'])) for ex in out['train'])

    def make_long():
      for _ in range(10_000):
        ex = make(min(config.max_phrases + 1, config.max_test_phrases), config.max_test_phrases)
        if len(src_tok.encode(ex['source'])) > longest:
          return ex
      raise ValueError(f'no source longer than the {longest} tokens of training in 10000 draws; raise '
                       'max_test_phrases.')

    out['test_long'] = [draws.draw(make_long, key) for _ in range(config.num_test_long)]
    return out


def make_task(builder, examples: dict[str, dict[str, list]]) -> Task:
  metadata = builder.info.metadata
  src, tgt = from_json(metadata['source_tokenizer']), from_json(metadata['target_tokenizer'])
  columns = {}
  for split, ex in examples.items():
    columns[split] = {
        'inputs': Ragged(encode_all(src, ex['source'], add_eos=True), dtype=np.int32),
        'targets': Ragged(encode_all(tgt, ex['target'], add_eos=True), dtype=np.int32),
        # Gold links flattened (t0, s0, t1, s1, ...), padded with -1: batches carry them for the objective's AER.
        'alignment': Ragged([np.asarray(a, np.int32).reshape(-1) for a in ex['alignment']], dtype=np.int32,
                            pad_value=-1),
    }
  lengths = pad_lengths(columns)
  train_longest = int(columns['train']['inputs'].lengths.max()) - 1  # without EOS
  info = {
      'input_vocab_size': src.vocab_size, 'target_vocab_size': tgt.vocab_size,
      'vocab_size': max(src.vocab_size, tgt.vocab_size),
      'pad_id': 0, 'bos_id': src.bos_id, 'eos_id': src.eos_id,
      'max_input_length': lengths['inputs'], 'max_target_length': lengths['targets'],
      'pad_lengths': lengths,
      'metrics': ('exact_match', 'bleu', 'chrf'),
      'bleu_units': 'pieces',
      # Evaluation also scores these source-length buckets (tokens without EOS); the training sources end at
      # train_source_length.
      'length_buckets': length_buckets(lengths['inputs'] - 1),
      'train_source_length': train_longest,
  }
  return Task(name='number_phrases', kind='seq2seq', info=info,
              tokenizers={'inputs': src, 'targets': tgt}, columns=columns,
              length_key='inputs', main_tokenizer_key='targets')


def length_buckets(longest: int, width: int = 10) -> tuple[int, ...]:
  """Upper bounds of source-length buckets of `width` tokens, up to the longest source."""
  return tuple(range(width, longest + width, width))
