"""story_qa at test size: deterministic, disjoint splits, every answer and its supporting facts recomputed."""

import collections

import numpy as np
import pytest

from attention_research.data import loading
from attention_research.data.builders import story_qa

TASK_IDS = (1, 2, 3, 6, 7, 8, 17, 19)
GRAB_VERBS = {'picked', 'got', 'grabbed', 'took'}
DROP_VERBS = {'dropped', 'discarded', 'put', 'left'}
PLACES = {'bathroom', 'hallway', 'kitchen', 'garden', 'office', 'bedroom'}
OFFSETS = {'above': (0, 1), 'below': (0, -1), 'left': (-1, 0), 'right': (1, 0)}
STEPS = {'north': (0, 1), 'south': (0, -1), 'east': (1, 0), 'west': (-1, 0)}


def _world_answer(sentences, question):
  """Reads the story left to right, as a person would, and answers the question."""
  where, holder, trail = {}, {}, collections.defaultdict(list)

  def arrive(o, place):
    if place is not None and (not trail[o] or trail[o][-1] != place):
      trail[o].append(place)

  for s in sentences:
    w = s.split()
    person, last = w[0], w[-1]
    if last in PLACES:
      where[person] = last
      for o, h in holder.items():
        if h == person:
          arrive(o, last)
    elif w[1] in GRAB_VERBS:
      holder[last] = person
      arrive(last, where.get(person))
    else:
      assert w[1] in DROP_VERBS, s
      holder[last] = None
      arrive(last, where.get(person))
  q = question.split()
  if q[:2] == ['where', 'is'] and q[2] == 'the':
    return trail[q[3]][-1]
  if q[:2] == ['where', 'is']:
    return where[q[2]]
  if q[:2] == ['where', 'was']:
    places = trail[q[3]]
    assert places[-1] == q[-1] and places.count(q[-1]) == 1, (places, question)
    return places[-2]
  if q[0] == 'is':
    return 'yes' if where.get(q[1]) == q[-1] else 'no'
  carried = sorted(o for o, h in holder.items() if h == q[-2 if q[0] == 'how' else 2])
  if q[0] == 'how':
    return ['none', 'one', 'two', 'three'][len(carried)]
  return ','.join(carried) or 'nothing'


def _shape_answer(sentences, question):
  """Places shapes on a grid from the relations, then reads the asked relation off their coordinates."""
  edges = collections.defaultdict(list)
  for s in sentences:
    w = s.split()
    a, rel, b = ' '.join(w[1:3]), next(r for r in OFFSETS if r in w[4:-3]), ' '.join(w[-2:])
    dx, dy = OFFSETS[rel]
    edges[b].append((a, dx, dy))
    edges[a].append((b, -dx, -dy))
  q = question.split()
  x, rel, y = ' '.join(q[2:4]), next(r for r in OFFSETS if r in q[4:-3]), ' '.join(q[-2:])
  pos, todo = {y: (0, 0)}, [y]
  while todo:
    u = todo.pop()
    for v, dx, dy in edges[u]:
      if v not in pos:
        pos[v] = (pos[u][0] + dx, pos[u][1] + dy)
        todo.append(v)
  dx, dy = pos[x][0] - pos[y][0], pos[x][1] - pos[y][1]
  holds = {'above': dy > 0, 'below': dy < 0, 'left': dx < 0, 'right': dx > 0}[rel]
  return 'yes' if holds else 'no'


def _path_answer(sentences, question):
  """Breadth-first search over the stated adjacencies; the route must be the only shortest one."""
  moves = collections.defaultdict(dict)
  for s in sentences:
    w = s.split()  # the A is D of the B: going D from B reaches A
    a, d, b = w[1], w[3], w[-1]
    moves[b][a] = d
    moves[a][b] = {'north': 'south', 'south': 'north', 'east': 'west', 'west': 'east'}[d]
  q = question.split()
  start, goal = q[6], q[-1]
  routes, frontier = [], [[start]]
  while frontier and not routes:
    frontier = [r + [v] for r in frontier for v in moves[r[-1]] if v not in r]
    routes = [r for r in frontier if r[-1] == goal]
  assert len(routes) == 1, routes
  r = routes[0]
  return ','.join(moves[u][v][0] for u, v in zip(r, r[1:]))


def independent_answer(sentences, question):
  if question.startswith('how do you go'):
    return _path_answer(sentences, question)
  if question.startswith('is the'):
    return _shape_answer(sentences, question)
  return _world_answer(sentences, question)


@pytest.mark.parametrize('task_id', TASK_IDS)
def test_every_answer_follows_from_the_story_and_from_its_supporting_facts_alone(build_story, task_id):
  built = build_story(task_id)
  answers = built.builder.info.metadata['answers']
  for split, ex in built.examples.items():
    for story, question, answer, support in zip(ex['story'], ex['question'], ex['answer'], ex['supporting']):
      sentences = story.split('\n')
      assert answer in answers
      assert independent_answer(sentences, question) == answer, (split, story, question)
      assert len(support) and all(0 <= i < len(sentences) for i in support)
      assert independent_answer([sentences[i] for i in support], question) == answer, (story, question, support)


@pytest.mark.parametrize('task_id', (1, 3, 17, 19))
def test_supporting_fact_counts_and_ood_stories_are_longer(build_story, task_id):
  ex = build_story(task_id).examples
  counts = {len(s) for s in ex['train']['supporting']}
  assert counts == {1: {1}, 3: {3}, 17: {2}, 19: {2}}[task_id]
  length = lambda split: np.mean([len(s.split('\n')) for s in ex[split]['story']])
  assert length('test_ood') > 1.5 * length('train')


@pytest.mark.parametrize('task_id', (3, 17))
def test_deterministic_and_splits_disjoint(build_story, task_id, canonical, tmp_path):
  built = build_story(task_id)
  config = loading.builtin_config('story_qa', 'small', task=task_id)
  from attention_research.data import cache
  _, again = cache.load_builtin('story_qa', config, str(tmp_path))
  assert canonical(again) == canonical(built.examples)
  keys = {split: {s + '|' + q for s, q in zip(ex['story'], ex['question'])} for split, ex in built.examples.items()}
  splits = list(keys)
  for i, a in enumerate(splits):
    for b in splits[i + 1:]:
      assert not keys[a] & keys[b], (a, b)


def test_task_arrays_mark_the_supporting_sentences(build_story):
  built = build_story(2)
  cols, info = built.task.columns['train'], built.task.info
  story, support = cols['story'].array, cols['support'].array
  assert story.shape[1:] == (info['max_sentences'], info['max_words'])
  tok = built.task.tokenizers['inputs']
  for i in range(5):
    sentences = built.examples['train']['story'][i].split('\n')
    assert np.flatnonzero(support[i]).tolist() == list(built.examples['train']['supporting'][i])
    assert tok.decode(story[i, 0]) == sentences[0]
    assert not story[i, len(sentences):].any()
  assert info['answers'][cols['label'].array[0]] == built.examples['train']['answer'][0]


@pytest.mark.parametrize('task', [4, 0, 'one', True])
def test_unknown_task_ids_are_value_errors(task):
  with pytest.raises(ValueError, match='unknown story_qa task'):
    story_qa.check_task(task)
  with pytest.raises(ValueError, match='unknown story_qa task'):
    story_qa.StoryQa(config=loading.builtin_config('story_qa', 'small', task=task), data_dir='/nonexistent').info
