"""scene_vqa: questions about digit_scenes' scenes, answered from a closed set.

Scenes are digit_scenes' (2 to 4 handwritten digits in distinct cells of a 3x3 grid on a 64x64 canvas, each
split drawing its digits from its own share of the images). Each scene gets one question of one type:

  exists    "is there a 5 ?"                      yes / no
  identity  "what digit is in the top left ?"     a digit
  position  "where is the 5 ?"                    one of the 9 cell names
  count     "how many digits are above the 3 ?"   0 .. max_digits - 1
  relation  "what digit is left of the 7 ?"       a digit (asked only when exactly one digit is there)

"the 7" always names a digit that occurs once in the scene. Question types are balanced, and so are the answers
within each type: each example's type and answer are fixed first (an even share of each), then scenes are drawn
until one has a question of that type with that answer, which is picked at random among such questions. The
question alone therefore says nothing of the answer beyond its type's answer set.

Each example keeps its question type and the cells the question refers to (`question_cells`, -1 padded): the
asked cell (identity), the named digit's cell(s) (position, exists with answer yes; none for no), the anchor and
the digits counted (count), the anchor and the answer digit (relation); attention can be scored against them.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base, digit_scenes
from attention_research.data.builders.digits import sklearn_digits
from attention_research.data.pipeline import Dense
from attention_research.data.task import Task
from attention_research.data.tokenizers import WordTokenizer, from_json

QUESTION_TYPES = ('exists', 'identity', 'position', 'count', 'relation')
# Cell names in row-major order of the 3x3 grid.
POSITIONS = ('top left', 'top', 'top right', 'left', 'center', 'right', 'bottom left', 'bottom', 'bottom right')
RELATIONS = ('above', 'below', 'left of', 'right of')
DIGITS = tuple(map(str, range(10)))
ANSWERS = DIGITS + ('yes', 'no') + POSITIONS
WORDS = ['is', 'there', 'a', 'what', 'digit', 'digits', 'in', 'the', 'where', 'how', 'many', 'are', 'of', '?',
         'above', 'below', 'left', 'right', 'top', 'bottom', 'center', *DIGITS]
MAX_ATTEMPTS = 1000  # scenes drawn for one (type, answer) before giving up


def check_question_types(types) -> tuple[str, ...]:
  types = (types,) if isinstance(types, str) else tuple(types)
  unknown = [t for t in types if t not in QUESTION_TYPES]
  if unknown or not types or len(set(types)) != len(types):
    raise ValueError(f'question_types must be distinct names from {list(QUESTION_TYPES)}; got {list(types)}.')
  return types


def answer_set(question_type: str, max_digits: int = 4) -> tuple[str, ...]:
  """The answers a question of this type can have."""
  check_question_types([question_type])
  return {'exists': ('yes', 'no'), 'identity': DIGITS, 'position': POSITIONS, 'count': DIGITS[:max_digits],
          'relation': DIGITS}[question_type]


def holds(relation: str, cell: int, anchor: int) -> bool:
  """Whether the digit in `cell` lies `relation` ('above', 'left of', ...) the one in `anchor`."""
  return relation.split()[0] in digit_scenes.relation(cell, anchor)


def questions(question_type: str, labels, cells) -> list[tuple[str, str, list[int]]]:
  """Every question of this type that the scene answers unambiguously: (question, answer, cells referred to)."""
  check_question_types([question_type])
  labels, cells = [int(d) for d in labels], [int(c) for c in cells]
  digit_at = dict(zip(cells, labels))
  anchors = [(d, c) for d, c in zip(labels, cells) if labels.count(d) == 1]  # "the 7" must name one digit
  out = []
  if question_type == 'exists':
    for d in range(10):
      where = [c for c, x in zip(cells, labels) if x == d]
      out.append((f'is there a {d} ?', 'yes' if where else 'no', where))
  elif question_type == 'identity':
    out = [(f'what digit is in the {POSITIONS[c]} ?', str(d), [c]) for d, c in zip(labels, cells)]
  elif question_type == 'position':
    out = [(f'where is the {d} ?', POSITIONS[c], [c]) for d, c in anchors]
  else:
    for (d, a), rel in ((anchor, rel) for anchor in anchors for rel in RELATIONS):
      there = [c for c in cells if c != a and holds(rel, c, a)]
      if question_type == 'count':
        out.append((f'how many digits are {rel} the {d} ?', str(len(there)), [a] + there))
      elif len(there) == 1:
        out.append((f'what digit is {rel} the {d} ?', str(digit_at[there[0]]), [a, there[0]]))
  return out


def plan(gen: np.random.Generator, n: int, types, max_digits: int) -> list[tuple[str, str]]:
  """n (question type, answer) pairs: types in equal shares, answers in equal shares within each type."""
  counts = np.full(len(types), n // len(types))
  counts[gen.permutation(len(types))[:n % len(types)]] += 1
  pairs = []
  for t, k in zip(types, counts):
    answers = answer_set(t, max_digits)
    order = gen.permutation(len(answers))  # which answers get the remainder is random, not always the first
    pairs += [(t, answers[order[i % len(answers)]]) for i in range(k)]
  return [pairs[i] for i in gen.permutation(len(pairs))]


@dataclasses.dataclass(eq=False)
class SceneVqaConfig(_base.TaskConfig):
  min_digits: int = 2
  max_digits: int = 4
  question_types: tuple[str, ...] = QUESTION_TYPES


class SceneVqa(_base.InMemoryBuilder):
  """Questions about generated scenes of handwritten digits, with the cells each question refers to."""

  BUILDER_CONFIGS = [
      SceneVqaConfig(name='default', num_train=20000, num_validation=1000, num_test=2000,
                     description='23k questions, one per scene of 2 to 4 digits.'),
      SceneVqaConfig(name='small', num_train=200, num_validation=50, num_test=50, description='For tests.'),
  ]

  def features(self):
    m = self.builder_config.max_digits
    return tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(digit_scenes.CANVAS, digit_scenes.CANVAS, 1)),
        'question': tfds.features.Text(),
        'answer': tfds.features.Text(),
        'question_type': tfds.features.Text(),
        'question_cells': tfds.features.Tensor(shape=(m,), dtype=np.int32),
        'digit_labels': tfds.features.Tensor(shape=(m,), dtype=np.int32),
        'digit_cells': tfds.features.Tensor(shape=(m,), dtype=np.int32),
        'source_index': tfds.features.Tensor(shape=(m,), dtype=np.int32),
    })

  def metadata(self):
    return {'tokenizer': WordTokenizer(WORDS).to_json(), 'answers': list(ANSWERS),
            'question_types': list(check_question_types(self.builder_config.question_types))}

  def make_splits(self):
    c = self.builder_config
    types = check_question_types(c.question_types)
    digit_scenes.check_digit_range(c.min_digits, c.max_digits)
    images, labels = sklearn_digits()
    pools = digit_scenes.image_pools(c.seed, 'scene_vqa_pools')
    draws = sampling.UniqueDraws()
    out = {}
    for split, size in c.sizes().items():
      gen = sampling.rng(c.seed, 'scene_vqa', split)
      make = functools.partial(digit_scenes.sample_layout, gen, pools[split], c.min_digits, c.max_digits)
      examples = []
      for question_type, answer in plan(gen, size, types, c.max_digits):
        for _ in range(MAX_ATTEMPTS):
          cells, sources, offsets = draws.draw(make, digit_scenes.layout_key)
          digit_labels = [int(labels[i]) for i in sources]
          fits = [q for q in questions(question_type, digit_labels, cells) if q[1] == answer]
          if fits:
            break
        else:
          raise ValueError(f'no scene of {c.min_digits}-{c.max_digits} digits in {MAX_ATTEMPTS} draws has a '
                           f'{question_type!r} question with answer {answer!r}.')
        text, _, refs = fits[int(gen.integers(len(fits)))]
        pad = lambda xs: np.asarray(list(xs) + [-1] * (c.max_digits - len(xs)), np.int32)
        examples.append({
            'image': digit_scenes.render([images[i] for i in sources], cells, offsets),
            'question': text, 'answer': answer, 'question_type': question_type, 'question_cells': pad(refs),
            'digit_labels': pad(digit_labels), 'digit_cells': pad(cells), 'source_index': pad(sources),
        })
      out[split] = examples
    return out


def make_task(builder, examples) -> Task:
  meta = builder.info.metadata
  tokenizer = from_json(meta['tokenizer'])
  answers = list(meta['answers'])
  length = max(len(q.split()) for ex in examples.values() for q in ex['question'])
  columns = {}
  for split, ex in examples.items():
    question = np.zeros((len(ex['question']), length), np.int32)
    for i, q in enumerate(ex['question']):
      ids = tokenizer.encode(q)
      question[i, :len(ids)] = ids
    columns[split] = {
        'image': Dense(np.stack(ex['image']), dtype=np.float32, scale=1 / 255),
        'question': Dense(question),
        'label': Dense(np.asarray([answers.index(a) for a in ex['answer']], np.int32)),
        # Indices into QUESTION_TYPES, whatever subset the config asked for, so ids mean the same everywhere.
        'question_type': Dense(np.asarray([QUESTION_TYPES.index(t) for t in ex['question_type']], np.int32)),
        'question_cells': Dense(np.stack(ex['question_cells']).astype(np.int32)),
    }
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'num_classes': len(answers), 'answers': answers,
          'question_types': QUESTION_TYPES, 'max_length': length, 'grid': digit_scenes.GRID,
          'image_shape': (digit_scenes.CANVAS, digit_scenes.CANVAS, 1), 'max_digits': builder.builder_config.max_digits,
          'metrics': ('accuracy',)}
  return Task(name='scene_vqa', kind='classification', info=info, tokenizers={'question': tokenizer},
              columns=columns)
