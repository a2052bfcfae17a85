"""span_qa: extractive question answering in the style of SQuAD (Rajpurkar et al. 2016) on generated passages.

A passage is a few short biographies, one block of sentences per person:
  "anna weber was born in leipzig in 1984 . she works for the harbour bank as a pilot . she lives in porto ."
Each question's answer is a span of the passage (token indices, inclusive):
  where_born "where was anna weber born ?" -> "leipzig"     when_born  "when was anna weber born ?" -> "1984"
  employer   "who does anna weber work for ?" -> "the harbour bank"    job "what does anna weber do ?" -> "pilot"
  residence  "where does anna weber live ?" -> "porto"       worker "who works for the harbour bank ?" -> "anna weber"
Distractors make the question's person matter: two people born in the same year or the same city, employers that
share a word ("the harbour bank", "the harbour hotel", "the river bank"), birth and move years side by side,
and later sentences that name their person by pronoun ("she", "he") only.

Splits: train / validation / test have 2-4 people and 0-1 filler sentence per person; `test_ood` has 5-6 people,
1-2 fillers each, and names (first and last) never seen in training. All words, unseen names included, are in the
saved vocabulary: an unseen name keeps its own (untrained) embedding, so answering means matching the question's
name to the passage's by identity, not recalling the name.

Model input (make_task): `[cls] question [sep] passage` as one id row; 'offset' is the passage's first position
in it, and 'start' / 'end' index that row.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Dense, Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import WordTokenizer, from_json

SPLITS = sampling.SPLITS + ('test_ood',)
QUESTION_TYPES = ('where_born', 'when_born', 'employer', 'job', 'residence', 'worker')
FEMALE = ('anna', 'maria', 'clara', 'julia', 'emma', 'sofia', 'lena', 'laura', 'nina', 'eva', 'rosa', 'ines',
          'mila', 'hanna', 'olga', 'petra', 'vera', 'alice', 'irene', 'lucy')
MALE = ('tom', 'jonas', 'paul', 'felix', 'max', 'leon', 'david', 'omar', 'ivan', 'hugo', 'marco', 'pablo', 'karl',
        'otto', 'samuel', 'victor', 'adam', 'erik', 'luca', 'noah')
SURNAMES = ('weber', 'ruiz', 'novak', 'berg', 'costa', 'fischer', 'lang', 'moreau', 'silva', 'kowalski', 'jensen',
            'rossi', 'meyer', 'dubois', 'horvat', 'nagy', 'petrov', 'olsen', 'garcia', 'keller', 'brandt', 'vogel',
            'ferreira', 'lindqvist')
OOD_FEMALE = ('greta', 'yara', 'zoe', 'freya', 'ada', 'amara', 'leila', 'noor', 'kaja', 'tilda')
OOD_MALE = ('bruno', 'emil', 'kofi', 'rafael', 'tariq', 'sven', 'arjun', 'milan', 'teo', 'yusuf')
OOD_SURNAMES = ('okafor', 'tanaka', 'haddad', 'virtanen', 'castillo', 'yilmaz', 'nakamura', 'achebe', 'duarte',
                'sorensen', 'mendez', 'kovacs', 'ibrahim', 'larsen')
CITIES = ('leipzig', 'porto', 'lyon', 'krakow', 'bergen', 'turin', 'ghent', 'malaga', 'graz', 'brno', 'tampere',
          'aarhus', 'bilbao', 'zadar', 'leeds', 'cork', 'basel', 'riga', 'seville', 'utrecht')
FIRMS = ('harbour', 'river', 'north', 'golden', 'city', 'union', 'royal', 'pine', 'silver', 'east')
TRADES = ('bank', 'hotel', 'bakery', 'museum', 'hospital', 'library', 'garage', 'theatre', 'school', 'brewery')
JOBS = ('pilot', 'nurse', 'teacher', 'baker', 'lawyer', 'cook', 'driver', 'painter', 'clerk', 'engineer', 'doctor',
        'waiter', 'tailor', 'guard', 'chemist', 'bus driver', 'head cook', 'night nurse')
YEARS = tuple(str(y) for y in range(1950, 2000))
FILLERS = ('{ref} enjoys long walks .', '{ref} has two brothers .', '{ref} speaks three languages .',
           '{ref} plays the piano .', '{ref} owns an old car .', '{ref} reads every evening .')
WORDS = ('was born in works for as a an lives moved to . ? where when who does work do what live the '
         'enjoys long walks has two brothers speaks three languages plays piano owns old car reads every evening '
         'she he [cls] [sep]')


def vocabulary() -> list[str]:
  words = set(WORDS.split())
  for group in (FEMALE, MALE, SURNAMES, OOD_FEMALE, OOD_MALE, OOD_SURNAMES, CITIES, FIRMS, TRADES, JOBS, YEARS):
    for phrase in group:
      words.update(phrase.split())
  return sorted(words)


def _pick(gen, xs):
  return xs[int(gen.integers(len(xs)))]


def _article(job: str) -> str:
  return 'an' if job[0] in 'aeiou' else 'a'


def _people(gen, n: int, ood: bool) -> list[dict]:
  """n people with distinct full names and facts, with shared values planted as distractors."""
  female, male, last = (OOD_FEMALE, OOD_MALE, OOD_SURNAMES) if ood else (FEMALE, MALE, SURNAMES)
  names, people = set(), []
  firms = list(gen.permutation(len(FIRMS)))
  trades = list(gen.permutation(len(TRADES)))
  while len(people) < n:
    is_female = bool(gen.random() < 0.5)
    name = f'{_pick(gen, female if is_female else male)} {_pick(gen, last)}'
    if name in names:
      continue
    names.add(name)
    k = len(people)
    company = f'the {FIRMS[firms[k]]} {TRADES[trades[k]]}'
    if k and gen.random() < 0.6:  # an employer that shares a word with an earlier one
      other = people[int(gen.integers(k))]['company'].split()
      company = (f'the {other[1]} {TRADES[trades[k]]}' if gen.random() < 0.5
                 else f'the {FIRMS[firms[k]]} {other[2]}')
    person = {'name': name, 'pronoun': 'she' if is_female else 'he', 'city': _pick(gen, CITIES),
              'year': _pick(gen, YEARS), 'company': company, 'job': _pick(gen, JOBS),
              'home': _pick(gen, CITIES), 'moved': None}
    if k and gen.random() < 0.5:
      person['year'] = people[int(gen.integers(k))]['year']
    if k and gen.random() < 0.3:
      person['city'] = people[int(gen.integers(k))]['home']
    people.append(person)
  return people


def _block(gen, person: dict, fillers: tuple[int, int]) -> list[tuple[str, list[str]]]:
  """The sentences of one person: (kind, tokens); the first names the person, later ones may use the pronoun."""
  p = person
  intro = (f'{p["name"]} was born in {p["city"]} in {p["year"]} .' if gen.random() < 0.5
           else f'{p["name"]} was born in {p["year"]} in {p["city"]} .')
  ref = lambda: p['pronoun'] if gen.random() < 0.6 else p['name']
  job = f'{_article(p["job"])} {p["job"]}'
  work = (f'{ref()} works for {p["company"]} as {job} .' if gen.random() < 0.5
          else f'{ref()} works as {job} for {p["company"]} .')
  if gen.random() < 0.5:
    home = f'{ref()} lives in {p["home"]} .'
  else:
    p['moved'] = _pick(gen, YEARS)
    home = f'{ref()} moved to {p["home"]} in {p["moved"]} .'
  rest = [('work', work), ('home', home)]
  chosen = gen.permutation(len(FILLERS))[:int(gen.integers(fillers[0], fillers[1] + 1))]
  rest += [('filler', FILLERS[i].format(ref=ref())) for i in chosen]
  order = gen.permutation(len(rest))
  return [('intro', intro.split())] + [(rest[i][0], rest[i][1].split()) for i in order]


def _find(tokens: list[str], phrase: str, start: int = 0) -> int:
  words = phrase.split()
  for i in range(start, len(tokens) - len(words) + 1):
    if tokens[i:i + len(words)] == words:
      return i
  raise ValueError(f'{phrase!r} is not in {" ".join(tokens)!r}.')


def make_example(gen, num_people: tuple[int, int], fillers: tuple[int, int], ood: bool) -> dict:
  """One passage and question: {'passage', 'question', 'answer', 'answer_start', 'answer_end', 'question_type',
  'answer_sentence'}; start and end index the passage's tokens (inclusive)."""
  people = _people(gen, int(gen.integers(num_people[0], num_people[1] + 1)), ood)
  sentences = []  # (person index, kind, tokens)
  for k, person in enumerate(people):
    sentences += [(k, kind, tokens) for kind, tokens in _block(gen, person, fillers)]
  starts = np.cumsum([0] + [len(s[2]) for s in sentences])
  tokens = [w for s in sentences for w in s[2]]
  companies = [p['company'] for p in people]
  types = [t for t in QUESTION_TYPES if t != 'worker' or any(companies.count(c) == 1 for c in companies)]
  qtype = _pick(gen, types)
  k = int(gen.integers(len(people)))
  while qtype == 'worker' and companies.count(companies[k]) > 1:
    k = int(gen.integers(len(people)))
  p = people[k]
  kind, answer = {'where_born': ('intro', p['city']), 'when_born': ('intro', p['year']),
                  'employer': ('work', p['company']), 'job': ('work', p['job']), 'residence': ('home', p['home']),
                  'worker': ('work', p['name'])}[qtype]
  question = {'where_born': f'where was {p["name"]} born ?', 'when_born': f'when was {p["name"]} born ?',
              'employer': f'who does {p["name"]} work for ?', 'job': f'what does {p["name"]} do ?',
              'residence': f'where does {p["name"]} live ?', 'worker': f'who works for {p["company"]} ?'}[qtype]
  j = next(i for i, s in enumerate(sentences) if s[0] == k and s[1] == kind)
  if qtype == 'worker' and p['name'].split() != sentences[j][2][:2]:  # the work sentence says 'she': the intro
    j = next(i for i, s in enumerate(sentences) if s[0] == k and s[1] == 'intro')
  # Within its sentence an answer occurs once (a name holds no city, year or job), so the first match is it.
  start = _find(tokens, answer, int(starts[j]))
  end = start + len(answer.split()) - 1
  assert starts[j] <= start and end < starts[j + 1], (tokens, answer)
  return {'passage': ' '.join(tokens), 'question': question, 'answer': answer, 'answer_start': start,
          'answer_end': end, 'question_type': qtype, 'answer_sentence': j}


