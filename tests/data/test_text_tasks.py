"""number_translation, mqar and listops: the content is what the issue says it is."""

import numpy as np
import pytest

from attention_research import data
from attention_research.data.builders import listops, mqar, number_translation


def test_number_translation_pairs_are_num2words(build):
  ex = build('number_translation').examples['train']
  for n, en, de in list(zip(ex['number'], ex['en'], ex['de']))[:100]:
    assert en == number_translation.english(int(n))
    assert de == number_translation.german(int(n))
  digit_counts = {len(str(int(n))) for n in ex['number']}
  assert len(digit_counts) >= 4, 'numbers should cover several digit counts, not only 6-digit ones'


def test_number_translation_tokenizers_round_trip_and_reorder(build):
  task = build('number_translation').task
  en, de = task.tokenizers['inputs'], task.tokenizers['targets']
  for n in (0, 7, 23, 101, 1100, 123456, 200017, 999999):
    assert en.decode(en.encode(number_translation.english(n))) == number_translation.english(n)
    assert de.decode(de.encode(number_translation.german(n))) == number_translation.german(n)
    assert de.unk_id not in de.encode(number_translation.german(n))
  # German puts the units first: the reordering alignments should show.
  assert en.pieces('twenty-three') == ['twenty', '-', 'three']
  assert de.pieces('dreiundzwanzig') == ['drei', 'und', 'zwanzig']
  batch = next(task.batches('validation', batch_size=4, shuffle=False))
  assert de.decode(batch['targets'][0]) in build('number_translation').examples['validation']['de']


def test_number_translation_impossible_size_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match='only 100 exist'):
    data.load_task('number_translation', size='small', data_dir=str(tmp_path), max_number=99, num_train=90,
                   num_validation=10, num_test=10)


def test_mqar_targets_are_the_bound_values(build):
  task = build('mqar').task
  config = build('mqar').builder.builder_config
  batch = next(task.batches('train', batch_size=32))
  context = 2 * config.num_kv_pairs
  for inputs, targets in zip(batch['inputs'], batch['targets']):
    binding = dict(zip(inputs[0:context:2].tolist(), inputs[1:context:2].tolist()))
    assert len(binding) == config.num_kv_pairs  # distinct keys
    queries = np.flatnonzero(targets)
    assert len(queries) == config.num_queries
    assert (queries >= context).all()
    for q in queries:
      assert targets[q] == binding[inputs[q]]
  assert (batch['inputs'] > 0).all(), 'pad id 0 never appears inside an mqar sequence'


@pytest.mark.parametrize('overrides, message', [
    ({'num_queries': 9, 'num_kv_pairs': 8}, 'num_queries'),
    ({'vocab_size': 10, 'num_kv_pairs': 8}, 'vocab_size'),
    ({'seq_len': 20, 'num_kv_pairs': 8, 'num_queries': 8}, 'room'),
])
def test_mqar_impossible_configs(overrides, message):
  config = mqar.MqarConfig(name='x', **overrides)
  with pytest.raises(ValueError, match=message):
    config.check()


def test_listops_labels_and_lengths(build):
  built = build('listops')
  config = built.builder.builder_config
  vocabulary = set(built.task.tokenizer.tokens)
  labels = []
  for split, ex in built.examples.items():
    for expression, label in zip(ex['expression'], ex['label']):
      tokens = expression.split()
      assert config.min_length <= len(tokens) <= config.max_length
      assert set(tokens) <= vocabulary
      assert listops.evaluate(expression) == label
      labels.append(label)
  assert len(set(labels)) >= 5
  assert built.task.info['num_classes'] == 10


def test_listops_lra_lengths_are_configurable():
  gen = listops._Uniforms(np.random.default_rng(0))
  lengths = []
  while len(lengths) < 5:
    try:
      tokens, _ = listops.generate(gen, max_depth=10, max_args=10, max_length=2000)
    except listops._TooLong:
      continue
    if len(tokens) >= 500:
      lengths.append(len(tokens))
  assert all(500 <= n <= 2000 for n in lengths)
