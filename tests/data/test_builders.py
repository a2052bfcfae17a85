"""Properties every built-in builder must have, at `small` size."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from attention_research import data

BUILTIN = list(data.BUILTIN_TASKS)

EXPECTED_KIND = {'number_translation': 'seq2seq', 'number_phrases': 'seq2seq', 'mqar': 'token_classification',
                 'listops': 'classification', 'digits': 'classification', 'digit_scenes': 'captioning',
                 'scene_vqa': 'classification', 'distorted_digits': 'classification', 'spoken_digits': 'asr',
                 'entities': 'token_classification', 'story_qa': 'classification',
                 'sentiment_reviews': 'classification', 'reports': 'seq2seq', 'scene_segmentation': 'segmentation',
                 'scene_detection': 'detection', 'span_qa': 'span_qa',
                 **{name: 'token_classification' for name in data.loading.RECALL_TASKS}}
# Splits beyond train / validation / test, and the config field of their size.
EXTRA_SPLITS = {'entities': {'test_ood': 'num_test_ood'}, 'story_qa': {'test_ood': 'num_test_ood'},
                'number_phrases': {'test_long': 'num_test_long'}, 'sentiment_reviews': {'test_ood': 'num_test_ood'},
                'reports': {'test_ood': 'num_test_ood'}, 'span_qa': {'test_ood': 'num_test_ood'}}

# Batch key -> (dtype, rank) per task, from the documented batch formats.
EXPECTED_BATCH = {
    'number_translation': {'inputs': (np.int32, 2), 'targets': (np.int32, 2)},
    'number_phrases': {'inputs': (np.int32, 2), 'targets': (np.int32, 2), 'alignment': (np.int32, 2)},
    'mqar': {'inputs': (np.int32, 2), 'targets': (np.int32, 2)},
    'listops': {'inputs': (np.int32, 2), 'label': (np.int32, 1)},
    'digits': {'image': (np.float32, 4), 'label': (np.int32, 1)},
    'distorted_digits': {'image': (np.float32, 4), 'label': (np.int32, 1), 'affine': (np.float32, 3)},
    'digit_scenes': {'image': (np.float32, 4), 'caption': (np.int32, 2), 'digit_labels': (np.int32, 2),
                     'digit_cells': (np.int32, 2), 'token_cells': (np.int32, 2)},
    'scene_vqa': {'image': (np.float32, 4), 'question': (np.int32, 2), 'label': (np.int32, 1),
                  'question_type': (np.int32, 1), 'question_cells': (np.int32, 2)},
    'spoken_digits': {'audio': (np.float32, 2), 'audio_lengths': (np.int32, 1), 'targets': (np.int32, 2)},
    'entities': {'inputs': (np.int32, 2), 'targets': (np.int32, 2)},
    'story_qa': {'story': (np.int32, 3), 'question': (np.int32, 2), 'support': (np.int32, 2),
                 'inputs': (np.int32, 2), 'label': (np.int32, 1)},
    'sentiment_reviews': {'inputs': (np.int32, 2), 'sentiment': (np.int32, 2), 'label': (np.int32, 1)},
    'reports': {'inputs': (np.int32, 2), 'targets': (np.int32, 2)},
    'scene_segmentation': {'image': (np.float32, 4), 'mask': (np.int32, 3)},
    'scene_detection': {'image': (np.float32, 4), 'boxes': (np.float32, 3), 'labels': (np.int32, 2)},
    'span_qa': {'inputs': (np.int32, 2), 'support': (np.int32, 2), 'offset': (np.int32, 1), 'start': (np.int32, 1),
                'end': (np.int32, 1), 'question_type': (np.int32, 1)},
    **{name: {'inputs': (np.int32, 2), 'targets': (np.int32, 2)} for name in data.loading.RECALL_TASKS},
}

# A field whose value identifies an example, to check that splits do not overlap.
IDENTITY = {'number_translation': 'number', 'number_phrases': 'source', 'mqar': 'inputs', 'listops': 'expression',
            'digits': 'index', 'digit_scenes': 'image', 'scene_vqa': 'image', 'distorted_digits': 'image',
            'spoken_digits': 'digits', 'entities': 'text', 'story_qa': 'story', 'sentiment_reviews': 'text',
            'reports': 'report', 'scene_segmentation': 'image', 'scene_detection': 'image', 'span_qa': 'passage',
            **{name: 'inputs' for name in data.loading.RECALL_TASKS}}


def _key(value):
  return value if isinstance(value, str) else np.asarray(value).tobytes()


def test_registered_with_tfds():
  names = set(tfds.list_builders(with_community_datasets=False))
  assert set(BUILTIN) <= names


@pytest.mark.parametrize('name', BUILTIN)
def test_configs_small_and_default(name):
  configs = {c.name: c for c in tfds.builder_cls(name).BUILDER_CONFIGS}
  assert {'small', 'default'} <= set(configs)
  small, default = configs['small'], configs['default']
  assert small.num_train <= default.num_train


@pytest.mark.parametrize('name', BUILTIN)
def test_splits_sizes_and_features(build, name):
  built = build(name)
  config = built.builder.builder_config
  extra = EXTRA_SPLITS.get(name, {})
  assert set(built.examples) == {'train', 'validation', 'test'} | set(extra)
  sizes = {'train': config.num_train, 'validation': config.num_validation, 'test': config.num_test,
           **{split: getattr(config, field) for split, field in extra.items()}}
  for split, columns in built.examples.items():
    assert set(columns) == set(built.builder.info.features)
    assert all(len(v) == sizes[split] for v in columns.values())
  task = built.task
  assert task.kind == EXPECTED_KIND[name]
  assert task.splits == ('train', 'validation', 'test') + tuple(extra)
  assert task.info['pad_id'] == 0


@pytest.mark.parametrize('name', BUILTIN)
def test_batch_format(build, name):
  task = build(name).task
  batch = next(task.batches('train', batch_size=8))
  assert set(batch) == set(EXPECTED_BATCH[name])
  for key, (dtype, rank) in EXPECTED_BATCH[name].items():
    assert batch[key].dtype == dtype, key
    assert batch[key].ndim == rank, key
    assert batch[key].shape[0] == 8
  # pad='max' gives one shape for every batch of every split.
  other = next(task.batches('test', batch_size=8, seed=3))
  assert {k: v.shape for k, v in batch.items()} == {k: v.shape for k, v in other.items()}
  if 'image' in batch:
    assert batch['image'].shape[1:] == tuple(task.info['image_shape'])
    assert 0.0 <= batch['image'].min() and batch['image'].max() <= 1.0
  for key in ('targets', 'caption'):
    if key in batch and task.kind != 'token_classification':
      # Every target row ends with EOS, then only padding.
      for row in batch[key]:
        n = int((row != 0).sum())
        assert row[n - 1] == task.info['eos_id'] and (row[n:] == 0).all()


@pytest.mark.parametrize('name', BUILTIN)
def test_same_seed_gives_identical_data(build, canonical, name):
  first, second = build(name, seed=0, copy=0), build(name, seed=0, copy=1)
  assert first.data_dir != second.data_dir
  assert canonical(first.examples) == canonical(second.examples)


@pytest.mark.parametrize('name', BUILTIN)
def test_other_seed_gives_other_data(build, canonical, name):
  a, b = canonical(build(name, seed=0).examples), canonical(build(name, seed=1).examples)
  for split in a:
    assert a[split] != b[split], split


@pytest.mark.parametrize('name', BUILTIN)
def test_splits_do_not_overlap(build, name):
  examples = build(name).examples
  field = IDENTITY[name]
  keys = {split: {_key(v) for v in columns[field]} for split, columns in examples.items()}
  assert len(keys['train']) == len(examples['train'][field])  # no duplicates inside train either
  assert not keys['train'] & keys['validation']
  assert not keys['train'] & keys['test']
  assert not keys['validation'] & keys['test']
  for split in EXTRA_SPLITS.get(name, {}):
    assert not keys[split] & (keys['train'] | keys['validation'] | keys['test'])


def test_tfds_load_reads_the_prepared_dataset(build):
  built = build('mqar')
  ds = tfds.load('mqar/small', split='validation', data_dir=str(built.data_dir), download=False)
  assert sum(1 for _ in ds) == built.builder.builder_config.num_validation
