"""sentiment_reviews: generated product reviews whose label follows compositionally from the text.

A review opens with the product ("i bought this camera last week ."), then has opinion sentences about aspects
("the battery is very good .", "the screen is not sharp but the price is great .") and neutral distractor
sentences ("it came in a blue box ."). The label is computed clause by clause:
  - a clause scores the polarity of its adjective (+1 positive, -1 negative);
  - a negation ("not", "never") before the adjective flips it;
  - an intensifier ("very", "really", ...) doubles it (a clause has a negation or an intensifier, never both);
  - in "A but B" only the clause after "but" counts (B decides the sentence);
  - the review is positive when the sum of the counting clauses' scores is > 0, negative when < 0 (ties are
    never generated).
`sentiment` records the token positions (in the whitespace-split text) of the adjectives, negations and
intensifiers of the clauses that count: the tokens the label rests on. A bag of words sees "not" and the
adjectives but not which adjective "not" belongs to or which side of "but" a clause is on.

Splits: train / validation / test share the review lengths (1-3 opinion sentences, 0-2 distractors) and the
product nouns; `test_ood` has longer reviews (3-6 opinion sentences, 2-4 distractors) about product nouns that
no other split uses.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Dense, Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import SPECIALS, WordTokenizer, encode_all, from_json

SPLITS = sampling.SPLITS + ('test_ood',)
LABELS = ('negative', 'positive')
PRODUCTS = ('phone', 'laptop', 'camera', 'tablet', 'speaker', 'printer', 'monitor', 'router', 'blender', 'kettle')
OOD_PRODUCTS = ('drone', 'scanner', 'toaster', 'projector', 'headset')
ASPECTS = ('battery', 'screen', 'price', 'design', 'sound', 'keyboard', 'service', 'delivery', 'software', 'case')
POSITIVE = ('good', 'great', 'excellent', 'superb', 'reliable', 'solid', 'fast', 'sharp')
NEGATIVE = ('bad', 'poor', 'awful', 'terrible', 'flimsy', 'slow', 'weak', 'dull')
NEGATIONS = ('not', 'never')
INTENSIFIERS = ('very', 'really', 'extremely', 'truly')
TIMES = ('last week', 'yesterday', 'a month ago', 'for my brother', 'on sale', 'online')
DISTRACTORS = ('it came in a {colour} box .', 'my {person} has one too .', 'i use it every {when} .',
               'the {aspect} comes in {colour} .', 'i read about the {aspect} before buying .',
               'the shop was {place} .')
FILLERS = {'colour': ('blue', 'red', 'black', 'white', 'grey'), 'person': ('sister', 'friend', 'father', 'neighbour'),
           'when': ('day', 'morning', 'evening', 'weekend'), 'place': ('downtown', 'nearby', 'busy', 'quiet')}


def vocabulary() -> list[str]:
  words = set(PRODUCTS + OOD_PRODUCTS + ASPECTS + POSITIVE + NEGATIVE + NEGATIONS + INTENSIFIERS)
  for phrase in TIMES + DISTRACTORS:
    words.update(w for w in phrase.split() if not w.startswith('{'))
  for fill in FILLERS.values():
    words.update(fill)
  words.update('i bought this the is but .'.split())
  return sorted(words)


def _pick(gen, xs):
  return xs[int(gen.integers(len(xs)))]


def _clause(gen, polarity: int | None = None) -> tuple[list[str], int, list[int]]:
  """'the <aspect> is [not|very] <adj>' -> (words, score, offsets of the sentiment-bearing words)."""
  words = ['the', _pick(gen, ASPECTS), 'is']
  marks = []
  r = gen.random()
  negated, intensified = r < 0.35, 0.35 <= r < 0.6
  if negated:
    marks.append(len(words))
    words.append(_pick(gen, NEGATIONS))
  elif intensified:
    marks.append(len(words))
    words.append(_pick(gen, INTENSIFIERS))
  if polarity is None:
    polarity = 1 if gen.random() < 0.5 else -1
  # polarity is the clause's meaning; the adjective carries it, or its opposite under a negation.
  positive_word = (polarity > 0) != negated
  marks.append(len(words))
  words.append(_pick(gen, POSITIVE if positive_word else NEGATIVE))
  return words, polarity * (2 if intensified else 1), marks


def _opinion(gen) -> tuple[list[str], int, list[int]]:
  """One opinion sentence: a clause, or 'A but B' where B decides (B's polarity mostly opposes A's)."""
  if gen.random() < 0.45:
    first, s1, _ = _clause(gen)
    second, s2, marks = _clause(gen, -int(np.sign(s1)) if gen.random() < 0.8 else None)
    offset = len(first) + 1
    return first + ['but'] + second + ['.'], s2, [offset + m for m in marks]
  words, score, marks = _clause(gen)
  return words + ['.'], score, marks


def _distractor(gen) -> list[str]:
  text = _pick(gen, DISTRACTORS)
  fills = {k: _pick(gen, v) for k, v in FILLERS.items()}
  return text.format(aspect=_pick(gen, ASPECTS), **fills).split()


def make_review(gen, products, opinions: tuple[int, int], distractors: tuple[int, int],
                max_attempts: int = 100) -> dict:
  """{'text': words joined by spaces, 'label': 0 negative | 1 positive, 'sentiment': [token position, ...]}."""
  for _ in range(max_attempts):
    n_op = int(gen.integers(opinions[0], opinions[1] + 1))
    n_di = int(gen.integers(distractors[0], distractors[1] + 1))
    kinds = gen.permutation(['o'] * n_op + ['d'] * n_di)
    words = ['i', 'bought', 'this', _pick(gen, products)] + _pick(gen, TIMES).split() + ['.']
    total, marks = 0, []
    for kind in kinds:
      if kind == 'o':
        sentence, score, offsets = _opinion(gen)
        total += score
        marks += [len(words) + m for m in offsets]
      else:
        sentence = _distractor(gen)
      words += sentence
    if total != 0:
      return {'text': ' '.join(words), 'label': int(total > 0), 'sentiment': marks}
  raise ValueError(f'no review without a tie after {max_attempts} attempts; opinions={opinions}.')


@dataclasses.dataclass(eq=False)
class SentimentReviewsConfig(_base.TaskConfig):
  num_test_ood: int = 100
  opinions: tuple[int, int] = (1, 3)
  distractors: tuple[int, int] = (0, 2)
  ood_opinions: tuple[int, int] = (3, 6)
  ood_distractors: tuple[int, int] = (2, 4)


def _check_range(name, value, low):
  if len(value) != 2 or not low <= value[0] <= value[1]:
    raise ValueError(f'{name} must be (low, high) with {low} <= low <= high, got {value}.')


class SentimentReviews(_base.InMemoryBuilder):
  """Compositional review sentiment (negation, contrast, intensifiers, several aspects) with marked evidence."""

  BUILDER_CONFIGS = [
      SentimentReviewsConfig(name='default', num_train=4000, num_validation=400, num_test=400, num_test_ood=400,
                             description='4000 training reviews.'),
      SentimentReviewsConfig(name='small', num_train=200, num_validation=40, num_test=40, num_test_ood=40,
                             description='Tiny, for tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'text': tfds.features.Text(),  # words joined by single spaces
        'label': tfds.features.ClassLabel(names=list(LABELS)),
        'sentiment': tfds.features.Tensor(shape=(None,), dtype=np.int32),  # positions of the deciding words
    })

  def metadata(self):
    return {'tokenizer': WordTokenizer(vocabulary()).to_json(), 'labels': list(LABELS)}

  def make_splits(self):
    c = self.builder_config
    for name, low in (('opinions', 1), ('distractors', 0), ('ood_opinions', 1), ('ood_distractors', 0)):
      _check_range(name, getattr(c, name), low)
    sizes = {**c.sizes(), 'test_ood': c.num_test_ood}
    if sizes['test_ood'] < 1:
      raise ValueError(f'test_ood size must be >= 1, got {sizes["test_ood"]}.')
    draws = sampling.UniqueDraws()
    out = {}
    for split in SPLITS:
      gen = sampling.rng(c.seed, 'sentiment_reviews', split)
      ood = split == 'test_ood'
      args = (OOD_PRODUCTS, c.ood_opinions, c.ood_distractors) if ood else (PRODUCTS, c.opinions, c.distractors)
      reviews = [draws.draw(lambda: make_review(gen, *args), lambda r: r['text']) for _ in range(sizes[split])]
      out[split] = [{'text': r['text'], 'label': r['label'], 'sentiment': np.asarray(r['sentiment'], np.int32)}
                    for r in reviews]
    return out


def make_task(builder, examples) -> Task:
  tokenizer = from_json(builder.info.metadata['tokenizer'])
  ids = {split: encode_all(tokenizer, ex['text']) for split, ex in examples.items()}
  # Words no training review has (the OOD product nouns) read as <unk>: their embeddings were never trained.
  seen = np.zeros(tokenizer.vocab_size, bool)
  seen[np.concatenate(ids['train'])] = True
  seen[:len(SPECIALS)] = True
  columns = {}
  for split, ex in examples.items():
    rows = [np.where(seen[x], x, tokenizer.unk_id).astype(np.int32) for x in ids[split]]
    masks = []
    for x, marks in zip(rows, ex['sentiment']):
      m = np.zeros(len(x), np.int32)
      m[np.asarray(marks, np.int64)] = 1
      masks.append(m)
    columns[split] = {'inputs': Ragged(rows, dtype=np.int32), 'sentiment': Ragged(masks, dtype=np.int32),
                      'label': Dense(np.asarray(ex['label'], np.int32))}
  lengths = pad_lengths(columns)
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'unk_id': tokenizer.unk_id, 'num_classes': len(LABELS),
          'labels': list(LABELS), 'max_length': lengths['inputs'] + 1,  # + a cls token
          'pad_lengths': lengths, 'ood_split': 'test_ood', 'metrics': ('accuracy',)}
  return Task(name='sentiment_reviews', kind='classification', info=info, tokenizers={'inputs': tokenizer},
              columns=columns, length_key='inputs')
