"""entities at test size: deterministic, disjoint splits, well-formed BIO tags, unseen names in test_ood."""

import numpy as np
import pytest

from attention_research.data import cache, loading
from attention_research.data.builders import entities


def _well_formed(tags):
  """Every I-X continues a B-X or I-X (IOB2)."""
  prev = 'O'
  for tag in tags:
    if tag.startswith('I-') and prev[2:] != tag[2:]:
      return False
    prev = tag
  return True


def _spans(words, tags):
  out, current = [], None
  for w, t in zip(words, tags):
    if t.startswith('B-') or t == 'O':
      if current:
        out.append(current)
      current = (t[2:], [w]) if t != 'O' else None
    else:
      current[1].append(w)
  return out + ([current] if current else [])


def test_bio_tags_are_well_formed_and_align_with_words(build):
  built = build('entities')
  for split, ex in built.examples.items():
    assert len(ex['text']) == {'train': 200}.get(split, 40)
    for text, tags in zip(ex['text'], ex['tags']):
      words = text.split(' ')
      names = [entities.TAGS[t] for t in tags]
      assert len(words) == len(names) and _well_formed(names), (text, names)
      assert any(n != 'O' for n in names)
  assert not _well_formed(['O', 'I-PER']) and not _well_formed(['B-LOC', 'I-PER'])


def test_deterministic_and_splits_disjoint(build, canonical, tmp_path):
  built = build('entities')
  _, again = cache.load_builtin('entities', loading.builtin_config('entities', 'small'), str(tmp_path))
  assert canonical(again) == canonical(built.examples)
  texts = {split: set(ex['text']) for split, ex in built.examples.items()}
  assert set(texts) == {'train', 'validation', 'test', 'test_ood'}
  for a in texts:
    for b in texts:
      assert a == b or not texts[a] & texts[b]
  other = build('entities', seed=1)
  assert canonical(other.examples) != canonical(built.examples)


def test_ambiguous_names_are_persons_and_places(build):
  seen = {}
  for text, tags in zip(build('entities').examples['train']['text'], build('entities').examples['train']['tags']):
    for kind, words in _spans(text.split(' '), [entities.TAGS[t] for t in tags]):
      if len(words) == 1 and words[0] in entities.AMBIGUOUS:
        seen.setdefault(words[0], set()).add(kind)
  assert any(kinds >= {'PER', 'LOC'} for kinds in seen.values()), seen


def test_ood_names_are_unseen_and_sentences_longer(build):
  built = build('entities')
  ex = built.examples
  train_words = {w for t in ex['train']['text'] for w in t.split(' ')}
  for text, tags in zip(ex['test_ood']['text'], ex['test_ood']['tags']):
    for kind, words in _spans(text.split(' '), [entities.TAGS[t] for t in tags]):
      if kind != 'DATE':
        assert not set(words) & train_words or words[0] in entities.OOD_AMBIGUOUS, (kind, words)
  mean = lambda split: np.mean([len(t.split(' ')) for t in ex[split]['text']])
  assert mean('test_ood') > 1.5 * mean('test')
  task = built.task
  unk = task.tokenizers['inputs'].unk_id
  col = task.columns['test_ood']['inputs']
  assert (col.values == unk).mean() > 0.1
  assert not (task.columns['train']['inputs'].values == unk).any()
  assert task.info['num_classes'] == len(entities.TAGS) + 1


def test_vocabulary_is_saved_beside_the_data(build):
  built = build('entities')
  tok = built.task.tokenizers['inputs']
  assert built.builder.info.metadata['tags'] == list(entities.TAGS)
  text = built.examples['train']['text'][0]
  assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize('overrides, match', [({'ambiguous_rate': 0.9}, 'ambiguous_rate'),
                                              ({'ood_clauses': (3, 2)}, 'ood_clauses'),
                                              ({'num_test_ood': 0}, 'test_ood size')])
def test_bad_options_are_value_errors(overrides, match, tmp_path):
  config = loading.builtin_config('entities', 'small', **overrides)
  with pytest.raises(ValueError, match=match):
    cache.load_builtin('entities', config, str(tmp_path))
