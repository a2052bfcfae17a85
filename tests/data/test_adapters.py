"""Public dataset adapters under tfds.testing.mock_data, and when nothing is prepared."""

import logging
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from attention_research import data
from attention_research.data import adapters

EXPECTED = {
    'wmt14_translate/de-en': ('seq2seq', {'inputs', 'targets'}),
    'cnn_dailymail': ('seq2seq', {'inputs', 'targets'}),
    'imdb_reviews': ('classification', {'inputs', 'label'}),
    'lm1b': ('lm', {'inputs'}),
    'mnist': ('classification', {'image', 'label'}),
    'cifar10': ('classification', {'image', 'label'}),
    'coco_captions': ('captioning', {'image', 'caption'}),
    'librispeech': ('asr', {'audio', 'audio_lengths', 'targets'}),
    'speech_commands': ('classification', {'audio', 'audio_lengths', 'label'}),
}


def test_every_public_dataset_has_an_adapter():
  assert set(adapters.ADAPTERS) == set(EXPECTED)
  assert set(data.task_names()) == set(data.BUILTIN_TASKS) | set(EXPECTED)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_adapter_under_mock_data(tmp_path, name):
  kind, keys = EXPECTED[name]
  with tfds.testing.mock_data(num_examples=12):
    task = data.load_task(name, size='small', data_dir=str(tmp_path))
  assert task.kind == kind
  assert task.splits == ('train', 'validation', 'test')
  it = task.batches('train', batch_size=4, seed=0)
  batch = next(it)
  assert set(batch) == keys
  assert all(v.shape[0] == 4 for v in batch.values())
  for key in ('inputs', 'targets', 'caption'):
    if key in batch:
      assert batch[key].dtype == np.int32 and batch[key].max() < task.info['vocab_size']
  for key in ('targets', 'caption'):
    if key in batch:
      lengths = (batch[key] != 0).sum(axis=1)
      assert all(row[n - 1] == task.info['eos_id'] for row, n in zip(batch[key], lengths))
  if 'image' in batch:
    assert batch['image'].dtype == np.float32 and batch['image'].shape[1:] == task.info['image_shape']
  if 'audio' in batch:
    assert batch['audio'].dtype == np.float32 and task.info['sample_rate'] == 16000
  if 'label' in batch:
    assert batch['label'].dtype == np.int32 and batch['label'].max() < task.info['num_classes']
  if task.tokenizer is not None:
    assert isinstance(task.tokenizer.decode(next(iter(batch.values()))[0]), str)


def test_text_tokenizer_is_saved_beside_the_data_and_reused(tmp_path, caplog):
  with tfds.testing.mock_data(num_examples=12):
    first = data.load_task('imdb_reviews', size='small', data_dir=str(tmp_path))
    tokenizer_dir = tmp_path / 'attention_research_tokenizers' / 'imdb_reviews'
    models = [os.path.join(root, f) for root, _, files in os.walk(tokenizer_dir) for f in files
              if f.endswith('.model')]
    assert len(models) == 1
    stamp = os.path.getmtime(models[0])
    again = data.load_task('imdb_reviews', size='small', data_dir=str(tmp_path))
    assert os.path.getmtime(models[0]) == stamp
    assert again.tokenizer.model_proto == first.tokenizer.model_proto
    with open(models[0], 'r+b') as f:
      f.write(b'corrupt')
    with caplog.at_level(logging.ERROR):
      rebuilt = data.load_task('imdb_reviews', size='small', data_dir=str(tmp_path))
  assert any('Corrupt tokenizer cache' in r.getMessage() for r in caplog.records)
  assert rebuilt.tokenizer.model_proto == first.tokenizer.model_proto  # retrained identically


@pytest.mark.parametrize('name', ['mnist', 'wmt14_translate/de-en', 'librispeech'])
def test_unprepared_dataset_says_how_to_prepare_it(tmp_path, name):
  with pytest.raises(adapters.DatasetNotPreparedError) as e:
    data.load_task(name, data_dir=str(tmp_path))
  message = str(e.value)
  assert f'tfds build {name} --data_dir={tmp_path}' in message
  assert 'never downloads' in message
  assert not any(os.scandir(tmp_path)), 'nothing is written or downloaded'


def test_adapter_options_are_checked(tmp_path):
  with pytest.raises(ValueError, match='max_examples'):
    data.load_task('mnist', data_dir=str(tmp_path), max_exemples=3)
  with pytest.raises(ValueError, match="'de' and 'en'"):
    with tfds.testing.mock_data(num_examples=4):
      data.load_task('wmt14_translate/de-en', size='small', data_dir=str(tmp_path), source='fr')
