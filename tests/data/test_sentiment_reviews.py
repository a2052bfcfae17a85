"""sentiment_reviews at test size: deterministic, disjoint splits, every label and its evidence recomputed."""

import numpy as np
import pytest

from attention_research.data import cache, loading

POSITIVE = {'good', 'great', 'excellent', 'superb', 'reliable', 'solid', 'fast', 'sharp'}
NEGATIVE = {'bad', 'poor', 'awful', 'terrible', 'flimsy', 'slow', 'weak', 'dull'}
NEGATORS = {'not', 'never'}
BOOSTERS = {'very', 'really', 'extremely', 'truly'}


def independent_label(text):
  """Reads the review sentence by sentence: after 'but' only the second clause counts; 'not'/'never' flips the
  adjective after it (and cancels a booster), a booster doubles it. -> (label, positions of the evidence)."""
  words = text.split()
  total, evidence, start = 0, [], 0
  for end in [i for i, w in enumerate(words) if w == '.']:
    sentence = list(range(start, end))
    start = end + 1
    if 'but' in [words[i] for i in sentence]:
      cut = [words[i] for i in sentence].index('but')
      sentence = sentence[cut + 1:]
    adjectives = [i for i in sentence if words[i] in POSITIVE | NEGATIVE]
    if not adjectives:
      assert not {words[i] for i in sentence} & (NEGATORS | BOOSTERS), text
      continue
    assert len(adjectives) == 1, text
    i = adjectives[0]
    sign = 1 if words[i] in POSITIVE else -1
    if words[i - 1] in NEGATORS:
      total -= sign
      evidence += [i - 1, i]
    elif words[i - 1] in BOOSTERS:
      total += 2 * sign
      evidence += [i - 1, i]
    else:
      total += sign
      evidence.append(i)
  assert total != 0, text
  return int(total > 0), evidence


def test_every_label_and_its_evidence_follow_from_the_text(build):
  built = build('sentiment_reviews')
  for split, ex in built.examples.items():
    for text, label, marks in zip(ex['text'], ex['label'], ex['sentiment']):
      assert independent_label(text) == (label, list(marks)), (split, text)


def test_reviews_need_composition_and_ood_reviews_are_longer_about_unseen_products(build):
  ex = build('sentiment_reviews').examples
  texts = list(ex['train']['text'])
  # negation and contrast are common: a bag of words cannot read them
  assert np.mean([' but ' in t for t in texts]) > 0.3
  assert np.mean([bool(set(t.split()) & NEGATORS) for t in texts]) > 0.3
  assert 0.3 < np.mean(ex['train']['label']) < 0.7
  length = lambda split: np.mean([len(t.split()) for t in ex[split]['text']])
  assert length('test_ood') > 1.5 * length('train')
  product = lambda split: {t.split()[3] for t in ex[split]['text']}
  assert not product('test_ood') & (product('train') | product('validation') | product('test'))


def test_deterministic_and_splits_disjoint(build, canonical, tmp_path):
  built = build('sentiment_reviews')
  _, again = cache.load_builtin('sentiment_reviews', loading.builtin_config('sentiment_reviews', 'small'),
                                str(tmp_path))
  assert canonical(again) == canonical(built.examples)
  texts = {split: set(ex['text']) for split, ex in built.examples.items()}
  splits = list(texts)
  for i, a in enumerate(splits):
    for b in splits[i + 1:]:
      assert not texts[a] & texts[b], (a, b)
  other = build('sentiment_reviews', seed=1)
  assert set(other.examples['train']['text']) != texts['train']


def test_task_columns_mark_the_evidence_and_hide_unseen_products(build):
  built = build('sentiment_reviews')
  tok, info = built.task.tokenizers['inputs'], built.task.info
  for split in ('train', 'test_ood'):
    cols = built.task.columns[split]
    n = len(cols['inputs'])
    inputs, marks = cols['inputs'].take(np.arange(n)), cols['sentiment'].take(np.arange(n))
    for i in range(5):
      assert np.flatnonzero(marks[i]).tolist() == list(built.examples[split]['sentiment'][i])
      words = built.examples[split]['text'][i].split()
      assert inputs[i, 3] == (info['unk_id'] if split == 'test_ood' else tok.encode(words[3])[0])
  assert info['max_length'] > max(cols['inputs'].max_length for cols in built.task.columns.values())


@pytest.mark.parametrize('override, match', [({'opinions': (0, 2)}, 'opinions'), ({'ood_distractors': (3, 1)},
                                                                                   'ood_distractors')])
def test_bad_ranges_are_value_errors(override, match, tmp_path):
  from attention_research.data.builders.sentiment_reviews import SentimentReviews
  config = loading.builtin_config('sentiment_reviews', 'small', **override)
  with pytest.raises(ValueError, match=match):
    SentimentReviews(config=config, data_dir=str(tmp_path)).make_splits()
