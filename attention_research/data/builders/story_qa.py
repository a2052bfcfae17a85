"""story_qa: bAbI-style story question answering (Weston et al. 2015), one task per build (option `task`).

Tasks, by their bAbI number: 1 single supporting fact, 2 two supporting facts, 3 three supporting facts,
6 yes/no questions, 7 counting, 8 lists/sets, 17 positional reasoning, 19 path finding. Tasks 1-8 simulate a
small world (people move, pick up and drop objects) sentence by sentence and ask about its final state; 17
relates coloured shapes on a grid; 19 lays rooms out as a tree on a grid and asks for a two-step route.
Each story keeps the indices of its supporting facts: the sentences the answer follows from.

Splits: train / validation / test share the story lengths of training; `test_ood` has longer stories (more
sentences, more distractors: about three times the facts of tasks 1-8, more shapes and rooms for 17 and 19).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Dense, Ragged
from attention_research.data.task import Task
from attention_research.data.tokenizers import WordTokenizer, from_json

TASKS = {1: 'single_supporting_fact', 2: 'two_supporting_facts', 3: 'three_supporting_facts', 6: 'yes_no_questions',
         7: 'counting', 8: 'lists_sets', 17: 'positional_reasoning', 19: 'path_finding'}
SPLITS = sampling.SPLITS + ('test_ood',)
PEOPLE = ('mary', 'john', 'sandra', 'daniel')
PLACES = ('bathroom', 'hallway', 'kitchen', 'garden', 'office', 'bedroom')
OBJECTS = ('apple', 'football', 'milk')
MOVES = ('moved to the', 'went to the', 'journeyed to the', 'travelled to the')
GRABS = ('picked up the', 'got the', 'grabbed the', 'took the')
DROPS = ('dropped the', 'discarded the', 'put down the', 'left the')
NUMBERS = ('none', 'one', 'two', 'three')
COLOURS = ('red', 'blue', 'pink', 'yellow', 'green')
SHAPES = ('square', 'triangle', 'rectangle', 'sphere')
# relation -> (dx, dy) of the subject relative to the object.
RELATIONS = {'above': (0, 1), 'below': (0, -1), 'to the left of': (-1, 0), 'to the right of': (1, 0)}
ROOMS = ('kitchen', 'garden', 'hallway', 'bedroom', 'bathroom', 'office', 'cellar', 'attic', 'library', 'den')
DIRECTIONS = {'north': (0, 1), 'south': (0, -1), 'east': (1, 0), 'west': (-1, 0)}


def answers(task: int) -> list[str]:
  """Every answer a task can give: the classes of its classifier."""
  if task in (1, 2, 3):
    return list(PLACES)
  if task in (6, 17):
    return ['no', 'yes']
  if task == 7:
    return list(NUMBERS)
  if task == 8:
    return ['nothing'] + [','.join(c) for n in (1, 2, 3) for c in itertools.combinations(sorted(OBJECTS), n)]
  return [f'{a[0]},{b[0]}' for a in DIRECTIONS for b in DIRECTIONS]


def vocabulary() -> list[str]:
  words = set(PEOPLE + PLACES + OBJECTS + NUMBERS + COLOURS + SHAPES + ROOMS + tuple(DIRECTIONS))
  for phrase in MOVES + GRABS + DROPS + tuple(RELATIONS):
    words.update(phrase.split())
  words.update('where is was before the in how many objects carrying what do you go from to of yes no . ?'.split())
  return sorted(words)


def check_task(task) -> int:
  if isinstance(task, bool) or not isinstance(task, (int, np.integer)) or int(task) not in TASKS:
    raise ValueError(f'unknown story_qa task {task!r}; known bAbI task ids: '
                     + ', '.join(f'{k} ({v})' for k, v in TASKS.items()) + '.')
  return int(task)


def _pick(gen, xs):
  return xs[int(gen.integers(len(xs)))]


class _World:
  """People, places and objects; every sentence changes the state and records the facts it rests on."""

  def __init__(self):
    self.loc: dict[str, str] = {}
    self.last_move: dict[str, int] = {}
    self.holder: dict[str, str | None] = {o: None for o in OBJECTS}
    self.oloc: dict[str, str] = {}
    self.last_event: dict[tuple[str, str], tuple[str, int]] = {}  # (person, object) -> ('grab'|'drop', fact)
    self.grab_fact: dict[str, int] = {}
    self.location_of: dict[str, tuple[str, list[int]]] = {}  # object -> (place, supporting facts)
    self.history: dict[str, list[tuple[str, list[int]]]] = {o: [] for o in OBJECTS}  # distinct places, support
    self.sentences: list[str] = []

  def step(self, gen, objects: bool) -> None:
    i = len(self.sentences)
    p = _pick(gen, PEOPLE)
    held = [o for o in OBJECTS if self.holder[o] == p]
    free = [o for o in OBJECTS if self.holder[o] is None and self.oloc.get(o, self.loc.get(p)) == self.loc.get(p)]
    r = gen.random()
    if objects and p in self.loc and free and r < 0.3:
      o = _pick(gen, free)
      self.holder[o], self.oloc[o], self.grab_fact[o] = p, self.loc[p], i
      self.last_event[(p, o)] = ('grab', i)
      self.location_of[o] = (self.loc[p], [self.last_move[p], i])
      if not self.history[o]:
        self.history[o].append((self.loc[p], []))
      self.sentences.append(f'{p} {_pick(gen, GRABS)} {o}')
    elif objects and held and r < 0.45:
      o = _pick(gen, held)
      self.holder[o] = None
      self.last_event[(p, o)] = ('drop', i)
      self.location_of[o] = (self.loc[p], [self.last_move[p], i])
      self.sentences.append(f'{p} {_pick(gen, DROPS)} {o}')
    else:
      place = _pick(gen, [x for x in PLACES if x != self.loc.get(p)])
      before = self.last_move.get(p)
      self.loc[p], self.last_move[p] = place, i
      for o in held:
        self.oloc[o] = place
        self.location_of[o] = (place, [self.grab_fact[o], i])
        self.history[o].append((place, [self.grab_fact[o], before, i]))
      self.sentences.append(f'{p} {_pick(gen, MOVES)} {place}')


def _world_question(gen, world: _World, task: int):
  """(question, answer, supporting facts) about the final state, or None when the story has no such question."""
  located = [p for p in PEOPLE if p in world.loc]
  if task in (1, 6):
    if not located:
      return None
    p = _pick(gen, located)
    if task == 1:
      return f'where is {p}', world.loc[p], [world.last_move[p]]
    place = world.loc[p] if gen.random() < 0.5 else _pick(gen, [x for x in PLACES if x != world.loc[p]])
    return f'is {p} in the {place}', 'yes' if place == world.loc[p] else 'no', [world.last_move[p]]
  if task == 2:
    known = [o for o in OBJECTS if o in world.location_of]
    if not known:
      return None
    o = _pick(gen, known)
    place, support = world.location_of[o]
    return f'where is the {o}', place, support
  if task == 3:
    ok = [o for o in OBJECTS if len(world.history[o]) >= 2
          and [h[0] for h in world.history[o]].count(world.history[o][-1][0]) == 1]
    if not ok:
      return None
    o = _pick(gen, ok)
    (before, _), (now, support) = world.history[o][-2:]
    return f'where was the {o} before the {now}', before, support
  touched = sorted({p for p, _ in world.last_event})
  if not touched:
    return None
  p = _pick(gen, touched)
  events = {o: world.last_event[(p, o)] for o in OBJECTS if (p, o) in world.last_event}
  carried = sorted(o for o, (kind, _) in events.items() if kind == 'grab')
  support = sorted(f for _, f in events.values())
  if task == 7:
    return f'how many objects is {p} carrying', NUMBERS[len(carried)], support
  return f'what is {p} carrying', ','.join(carried) or 'nothing', support


def _shape_name(s):
  return f'{s[0]} {s[1]}'


def _positional(gen, distractors: int):
  shapes = [(c, s) for c in COLOURS for s in SHAPES]
  order = gen.permutation(len(shapes))
  a, b, c, *others = [shapes[i] for i in order[:3 + 2 * distractors]]
  r1, r2 = _pick(gen, list(RELATIONS)), _pick(gen, list(RELATIONS))
  facts = [f'the {_shape_name(a)} is {r1} the {_shape_name(b)}', f'the {_shape_name(c)} is {r2} the {_shape_name(a)}']
  pos_b = -np.asarray(RELATIONS[r1])
  pos_c = np.asarray(RELATIONS[r2])
  x, y = (b, c) if gen.random() < 0.5 else (c, b)
  dx, dy = (pos_b - pos_c) if x == b else (pos_c - pos_b)
  truths = {'above': dy > 0, 'below': dy < 0, 'to the left of': dx < 0, 'to the right of': dx > 0}
  want = gen.random() < 0.5
  pool = [r for r, t in truths.items() if t == want] or list(truths)
  rel = _pick(gen, pool)
  distract = [f'the {_shape_name(others[2 * k])} is {_pick(gen, list(RELATIONS))} the {_shape_name(others[2 * k + 1])}'
              for k in range(distractors)]
  return facts, distract, f'is the {_shape_name(x)} {rel} the {_shape_name(y)}', 'yes' if truths[rel] else 'no'


def _path(gen, num_rooms: int):
  rooms = [ROOMS[i] for i in gen.permutation(len(ROOMS))[:num_rooms]]
  cell = {rooms[0]: (0, 0)}
  used = {(0, 0): rooms[0]}
  parent, edges = {}, []
  for room in rooms[1:]:
    while True:
      base = _pick(gen, list(cell))
      d = _pick(gen, list(DIRECTIONS))
      xy = (cell[base][0] + DIRECTIONS[d][0], cell[base][1] + DIRECTIONS[d][1])
      if xy not in used:
        break
    cell[room], used[xy], parent[room] = xy, room, base
    opposite = {'north': 'south', 'south': 'north', 'east': 'west', 'west': 'east'}[d]
    edges.append((room, base, f'the {room} is {d} of the {base}' if gen.random() < 0.5
                  else f'the {base} is {opposite} of the {room}'))
  adjacent = {}
  for i, (u, v, _) in enumerate(edges):
    adjacent.setdefault(u, []).append((v, i))
    adjacent.setdefault(v, []).append((u, i))
  routes = [(a, b, c, i, j) for b in adjacent for (a, i) in adjacent[b] for (c, j) in adjacent[b] if a != c]
  a, b, c, i, j = routes[int(gen.integers(len(routes)))]

  def step(u, v):
    dx, dy = cell[v][0] - cell[u][0], cell[v][1] - cell[u][1]
    return next(k for k, d in DIRECTIONS.items() if d == (dx, dy))[0]

  sentences = [e[2] for e in edges]
  return sentences, [i, j], f'how do you go from the {a} to the {c}', f'{step(a, b)},{step(b, c)}'


def make_story(gen, task: int, size: tuple[int, int], max_attempts: int = 200) -> dict:
  """One story: {'story': [sentence, ...], 'question', 'answer', 'supporting': [fact index, ...]}.

  size: (low, high) of the story length (facts of tasks 1-8, distractors of 17, rooms of 19).
  """
  n = int(gen.integers(size[0], size[1] + 1))
  if task == 17:
    facts, distract, question, answer = _positional(gen, n)
    order = gen.permutation(len(facts) + len(distract))
    story = [(facts + distract)[k] for k in order]
    return {'story': story, 'question': question, 'answer': answer,
            'supporting': sorted(int(np.flatnonzero(order == k)[0]) for k in range(len(facts)))}
  if task == 19:
    sentences, support, question, answer = _path(gen, n)
    order = gen.permutation(len(sentences))
    return {'story': [sentences[k] for k in order], 'question': question, 'answer': answer,
            'supporting': sorted(int(np.flatnonzero(order == k)[0]) for k in support)}
  for _ in range(max_attempts):
    world = _World()
    for _ in range(n):
      world.step(gen, objects=task not in (1, 6))
    qa = _world_question(gen, world, task)
    if qa is not None:
      question, answer, support = qa
      return {'story': world.sentences, 'question': question, 'answer': answer,
              'supporting': sorted(set(support))}
  raise ValueError(f'no story of task {task} with {n} facts had a question after {max_attempts} attempts; '
                   'use longer stories.')


# Story sizes per task: (train low, train high), (ood low, ood high).
SIZES = {1: ((2, 10), (20, 30)), 2: ((4, 12), (20, 30)), 3: ((6, 14), (24, 34)), 6: ((2, 10), (20, 30)),
         7: ((4, 12), (20, 30)), 8: ((4, 12), (20, 30)), 17: ((0, 2), (4, 7)), 19: ((3, 6), (8, 10))}


@dataclasses.dataclass(eq=False)
class StoryQaConfig(_base.TaskConfig):
  task: int = 1
  num_test_ood: int = 100


class StoryQa(_base.InMemoryBuilder):
  """bAbI-style story QA with supporting facts; `task` picks the bAbI task (1, 2, 3, 6, 7, 8, 17, 19)."""

  BUILDER_CONFIGS = [
      StoryQaConfig(name='default', num_train=4000, num_validation=400, num_test=400, num_test_ood=400,
                    description='4000 training stories of one task.'),
      StoryQaConfig(name='small', num_train=200, num_validation=40, num_test=40, num_test_ood=40,
                    description='Tiny, for tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'story': tfds.features.Text(),  # sentences joined by '\n'
        'question': tfds.features.Text(),
        'answer': tfds.features.Text(),
        'supporting': tfds.features.Tensor(shape=(None,), dtype=np.int32),
    })

  def metadata(self):
    task = check_task(self.builder_config.task)
    return {'tokenizer': WordTokenizer(vocabulary()).to_json(), 'answers': answers(task), 'task': task}

  def make_splits(self):
    c = self.builder_config
    task = check_task(c.task)
    sizes = {**c.sizes(), 'test_ood': c.num_test_ood}
    if sizes['test_ood'] < 1:
      raise ValueError(f'test_ood size must be >= 1, got {sizes["test_ood"]}.')
    draws = sampling.UniqueDraws()
    out = {}
    for split in SPLITS:
      gen = sampling.rng(c.seed, 'story_qa', task, split)
      size = SIZES[task][split == 'test_ood']
      key = lambda s: '\n'.join(s['story'] + [s['question']])
      stories = [draws.draw(lambda gen=gen, size=size: make_story(gen, task, size), key) for _ in range(sizes[split])]
      out[split] = [{'story': '\n'.join(s['story']), 'question': s['question'], 'answer': s['answer'],
                     'supporting': np.asarray(s['supporting'], np.int32)} for s in stories]
    return out


def make_task(builder, examples) -> Task:
  meta = builder.info.metadata
  tokenizer = from_json(meta['tokenizer'])
  classes = list(meta['answers'])
  stories = {split: [s.split('\n') for s in ex['story']] for split, ex in examples.items()}
  memory = max(len(s) for ss in stories.values() for s in ss)
  words = max(max(len(x.split()) for ss in stories.values() for s in ss for x in s),
              max(len(q.split()) for ex in examples.values() for q in ex['question']))
  dot, mark = tokenizer.encode('.'), tokenizer.encode('?')
  columns, flat_max = {}, 0
  for split, ex in examples.items():
    n = len(ex['question'])
    story = np.zeros((n, memory, words), np.int32)
    question = np.zeros((n, words), np.int32)
    support = np.zeros((n, memory), np.int32)
    flat = []
    for i, (sentences, q) in enumerate(zip(stories[split], ex['question'])):
      q_ids = tokenizer.encode(q)
      question[i, :len(q_ids)] = q_ids
      ids = q_ids + mark
      for j, s in enumerate(sentences):
        s_ids = tokenizer.encode(s)
        story[i, j, :len(s_ids)] = s_ids
        ids += s_ids + dot
      support[i, np.asarray(ex['supporting'][i], np.int64)] = 1
      flat.append(np.asarray(ids, np.int32))
      flat_max = max(flat_max, len(ids))
    columns[split] = {'story': Dense(story), 'question': Dense(question), 'support': Dense(support),
                      'inputs': Ragged(flat, dtype=np.int32),
                      'label': Dense(np.asarray([classes.index(a) for a in ex['answer']], np.int32))}
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'num_classes': len(classes), 'answers': classes,
          'max_sentences': memory, 'max_words': words, 'max_length': flat_max + 1,  # + a cls token
          'pad_lengths': {'inputs': flat_max}, 'babi_task': int(meta['task']), 'ood_split': 'test_ood',
          'metrics': ('accuracy',)}
  return Task(name='story_qa', kind='classification', info=info, tokenizers={'inputs': tokenizer}, columns=columns,
              length_key='inputs')