@dataclasses.dataclass(eq=False)
class SpanQaConfig(_base.TaskConfig):
  num_test_ood: int = 100
  people: tuple = (2, 4)       # people per passage (low, high), in-distribution splits
  ood_people: tuple = (5, 6)   # people per test_ood passage
  fillers: tuple = (0, 1)      # filler sentences per person (low, high)
  ood_fillers: tuple = (1, 2)


class SpanQa(_base.InMemoryBuilder):
  """Extractive span QA over generated biographies; SQuAD-style answers; unseen names in `test_ood`."""

  BUILDER_CONFIGS = [
      SpanQaConfig(name='default', num_train=8000, num_validation=400, num_test=400, num_test_ood=400,
                   description='8000 training questions, 2-4 people per passage.'),
      SpanQaConfig(name='small', num_train=200, num_validation=40, num_test=40, num_test_ood=40,
                   description='Tiny, for tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'passage': tfds.features.Text(),  # tokens joined by single spaces
        'question': tfds.features.Text(),
        'answer': tfds.features.Text(),
        'answer_start': tfds.features.Scalar(dtype=np.int32),  # passage token index, inclusive
        'answer_end': tfds.features.Scalar(dtype=np.int32),
        'question_type': tfds.features.Text(),  # one of QUESTION_TYPES
        'answer_sentence': tfds.features.Scalar(dtype=np.int32),  # index of the sentence that holds the answer
    })

  def metadata(self):
    return {'tokenizer': WordTokenizer(vocabulary()).to_json(), 'question_types': list(QUESTION_TYPES)}

  def make_splits(self):
    c = self.builder_config
    for name in ('people', 'ood_people', 'fillers', 'ood_fillers'):
      low, high = getattr(c, name)
      if not 0 <= low <= high or (name.endswith('people') and low < 1):
        raise ValueError(f'{name} must be (low, high) with {int(name.endswith("people"))} <= low <= high, '
                         f'got {getattr(c, name)}.')
    sizes = {**c.sizes(), 'test_ood': c.num_test_ood}
    if sizes['test_ood'] < 1:
      raise ValueError(f'test_ood size must be >= 1, got {sizes["test_ood"]}.')
    draws = sampling.UniqueDraws()  # one passage never serves two questions, within or across splits
    out = {}
    for split in SPLITS:
      gen = sampling.rng(c.seed, 'span_qa', split)
      ood = split == 'test_ood'
      people, fillers = (c.ood_people, c.ood_fillers) if ood else (c.people, c.fillers)
      make = lambda gen=gen, people=people, fillers=fillers, ood=ood: make_example(gen, people, fillers, ood)
      examples = [draws.draw(make, lambda ex: ex['passage']) for _ in range(sizes[split])]
      out[split] = [{**ex, **{k: np.int32(ex[k]) for k in ('answer_start', 'answer_end', 'answer_sentence')}}
                    for ex in examples]
    return out


