"""entities: named-entity recognition on sentences from varied templates, BIO-tagged.

Person, organisation, location and date entities are real-looking names drawn with `faker` in several
locales (Faker.seed_instance makes them a function of the seed). Some words are entities of either type out of
context: first names that are also cities ("Florence", "Austin", "Jackson") and surnames used as place names
fill both person and location slots, so only the sentence decides the tag.

Splits: train / validation / test draw names from the in-distribution pools; `test_ood` draws every name from
other locales (names unseen in training, most of them outside the vocabulary) and joins two or three clauses
into longer sentences than any seen in training.

Targets: 0 pads, then 1 + the index of the tag in TAGS. The saved vocabulary holds the template words, dates and
the words of the in-distribution names; make_task reads every word that the train split lacks as <unk> (an
embedding that training never updates is noise), so unseen names, and all names of `test_ood`, must be tagged
from their context.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import tensorflow_datasets as tfds
from faker import Faker

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import SPECIALS, WordTokenizer, encode_all, from_json

TYPES = ('PER', 'ORG', 'LOC', 'DATE')
TAGS = ('O',) + tuple(f'{p}-{t}' for t in TYPES for p in 'BI')
SPLITS = sampling.SPLITS + ('test_ood',)
LOCALES = ('en_US', 'en_GB', 'de_DE', 'fr_FR', 'es_ES')
OOD_LOCALES = ('it_IT', 'nl_NL', 'pl_PL', 'sv_SE', 'pt_BR')
# Real first names that are also real cities: a person in one sentence, a place in the next.
AMBIGUOUS = ('Florence', 'Austin', 'Jackson', 'Charlotte', 'Lincoln', 'Madison', 'Savannah', 'Victoria', 'Regina',
             'Chester', 'Orlando', 'Eugene', 'Marion', 'Troy', 'Sydney', 'Paris', 'Georgia', 'Jordan')
OOD_AMBIGUOUS = ('Adelaide', 'Denver', 'Houston', 'Lourdes', 'Valencia', 'Beverly', 'Kingston', 'Preston')

# Slots: {PER} {ORG} {LOC} {DATE}; every other word is outside any entity.
TEMPLATES = (
    '{PER} joined {ORG} in {LOC} on {DATE} .',
    'On {DATE} , {PER} flew from {LOC} to {LOC} .',
    '{ORG} opened an office in {LOC} .',
    '{PER} met {PER} at the headquarters of {ORG} .',
    'The mayor of {LOC} , {PER} , spoke on {DATE} .',
    '{PER} was born in {LOC} on {DATE} .',
    'Shares of {ORG} fell after {PER} resigned .',
    'According to {PER} , {ORG} will move to {LOC} .',
    '{PER} visited {LOC} .',
    '{PER} said the talks in {LOC} ended on {DATE} .',
    'Reporters in {LOC} asked {PER} about {ORG} .',
    '{PER} , who works for {ORG} , lives in {LOC} .',
    '{PER} and {PER} founded {ORG} on {DATE} .',
    'Flights to {LOC} resumed on {DATE} .',
    '{PER} spoke with {PER} .',
    '{ORG} hired {PER} as chief executive .',
    'The contract between {ORG} and {ORG} was signed in {LOC} .',
    'Heavy rain closed the roads near {LOC} on {DATE} .',
    'In {LOC} , {PER} thanked {PER} .',
    '{PER} leaves {LOC} for {LOC} on {DATE} .',
    'Police in {LOC} questioned {PER} .',
    '{ORG} reported record profits on {DATE} .',
)
CONNECTIVES = (', and', ', while', '; meanwhile ,', ', but', ', after which')
_TOKEN = re.compile(r"\w+(?:[.'&-]\w+)*|[^\w\s]")
_MONTHS = ('January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October',
           'November', 'December')
_WEEKDAYS = ('Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday')


def tokenize(text: str) -> list[str]:
  return _TOKEN.findall(text)


@dataclasses.dataclass(eq=False)
class EntitiesConfig(_base.TaskConfig):
  num_test_ood: int = 100
  pool_size: int = 300          # names of each kind per locale
  ambiguous_rate: float = 0.25  # chance that a person or location slot takes an ambiguous name
  ood_clauses: tuple = (2, 3)   # clauses joined into one test_ood sentence


class _Pools:
  """Entity surface forms of one distribution (a set of locales), drawn once from faker."""

  def __init__(self, locales, ambiguous, seed: int, size: int):
    first, last, cities, companies = [], [], [], []
    for i, locale in enumerate(locales):
      fake = Faker(locale)
      fake.seed_instance(int(sampling.rng(seed, 'entities', locale).integers(2**31)) + i)
      first += [fake.first_name() for _ in range(size)]
      last += [fake.last_name() for _ in range(size)]
      cities += [fake.city() for _ in range(size)]
      companies += [fake.company() for _ in range(size)]
    unique = lambda xs: sorted(set(xs))
    self.first, self.last, self.cities, self.companies = map(unique, (first, last, cities, companies))
    self.ambiguous = tuple(ambiguous)

  def words(self) -> set[str]:
    out = set()
    for name in self.first + self.last + self.cities + self.companies + list(self.ambiguous):
      out.update(tokenize(name))
    return out

  def without(self, words: set[str]) -> '_Pools':
    """The names none of whose words occur in `words`: unseen names for the OOD split."""
    keep = lambda xs: [x for x in xs if not set(tokenize(x)) & words]
    self.first, self.last, self.cities, self.companies = map(keep, (self.first, self.last, self.cities,
                                                                   self.companies))
    return self


def _pick(gen, xs):
  return xs[int(gen.integers(len(xs)))]


def _entity(gen, kind: str, pools: _Pools, ambiguous_rate: float) -> str:
  if kind == 'PER':
    first = _pick(gen, pools.ambiguous) if gen.random() < ambiguous_rate else _pick(gen, pools.first)
    form = gen.integers(3)
    return first if form == 0 else _pick(gen, pools.last) if form == 1 else f'{first} {_pick(gen, pools.last)}'
  if kind == 'LOC':
    r = gen.random()
    if r < ambiguous_rate:
      return _pick(gen, pools.ambiguous)
    if r < ambiguous_rate + 0.1:  # a surname as a place name: Lemaire, Jackson
      return _pick(gen, pools.last)
    return _pick(gen, pools.cities)
  if kind == 'ORG':
    return _pick(gen, pools.companies)
  day, month, year = int(gen.integers(1, 29)), _pick(gen, _MONTHS), int(gen.integers(1950, 2030))
  form = gen.integers(4)
  if form == 0:
    return f'{day} {month} {year}'
  if form == 1:
    return f'{month} {day} , {year}'
  if form == 2:
    return f'{day:02d}/{_MONTHS.index(month) + 1:02d}/{year}'
  return _pick(gen, _WEEKDAYS)


def _clause(gen, pools: _Pools, ambiguous_rate: float) -> tuple[list[str], list[str]]:
  tokens, tags = [], []
  for part in re.split(r'(\{[A-Z]+\})', _pick(gen, TEMPLATES)):
    if part.startswith('{'):
      kind = part[1:-1]
      words = tokenize(_entity(gen, kind, pools, ambiguous_rate))
      tokens += words
      tags += [f'B-{kind}'] + [f'I-{kind}'] * (len(words) - 1)
    else:
      words = tokenize(part)
      tokens += words
      tags += ['O'] * len(words)
  return tokens, tags


def make_sentence(gen, pools: _Pools, ambiguous_rate: float, clauses: int = 1) -> tuple[list[str], list[str]]:
  """Tokens and BIO tags of one sentence of `clauses` template clauses."""
  tokens, tags = _clause(gen, pools, ambiguous_rate)
  for _ in range(clauses - 1):
    if tokens[-1] == '.':
      tokens, tags = tokens[:-1], tags[:-1]
    joint = tokenize(_pick(gen, CONNECTIVES))
    more, more_tags = _clause(gen, pools, ambiguous_rate)
    more[0] = more[0][0].lower() + more[0][1:] if more_tags[0] == 'O' else more[0]
    tokens, tags = tokens + joint + more, tags + ['O'] * len(joint) + more_tags
  return tokens, tags


class Entities(_base.InMemoryBuilder):
  """Named entities (PER, ORG, LOC, DATE) in templated sentences, BIO tags, with an OOD test split."""

  BUILDER_CONFIGS = [
      EntitiesConfig(name='default', num_train=4000, num_validation=400, num_test=400, num_test_ood=400,
                     description='4000 training sentences; names from 5 locales, OOD names from 5 others.'),
      EntitiesConfig(name='small', num_train=200, num_validation=40, num_test=40, num_test_ood=40, pool_size=40,
                     description='Tiny, for tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'text': tfds.features.Text(),  # tokens joined by single spaces
        'tags': tfds.features.Tensor(shape=(None,), dtype=np.int32),  # index into TAGS
    })

  def make_splits(self):
    c = self.builder_config
    if not 0 <= c.ambiguous_rate <= 0.5:
      raise ValueError(f'ambiguous_rate must be in [0, 0.5], got {c.ambiguous_rate}.')
    if len(c.ood_clauses) != 2 or not 1 <= c.ood_clauses[0] <= c.ood_clauses[1]:
      raise ValueError(f'ood_clauses must be (low, high) with 1 <= low <= high, got {c.ood_clauses}.')
    sizes = {**c.sizes(), 'test_ood': c.num_test_ood}
    if sizes['test_ood'] < 1:
      raise ValueError(f'test_ood size must be >= 1, got {sizes["test_ood"]}.')
    pools, ood = self._pools()
    draws = sampling.UniqueDraws()
    out = {}
    for split in SPLITS:
      gen = sampling.rng(c.seed, 'entities', split)
      if split == 'test_ood':
        def make(gen=gen):
          return make_sentence(gen, ood, c.ambiguous_rate, int(gen.integers(c.ood_clauses[0], c.ood_clauses[1] + 1)))
      else:
        def make(gen=gen):
          return make_sentence(gen, pools, c.ambiguous_rate)
      examples = [draws.draw(make, lambda ex: ' '.join(ex[0])) for _ in range(sizes[split])]
      out[split] = [{'text': ' '.join(t), 'tags': np.asarray([TAGS.index(g) for g in tags], np.int32)}
                    for t, tags in examples]
    return out

  def _pools(self) -> tuple[_Pools, _Pools]:
    if not hasattr(self, '_pool_cache'):
      c = self.builder_config
      pools = _Pools(LOCALES, AMBIGUOUS, c.seed, c.pool_size)
      self._pool_cache = pools, _Pools(OOD_LOCALES, OOD_AMBIGUOUS, c.seed, c.pool_size).without(pools.words()
                                                                                             | fixed_words())
    return self._pool_cache

  def metadata(self):
    words = self._pools()[0].words() | fixed_words()
    return {'tokenizer': WordTokenizer(sorted(words)).to_json(), 'tags': list(TAGS)}


def fixed_words() -> set[str]:
  """Every word of the sentences that is not part of a name: templates, connectives and dates."""
  words = {w for t in TEMPLATES + CONNECTIVES for w in tokenize(re.sub(r'\{[A-Z]+\}', ' ', t))}
  words |= set(_MONTHS) | set(_WEEKDAYS) | {'/', ','}
  words |= {str(d) for d in range(1, 32)} | {f'{d:02d}' for d in range(1, 32)} | {str(y) for y in range(1950, 2030)}
  words |= {w[0].upper() + w[1:] for w in list(words) if w.isalpha()} | {w.lower() for w in list(words)}
  return words


def make_task(builder, examples) -> Task:
  tokenizer = from_json(builder.info.metadata['tokenizer'])
  ids = {split: encode_all(tokenizer, ex['text']) for split, ex in examples.items()}
  seen = np.zeros(tokenizer.vocab_size, bool)
  seen[np.concatenate(ids['train'])] = True
  seen[:len(SPECIALS)] = True
  ids = {split: [np.where(seen[x], x, tokenizer.unk_id).astype(np.int32) for x in rows] for split, rows in ids.items()}
  columns = {split: {'inputs': Ragged(ids[split], dtype=np.int32),
                     'targets': Ragged([np.asarray(t, np.int32) + 1 for t in ex['tags']], dtype=np.int32)}
             for split, ex in examples.items()}
  lengths = pad_lengths(columns)
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'unk_id': tokenizer.unk_id, 'num_classes': len(TAGS) + 1, 'tags': list(TAGS), 'max_length': lengths['inputs'],
          'pad_lengths': lengths, 'ood_split': 'test_ood', 'metrics': ('f1',)}
  return Task(name='entities', kind='token_classification', info=info, tokenizers={'inputs': tokenizer},
              columns=columns, length_key='inputs')
