"""scene_vqa: every answer follows from the scene, types and answers are balanced, bad options fail.

Determinism, seeds and disjoint splits are checked for every builder in test_builders.
"""

import collections
import re

import pytest

from attention_research import data
from attention_research.data.builders import scene_vqa

def _cell_name(cell):
  """Written out again from the grid (not from scene_vqa.POSITIONS), so a wrong table fails the test."""
  r, c = divmod(cell, 3)
  words = [w for w, on in ((['top', '', 'bottom'][r], r != 1), (['left', '', 'right'][c], c != 1)) if on]
  return ' '.join(words) or 'center'


def _lies(rel, cell, anchor):
  (r, c), (ra, ca) = divmod(cell, 3), divmod(anchor, 3)
  return {'above': r < ra, 'below': r > ra, 'left of': c < ca, 'right of': c > ca}[rel]


def _answer(question, scene):
  """(answer, referred cells) of a question, recomputed from the scene {cell: digit}."""
  if m := re.fullmatch(r'is there a (\d) \?', question):
    where = sorted(c for c, d in scene.items() if d == int(m[1]))
    return ('yes' if where else 'no'), where
  if m := re.fullmatch(r'what digit is in the ([a-z ]+) \?', question):
    (cell,) = [c for c in range(9) if _cell_name(c) == m[1]]
    return str(scene[cell]), [cell]
  m = re.fullmatch(r'(where is|how many digits are|what digit is) ?([a-z ]*) the (\d) \?', question)
  assert m, question
  (anchor,) = [c for c, d in scene.items() if d == int(m[3])]  # "the 7" names exactly one digit
  if m[1] == 'where is':
    return _cell_name(anchor), [anchor]
  there = sorted(c for c in scene if c != anchor and _lies(m[2], c, anchor))
  if m[1] == 'how many digits are':
    return str(len(there)), sorted([anchor] + there)
  assert len(there) == 1, question  # a relation question is asked only when one digit is there
  return str(scene[there[0]]), sorted([anchor] + there)


def test_every_answer_follows_from_the_scene(build):
  for split, ex in build('scene_vqa').examples.items():
    for q, a, refs, labels, cells in zip(ex['question'], ex['answer'], ex['question_cells'], ex['digit_labels'],
                                         ex['digit_cells']):
      scene = {int(c): int(d) for c, d in zip(cells, labels) if c >= 0}
      assert 2 <= len(scene) <= 4
      answer, referred = _answer(q, scene)
      assert answer == a, (split, q, scene)
      assert sorted(int(c) for c in refs if c >= 0) == referred, (split, q, scene)


def test_types_and_answers_are_balanced(build):
  ex = build('scene_vqa').examples['train']
  types = collections.Counter(ex['question_type'])
  assert set(types) == set(scene_vqa.QUESTION_TYPES)
  assert max(types.values()) - min(types.values()) <= 1
  for t in scene_vqa.QUESTION_TYPES:
    answers = collections.Counter(a for a, tt in zip(ex['answer'], ex['question_type']) if tt == t)
    assert set(answers) == set(scene_vqa.answer_set(t)), t
    assert max(answers.values()) - min(answers.values()) <= 1, (t, answers)


def test_task_columns_match_the_examples(build):
  built = build('scene_vqa')
  task, ex = built.task, built.examples['validation']
  columns = task.columns['validation']
  tokenizer = task.tokenizers['question']
  answers, types = task.info['answers'], task.info['question_types']
  for i in range(len(ex['question'])):
    ids = columns['question'].array[i]
    assert tokenizer.decode(ids[ids != 0].tolist()) == ex['question'][i]
    assert answers[columns['label'].array[i]] == ex['answer'][i]
    assert types[columns['question_type'].array[i]] == ex['question_type'][i]
  assert task.info['num_classes'] == len(scene_vqa.ANSWERS)


def test_unknown_question_type_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="question_types must be distinct names.*'colour'"):
    data.load_task('scene_vqa', size='small', data_dir=str(tmp_path), question_types=['count', 'colour'])
  with pytest.raises(ValueError, match='question_types'):
    scene_vqa.questions('colour', [1, 2], [0, 4])


def test_questions_of_a_known_scene():
  labels, cells = [7, 3, 7, 1], [0, 2, 4, 8]  # 7 . 3 / . 7 . / . . 1: "the 7" names no single digit
  assert scene_vqa.questions('position', labels, cells) == [('where is the 3 ?', 'top right', [2]),
                                                            ('where is the 1 ?', 'bottom right', [8])]
  counts = {q: a for q, a, _ in scene_vqa.questions('count', labels, cells)}
  assert len(counts) == 8 and counts['how many digits are left of the 3 ?'] == '2'
  assert counts['how many digits are above the 1 ?'] == '3'
  assert scene_vqa.questions('relation', labels, cells) == []  # every unique anchor has 0 or 2+ digits each way
  labels = [7, 3, 5, 1]  # 7 . 3 / . 5 . / . . 1
  assert scene_vqa.questions('relation', labels, cells) == [('what digit is below the 5 ?', '1', [4, 8]),
                                                            ('what digit is left of the 5 ?', '7', [4, 0])]
  assert [a for _, a, _ in scene_vqa.questions('exists', labels, cells)] == \
      ['no', 'yes', 'no', 'yes', 'no', 'yes', 'no', 'yes', 'no', 'no']