def make_task(builder, examples) -> Task:
  """Columns: 'inputs' ([cls] question [sep] passage), 'offset' (the passage's first position), 'start' / 'end'
  (the answer in input positions), 'support' (1 on the answer's sentence), 'question_type' (index)."""
  meta = builder.info.metadata
  tokenizer = from_json(meta['tokenizer'])
  types = list(meta['question_types'])
  cls, sep, dot = tokenizer.encode('[cls] [sep] .')
  columns = {}
  for split, ex in examples.items():
    inputs, support, offsets = [], [], []
    for question, passage, sentence in zip(ex['question'], ex['passage'], ex['answer_sentence']):
      q_ids, p_ids = tokenizer.encode(question), np.asarray(tokenizer.encode(passage), np.int32)
      offset = len(q_ids) + 2
      row = np.concatenate([[cls], q_ids, [sep], p_ids]).astype(np.int32)
      sentence_of = np.concatenate([[0], np.cumsum(p_ids == dot)[:-1]])  # each passage token's sentence
      mark = np.zeros(len(row), np.int32)
      mark[offset:] = sentence_of == sentence
      inputs.append(row)
      support.append(mark)
      offsets.append(offset)
    offsets = np.asarray(offsets, np.int32)
    columns[split] = {'inputs': Ragged(inputs, dtype=np.int32), 'support': Ragged(support, dtype=np.int32),
                      'offset': Dense(offsets),
                      'start': Dense(np.asarray(ex['answer_start'], np.int32) + offsets),
                      'end': Dense(np.asarray(ex['answer_end'], np.int32) + offsets),
                      'question_type': Dense(np.asarray([types.index(t) for t in ex['question_type']], np.int32))}
  lengths = pad_lengths(columns)
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'num_classes': 2, 'max_length': lengths['inputs'],
          'pad_lengths': lengths, 'question_types': types, 'cls_id': cls, 'sep_id': sep, 'ood_split': 'test_ood',
          # template words and punctuation: never part of an answer (the window baseline's candidate filter)
          'function_ids': sorted(set(tokenizer.encode(WORDS)) - set(tokenizer.encode(' '.join(FIRMS + TRADES)))),
          'metrics': ('f1', 'exact_match')}
  return Task(name='span_qa', kind='span_qa', info=info, tokenizers={'inputs': tokenizer}, columns=columns,
              length_key='inputs')
