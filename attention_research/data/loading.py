"""`load_task`: one entry point for built-in tasks and public tfds datasets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from types import ModuleType

from attention_research.data import cache
from attention_research.data.task import Task


def _builtin_modules() -> dict[str, ModuleType]:
  from attention_research.data.builders import (compression, digit_scenes, digits, distorted_digits, entities,
                                                fuzzy_recall, listops, memorization, mqar, noisy_recall,
                                                number_phrases, number_translation, reports, scene_detection,
                                                scene_segmentation, scene_vqa, selective_copying, sentiment_reviews,
                                                span_qa, spoken_digits, story_qa)
  return {'number_translation': number_translation, 'number_phrases': number_phrases, 'mqar': mqar,
          'listops': listops, 'digits': digits, 'distorted_digits': distorted_digits,
          'digit_scenes': digit_scenes, 'scene_vqa': scene_vqa, 'spoken_digits': spoken_digits,
          'entities': entities, 'story_qa': story_qa, 'sentiment_reviews': sentiment_reviews, 'reports': reports,
          'selective_copying': selective_copying, 'fuzzy_recall': fuzzy_recall, 'noisy_recall': noisy_recall,
          'compression': compression, 'memorization': memorization, 'scene_segmentation': scene_segmentation,
          'scene_detection': scene_detection, 'span_qa': span_qa}


# The recall family (synthetic skill tasks of Zoology and MAD, token classification like mqar).
RECALL_TASKS = ('selective_copying', 'fuzzy_recall', 'noisy_recall', 'compression', 'memorization')
BUILTIN_TASKS = ('number_translation', 'number_phrases', 'mqar', 'listops', 'digits', 'distorted_digits',
                 'digit_scenes', 'scene_vqa', 'spoken_digits', 'entities', 'story_qa', 'sentiment_reviews', 'reports',
                 'scene_segmentation', 'scene_detection', 'span_qa') + RECALL_TASKS


def public_datasets() -> tuple[str, ...]:
  from attention_research.data import adapters
  return tuple(adapters.ADAPTERS)


def task_names() -> tuple[str, ...]:
  return BUILTIN_TASKS + public_datasets()


def builder_class(name: str):
  module = _builtin_modules()[name]
  return next(v for v in vars(module).values()
              if isinstance(v, type) and getattr(v, 'name', None) == name and hasattr(v, 'BUILDER_CONFIGS'))


def builtin_config(name: str, size: str = 'default', **overrides):
  """The BuilderConfig for `size`, with any config fields overridden.

  An override gets its own config name (size plus a digest of the
  overrides), so each variant has its own cache directory.
  """
  cls = builder_class(name)
  configs = {c.name: c for c in cls.BUILDER_CONFIGS}
  if size not in configs:
    raise ValueError(f'Unknown size {size!r} for {name}; known: {sorted(configs)}.')
  base = configs[size]
  fields = {f.name for f in dataclasses.fields(base)} - {
      'name', 'version', 'release_notes', 'supported_versions', 'description', 'tags'}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f'Unknown option(s) {unknown} for {name}; known: {sorted(fields)}.')
  if not overrides:
    return base
  overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
  digest = hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:12]
  return dataclasses.replace(base, name=f'{size}_{digest}',
                             description=f'{size} with {json.dumps(overrides, sort_keys=True, default=str)}',
                             **overrides)


def load_task(name: str, *, size: str = 'default', data_dir: str | None = None, **options) -> Task:
  """Loads a task into memory, building or checking its cache first.

  Built-in tasks are generated into `data_dir` on first use (seeded, offline);
  `options` override their config fields (seed, split sizes, lengths...).
  Public datasets must have been prepared in `data_dir` with tfds already;
  their `options` are listed in `attention_research.data.adapters`.
  """
  if name in BUILTIN_TASKS:
    module = _builtin_modules()[name]
    config = builtin_config(name, size, **options)
    builder, examples = cache.load_builtin(name, config, data_dir)
    return module.make_task(builder, examples)
  from attention_research.data import adapters
  if name in adapters.ADAPTERS:
    return adapters.load(name, size=size, data_dir=data_dir, **options)
  raise ValueError(f'Unknown task {name!r}; known: {list(task_names())}.')
