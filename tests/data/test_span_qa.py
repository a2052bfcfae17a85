"""span_qa at test size: deterministic, disjoint splits, every answer span recomputed from the passage's facts."""

import numpy as np
import pytest

from attention_research.data import loading
from attention_research.data.builders import span_qa

PRONOUNS = {'she', 'he'}


def read_facts(passage):
  """Reads the passage sentence by sentence, as a person would: a 'was born' sentence introduces a person, later
  sentences name them or say 'she' / 'he' for the last one introduced. -> {name: facts}, [sentence tokens]."""
  facts, current = {}, None
  sentences = [s.split() for s in passage.split(' .')[:-1]]
  for w in sentences:
    if w[2:4] == ['was', 'born']:
      current = ' '.join(w[:2])
      assert current not in facts, passage  # a person is introduced once
      a, b = w[5], w[7]
      facts[current] = {'year': a, 'city': b} if a.isdigit() else {'year': b, 'city': a}
      continue
    if w[0] in PRONOUNS:
      rest = w[1:]
    else:
      assert ' '.join(w[:2]) == current, passage  # a person's sentences follow their introduction
      rest = w[2:]
    if rest[0] == 'works':
      if rest[1] == 'for':
        cut = rest.index('as')
        facts[current]['company'], facts[current]['job'] = ' '.join(rest[2:cut]), ' '.join(rest[cut + 2:])
      else:
        cut = rest.index('for')
        facts[current]['job'], facts[current]['company'] = ' '.join(rest[3:cut]), ' '.join(rest[cut + 1:])
    elif rest[:2] in (['lives', 'in'], ['moved', 'to']):
      facts[current]['home'] = rest[2]
  return facts, sentences


def answer(facts, question):
  q = question.split()[:-1]
  if q[0] == 'who' and q[1] == 'works':
    company = ' '.join(q[3:])
    names = [n for n, f in facts.items() if f['company'] == company]
    assert len(names) == 1, (company, facts)
    return 'worker', names[0]
  name = ' '.join(q[2:4])
  kind = {('where', 'was'): ('where_born', 'city'), ('when', 'was'): ('when_born', 'year'),
          ('who', 'does'): ('employer', 'company'), ('what', 'does'): ('job', 'job'),
          ('where', 'does'): ('residence', 'home')}[(q[0], q[1])]
  return kind[0], facts[name][kind[1]]


def test_every_answer_follows_from_the_passage_and_is_its_span(build):
  built = build('span_qa')
  for split, ex in built.examples.items():
    for i, passage in enumerate(ex['passage']):
      facts, sentences = read_facts(passage)
      qtype, text = answer(facts, ex['question'][i])
      assert (qtype, text) == (ex['question_type'][i], ex['answer'][i]), (split, passage, ex['question'][i])
      tokens = passage.split()
      s, e = ex['answer_start'][i], ex['answer_end'][i]
      assert ' '.join(tokens[s:e + 1]) == text
      first = sum(len(w) + 1 for w in sentences[:ex['answer_sentence'][i]])
      assert first <= s and e < first + len(sentences[ex['answer_sentence'][i]])
  # the task's input rows index the same tokens
  task, tok = built.task, built.task.tokenizers['inputs']
  batch = next(task.batches('test_ood', batch_size=8, shuffle=False, repeat=False))
  for i in range(8):
    row = batch['inputs'][i]
    assert tok.decode(row[batch['start'][i]:batch['end'][i] + 1]) == built.examples['test_ood']['answer'][i]
    assert tok.decode(row[batch['offset'][i]:]) == built.examples['test_ood']['passage'][i]
    support = tok.decode(row[batch['support'][i] == 1]).split()
    assert support[-1] == '.' and '.' not in support[:-1]


def test_distractors_pronouns_and_ood_names(build):
  ex = build('span_qa').examples
  train = ex['train']
  assert set(train['question_type']) == set(span_qa.QUESTION_TYPES)
  shared_year = [len({f['year'] for f in read_facts(p)[0].values()}) < len(read_facts(p)[0]) for p in train['passage']]
  assert np.mean(shared_year) > 0.3
  assert np.mean([bool(set(p.split()) & PRONOUNS) for p in train['passage']]) > 0.8
  names = lambda split: {n for p in ex[split]['passage'] for full in read_facts(p)[0] for n in full.split()}
  seen = names('train') | names('validation') | names('test')
  assert not names('test_ood') & seen
  length = lambda split: np.mean([len(p.split()) for p in ex[split]['passage']])
  assert length('test_ood') > 1.5 * length('train')


def test_deterministic_and_disjoint(tmp_path):
  config = loading.builtin_config('span_qa', 'small', num_train=30, num_validation=5, num_test=5, num_test_ood=5)
  make = lambda seed: span_qa.SpanQa(config=loading.builtin_config('span_qa', 'small', seed=seed, num_train=30,
                                                                   num_validation=5, num_test=5, num_test_ood=5),
                                     data_dir=str(tmp_path)).make_splits()
  first, again, other = make(0), make(0), make(1)
  assert first == again and first['train'] != other['train']
  passages = [ex['passage'] for split in first.values() for ex in split]
  assert len(passages) == len(set(passages)) == 45
  assert config.num_train == 30


@pytest.mark.parametrize('override, match', [({'people': (0, 2)}, 'people must be'),
                                             ({'num_test_ood': 0}, 'test_ood size')])
def test_bad_options(tmp_path, override, match):
  config = loading.builtin_config('span_qa', 'small', **override)
  with pytest.raises(ValueError, match=match):
    span_qa.SpanQa(config=config, data_dir=str(tmp_path)).make_splits()
