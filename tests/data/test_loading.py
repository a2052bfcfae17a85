"""load_task: names, splits, options, and caches that are corrupt."""

import logging
import os

import pytest

from attention_research import data
from attention_research.data import cache


def test_unknown_task_lists_known_ones(tmp_path):
  with pytest.raises(ValueError, match='number_translation') as e:
    data.load_task('no_such_task', data_dir=str(tmp_path))
  assert 'wmt14_translate/de-en' in str(e.value) and 'spoken_digits' in str(e.value)


def test_unknown_split_lists_known_ones(build):
  with pytest.raises(ValueError, match=r"\['train', 'validation', 'test'\]"):
    build('digits').task.batches('dev', batch_size=4)


def test_unknown_size_and_option(tmp_path):
  with pytest.raises(ValueError, match='small'):
    data.load_task('mqar', size='huge', data_dir=str(tmp_path))
  with pytest.raises(ValueError, match='num_kv_pairs'):
    data.load_task('mqar', size='small', data_dir=str(tmp_path), num_pairs=3)


def test_overrides_get_their_own_cache(tmp_path):
  task = data.load_task('mqar', size='small', data_dir=str(tmp_path), num_kv_pairs=2, num_queries=1,
                        num_train=16, num_validation=8, num_test=8)
  assert task.num_examples('train') == 16 and task.info['num_kv_pairs'] == 2
  assert os.listdir(tmp_path / 'mqar') != ['small']
  assert not os.path.exists(tmp_path / 'mqar' / 'small')


def _prepared_dir(data_dir, name='digits'):
  root = os.path.join(data_dir, name, 'small')
  return os.path.join(root, os.listdir(root)[0])


@pytest.mark.parametrize('target', ['record', 'dataset_info.json', 'metadata'])
def test_corrupt_cache_is_reported_and_rebuilt(tmp_path, canonical, caplog, target):
  name = 'digits' if target != 'metadata' else 'listops'
  first = data.load_task(name, size='small', data_dir=str(tmp_path))
  directory = _prepared_dir(str(tmp_path), name)
  if target == 'record':
    path = os.path.join(directory, next(f for f in os.listdir(directory) if 'train.tfrecord' in f))
    with open(path, 'r+b') as f:
      f.seek(100)
      f.write(b'\x00garbage\x00')
  elif target == 'dataset_info.json':
    with open(os.path.join(directory, 'dataset_info.json'), 'w') as f:
      f.write('{ not json')
  else:  # a vocabulary edited by hand must not be used silently
    path = os.path.join(directory, 'metadata.json')
    with open(path) as f:
      text = f.read()
    with open(path, 'w') as f:
      f.write(text.replace('[MAX', '[MAXIMUM'))
  with caplog.at_level(logging.ERROR):
    second = data.load_task(name, size='small', data_dir=str(tmp_path))
  assert any('Corrupt cache' in r.getMessage() and 'rebuilding' in r.getMessage() for r in caplog.records)
  for split in first.splits:
    a = next(first.batches(split, batch_size=8, shuffle=False))
    b = next(second.batches(split, batch_size=8, shuffle=False))
    assert all((a[k] == b[k]).all() for k in a)
  cache.check_manifest(_prepared_dir(str(tmp_path), name))  # the rebuilt cache is sound


def test_vocabulary_is_read_back_from_the_data_dir(build):
  built = build('listops')
  assert built.builder.info.metadata['tokenizer'] == built.task.tokenizer.to_json()


def _truncate_at_record_boundary(path, keep_fraction=0.5):
  """Cuts a tfrecord file after a whole record, so that every remaining record still passes its CRC."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
  size = sum(8 + 4 + len(r) + 4 for r in records[:int(len(records) * keep_fraction)])
  with open(path, 'r+b') as f:
    f.truncate(size)


@pytest.mark.parametrize('damage', ['truncated_record_without_manifest', 'deleted_dataset_info'])
def test_damage_that_passes_every_crc_is_rebuilt(tmp_path, caplog, damage):
  first = data.load_task('listops', size='small', data_dir=str(tmp_path))
  directory = _prepared_dir(str(tmp_path), 'listops')
  if damage == 'truncated_record_without_manifest':
    os.remove(os.path.join(directory, cache.MANIFEST))
    _truncate_at_record_boundary(os.path.join(directory, next(f for f in os.listdir(directory)
                                                               if 'train.tfrecord' in f)))
  else:
    os.remove(os.path.join(directory, 'dataset_info.json'))
  with caplog.at_level(logging.ERROR):
    second = data.load_task('listops', size='small', data_dir=str(tmp_path))
  assert any('Corrupt cache' in r.getMessage() and 'rebuilding' in r.getMessage() for r in caplog.records)
  assert second.num_examples('train') == first.num_examples('train')
  assert second.info['max_length'] == first.info['max_length']
  cache.check_manifest(_prepared_dir(str(tmp_path), 'listops'))
  caplog.clear()
  data.load_task('listops', size='small', data_dir=str(tmp_path))  # the rebuilt cache is used as it is
  assert not any('Corrupt cache' in r.getMessage() for r in caplog.records)


def test_a_cache_without_manifest_is_checked_before_it_is_trusted(tmp_path):
  data.load_task('mqar', size='small', data_dir=str(tmp_path))
  directory = _prepared_dir(str(tmp_path), 'mqar')
  os.remove(os.path.join(directory, cache.MANIFEST))
  cache.check_manifest(directory)  # intact: the manifest is written again
  assert os.path.exists(os.path.join(directory, cache.MANIFEST))
  os.remove(os.path.join(directory, cache.MANIFEST))
  _truncate_at_record_boundary(os.path.join(directory, next(f for f in os.listdir(directory) if 'test.tfrecord' in f)))
  with pytest.raises(cache.CorruptCacheError, match=r'test\.tfrecord.*records'):
    cache.check_manifest(directory)
  assert not os.path.exists(os.path.join(directory, cache.MANIFEST))  # never written over a damaged cache
