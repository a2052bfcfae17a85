"""Opening a public tfds dataset that must already be prepared, never downloading it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

import tensorflow as tf
import tensorflow_datasets as tfds

from attention_research.data import cache


class DatasetNotPreparedError(FileNotFoundError):
  """A public dataset is missing from data_dir; the message says how to prepare it."""


_EXTRA_HINTS = {
    'librispeech': 'Its tfds builder generates with Apache Beam: add --beam_pipeline_options="runner=DirectRunner" '
                   '(pip install apache-beam).',
    'coco_captions': 'This downloads about 20 GB of COCO 2014 images.',
}


def not_prepared_message(name: str, data_dir: str, detail: str = '') -> str:
  hint = _EXTRA_HINTS.get(name.split('/')[0], '')
  return (f'Public dataset {name!r} is not prepared in {data_dir!r}{f" ({detail})" if detail else ""}. '
          'attention_research never downloads at run time. Prepare it once on a machine with network access:\n'
          f'    tfds build {name} --data_dir={data_dir}\n'
          f"or in Python: tfds.builder('{name}', data_dir='{data_dir}').download_and_prepare()\n"
          f'then call load_task again (copy the directory if you prepared it elsewhere). {hint}').strip()


class PublicData:
  """A prepared public dataset, read split by split with an optional cap."""

  def __init__(self, name: str, data_dir: str | None, split_map: Mapping[str, str], max_examples: int | None):
    self.name = name
    self.data_dir = data_dir or cache.default_data_dir()
    self.split_map = dict(split_map)
    self.max_examples = max_examples
    self.builder = tfds.builder(name, data_dir=self.data_dir)
    for split, expression in self.split_map.items():
      try:
        # as_dataset checks the files exist and fails at once if they do not;
        # download_and_prepare is never called here.
        self.builder.as_dataset(split=expression)
      except (AssertionError, FileNotFoundError, tfds.core.DatasetNotFoundError, tf.errors.NotFoundError) as e:
        raise DatasetNotPreparedError(not_prepared_message(name, self.data_dir, f'split {split!r}: {e}')) from e
      except ValueError as e:
        raise DatasetNotPreparedError(not_prepared_message(name, self.data_dir, f'split {expression!r}: {e}')) from e

  @property
  def version(self) -> str:
    return str(self.builder.info.version)

  @property
  def features(self):
    return self.builder.info.features

  def cache_dir(self) -> str:
    """Where tokenizers trained on this dataset are kept (beside the data, not in tfds' own tree)."""
    return os.path.join(self.data_dir, 'attention_research_tokenizers', self.name.replace('/', '__'), self.version)

  def examples(self, split: str, preprocess: Callable | None = None) -> Iterator[dict]:
    ds = self.builder.as_dataset(split=self.split_map[split], shuffle_files=False)
    if self.max_examples is not None:
      ds = ds.take(self.max_examples)
    if preprocess is not None:
      ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return iter(tfds.as_numpy(ds.prefetch(tf.data.AUTOTUNE)))

  def read(self, split: str, fn: Callable[[dict], dict], preprocess: Callable | None = None) -> dict[str, list]:
    """{key: [value per example]} from fn(example) over the split."""
    out: dict[str, list] = {}
    for example in self.examples(split, preprocess):
      for key, value in fn(example).items():
        out.setdefault(key, []).append(value)
    return out


def text(value) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)
