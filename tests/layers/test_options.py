"""freeze_options: the one conversion of variant options into a hashable mapping."""

import pytest

from attention_research.layers.options import freeze_options


def test_mappings_and_pairs_freeze_to_the_same_hashable_mapping():
  a = freeze_options({'window': [2, 3], 'normalizer': 'softmax'})
  b = freeze_options([('normalizer', 'softmax'), ('window', (2, 3))])
  assert a == b and hash(a) == hash(b) and a['window'] == (2, 3)
  assert freeze_options(None) == freeze_options({}) == {}


def test_bad_options_raise():
  with pytest.raises(ValueError, match='attention_options must be a mapping'):
    freeze_options([1, 2], 'attention_options')
