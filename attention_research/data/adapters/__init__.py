"""Adapters from public tfds datasets to the batch formats of the built-in tasks.

Each dataset must already be prepared in data_dir (see DatasetNotPreparedError
for how). size='default' reads whole splits; size='small' caps every split
at 1000 examples and shrinks the vocabulary, for quick runs. Any default
option below can be overridden through load_task(name, **options).
Datasets without a validation split get one from the end of train.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from attention_research.data.adapters import speech, text, vision
from attention_research.data.adapters._public import DatasetNotPreparedError, PublicData
from attention_research.data.task import Task

_TRAIN_VALID_TEST = {'train': 'train', 'validation': 'validation', 'test': 'test'}
_SMALL = {'max_examples': 1000}
_SPM = {'vocab_size': 8000, 'spm_max_sentences': 1_000_000}
_SPM_SMALL = {'vocab_size': 1000}


@dataclasses.dataclass(frozen=True)
class Adapter:
  build: Callable[[PublicData, dict], Task]
  splits: dict
  options: dict
  small: dict


ADAPTERS: dict[str, Adapter] = {
    'wmt14_translate/de-en': Adapter(
        text.wmt14, _TRAIN_VALID_TEST,
        {**_SPM, 'vocab_size': 32000, 'source': 'en', 'target': 'de', 'max_input_length': 256,
         'max_target_length': 256}, {**_SMALL, **_SPM_SMALL}),
    'cnn_dailymail': Adapter(
        text.cnn_dailymail, _TRAIN_VALID_TEST,
        {**_SPM, 'vocab_size': 32000, 'max_input_length': 512, 'max_target_length': 128}, {**_SMALL, **_SPM_SMALL}),
    'imdb_reviews': Adapter(
        text.imdb_reviews, {'train': 'train[:90%]', 'validation': 'train[90%:]', 'test': 'test'},
        {**_SPM, 'max_length': 512}, {**_SMALL, **_SPM_SMALL}),
    'lm1b': Adapter(
        text.lm1b, {'train': 'train[:99%]', 'validation': 'train[99%:]', 'test': 'test'},
        {**_SPM, 'vocab_size': 32000, 'max_length': 128}, {**_SMALL, **_SPM_SMALL}),
    'mnist': Adapter(
        vision.mnist, {'train': 'train[:90%]', 'validation': 'train[90%:]', 'test': 'test'}, {}, _SMALL),
    'cifar10': Adapter(
        vision.cifar10, {'train': 'train[:90%]', 'validation': 'train[90%:]', 'test': 'test'}, {}, _SMALL),
    'coco_captions': Adapter(
        vision.coco_captions, {'train': 'train', 'validation': 'val', 'test': 'test'},
        {**_SPM, 'image_size': 64, 'max_caption_length': 32}, {**_SMALL, **_SPM_SMALL}),
    'librispeech': Adapter(
        speech.librispeech, {'train': 'train_clean100', 'validation': 'dev_clean', 'test': 'test_clean'},
        {'max_target_length': 600}, _SMALL),
    'speech_commands': Adapter(speech.speech_commands, _TRAIN_VALID_TEST, {}, _SMALL),
}


def load(name: str, *, size: str = 'default', data_dir: str | None = None, **options) -> Task:
  adapter = ADAPTERS[name]
  if size not in ('default', 'small'):
    raise ValueError(f"Unknown size {size!r} for {name}; known: ['default', 'small'].")
  defaults = {'max_examples': None, **adapter.options, **(adapter.small if size == 'small' else {})}
  unknown = sorted(set(options) - set(defaults))
  if unknown:
    raise ValueError(f'Unknown option(s) {unknown} for {name}; known: {sorted(defaults)}.')
  opts = {**defaults, **options}
  data = PublicData(name, data_dir, adapter.splits, opts['max_examples'])
  return adapter.build(data, opts)


__all__ = ['ADAPTERS', 'Adapter', 'DatasetNotPreparedError', 'load']
