"""Public image datasets: mnist, cifar10 (classification), coco_captions (captioning)."""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf

from attention_research.data.adapters import spm
from attention_research.data.adapters._public import PublicData, text
from attention_research.data.pipeline import Dense, Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import encode_all


def _classification(name: str, data: PublicData) -> Task:
  columns = {}
  for split in data.split_map:
    ex = data.read(split, lambda e: {'image': e['image'], 'label': int(e['label'])})
    columns[split] = {'image': Dense(np.stack(ex['image']) if ex else np.zeros((0, *data.features['image'].shape),
                                                                                 np.uint8),
                                     dtype=np.float32, scale=1 / 255),
                      'label': Dense(np.asarray(ex.get('label', []), np.int32))}
  info = {'num_classes': data.features['label'].num_classes, 'image_shape': tuple(data.features['image'].shape),
          'pad_id': 0, 'metrics': ('accuracy',)}
  return Task(name=name, kind='classification', info=info, tokenizers={}, columns=columns)


def mnist(data: PublicData, opts: dict) -> Task:
  del opts
  return _classification('mnist', data)


def cifar10(data: PublicData, opts: dict) -> Task:
  del opts
  return _classification('cifar10', data)


def coco_captions(data: PublicData, opts: dict) -> Task:
  """Images resized to image_size x image_size, each with its first caption."""
  size = opts['image_size']

  def preprocess(example):
    image = tf.image.resize(example['image'], (size, size), antialias=True)
    return {'image': tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8),
            'caption': example['captions']['text'][0]}

  def sentences():
    stream = (text(ex['caption']).lower() for ex in data.examples('train', preprocess))
    return itertools.islice(stream, opts['spm_max_sentences'])

  settings = {'dataset': data.name, 'version': data.version, 'fields': ('captions/text[0]',),
              'split': data.split_map['train'], 'max_examples': data.max_examples,
              'max_sentences': opts['spm_max_sentences']}
  tokenizer = spm.load_or_train(data.cache_dir(), settings, sentences, vocab_size=opts['vocab_size'])
  columns = {}
  for split in data.split_map:
    ex = data.read(split, lambda e: {'image': e['image'], 'caption': text(e['caption']).lower()}, preprocess)
    columns[split] = {
        'image': Dense(np.stack(ex['image']) if ex else np.zeros((0, size, size, 3), np.uint8), dtype=np.float32,
                       scale=1 / 255),
        'caption': Ragged(encode_all(tokenizer, ex.get('caption', []), add_eos=True,
                                     max_length=opts['max_caption_length']), dtype=np.int32),
    }
  lengths = pad_lengths(columns)
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'image_shape': (size, size, 3), 'max_caption_length': lengths['caption'], 'pad_lengths': lengths,
          'metrics': ('bleu',)}
  return Task(name='coco_captions', kind='captioning', info=info, tokenizers={'caption': tokenizer},
              columns=columns, length_key='caption')
