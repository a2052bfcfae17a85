"""Preparing built-in datasets in a data_dir, and refusing corrupt caches.

After a build, a manifest of file digests is written beside the tfds files.
A later load re-checks it; a mismatch, an unreadable dataset_info.json or a
record that fails its CRC is reported as an error naming the directory, and
the dataset is rebuilt from its seed instead of being used silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

logger = logging.getLogger(__name__)

MANIFEST = 'attention_research_manifest.json'


class CorruptCacheError(RuntimeError):
  pass


def default_data_dir() -> str:
  return os.path.expanduser(os.environ.get('TFDS_DATA_DIR', '~/tensorflow_datasets'))


def _digest(path: str) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def _files(directory: str) -> list[str]:
  return sorted(f for f in os.listdir(directory) if f != MANIFEST and os.path.isfile(os.path.join(directory, f)))


def write_manifest(directory: str) -> None:
  manifest = {f: _digest(os.path.join(directory, f)) for f in _files(directory)}
  tmp = os.path.join(directory, MANIFEST + '.tmp')
  with open(tmp, 'w') as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
  os.replace(tmp, os.path.join(directory, MANIFEST))


def check_manifest(directory: str) -> None:
  path = os.path.join(directory, MANIFEST)
  if not os.path.exists(path):
    # Prepared outside load_task (e.g. `tfds build`): trust it once, then guard it.
    write_manifest(directory)
    return
  try:
    with open(path) as f:
      manifest = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise CorruptCacheError(f'{path} is unreadable: {e}') from e
  present = set(_files(directory))
  missing = sorted(set(manifest) - present)
  if missing:
    raise CorruptCacheError(f'{directory} lacks {missing}.')
  changed = sorted(f for f, digest in manifest.items() if _digest(os.path.join(directory, f)) != digest)
  if changed:
    raise CorruptCacheError(f'{directory}: {changed} differ from the digests recorded when it was built.')


def _variant_dir(data_dir: str, name: str, config) -> str:
  version = str(config.version or '1.0.0')
  return os.path.join(data_dir, name, config.name, version)


def _to_numpy_list(tensor, feature) -> list:
  """A batch of one feature as a list with one numpy value (or str) per example."""
  if isinstance(tensor, tf.RaggedTensor):
    values, splits = tensor.flat_values.numpy(), tensor.row_splits.numpy()
    return np.split(values, splits[1:-1])
  array = tensor.numpy()
  if isinstance(feature, tfds.features.Text):
    return [v.decode('utf-8') for v in array]
  return list(array)


def read_splits(builder, batch_size: int = 4096) -> dict[str, dict[str, list]]:
  """All splits as {split: {feature: [value per example]}}, numpy values.

  Reads in ragged batches: one tf.data step per example would dominate
  load time for tens of thousands of small examples.
  """
  features = builder.info.features
  out = {}
  for split in builder.info.splits:
    columns: dict[str, list] = {key: [] for key in features}
    ds = builder.as_dataset(split=split, shuffle_files=False).ragged_batch(batch_size)
    for batch in ds:
      for key in features:
        columns[key].extend(_to_numpy_list(batch[key], features[key]))
    out[split] = columns
  return out


def _load(name: str, config, data_dir: str):
  try:
    # tfds reads dataset_info.json here when it finds a prepared directory.
    builder = tfds.builder(name, config=config, data_dir=data_dir)
  except Exception as e:  # json, protobuf and file errors alike; pylint: disable=broad-except
    if os.path.isdir(_variant_dir(data_dir, name, config)):
      raise CorruptCacheError(f'could not read the dataset info: {type(e).__name__}: {e}') from e
    raise
  if not builder.is_prepared():
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        compute_stats=tfds.download.ComputeStatsMode.SKIP))
    write_manifest(str(builder.data_path))
  check_manifest(str(builder.data_path))
  try:
    examples = read_splits(builder)
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
    raise CorruptCacheError(f'a record could not be read: {e}') from e
  return builder, examples


def load_builtin(name: str, config, data_dir: str | None):
  """Builds (if needed) and reads a built-in dataset; rebuilds a corrupt cache."""
  data_dir = data_dir or default_data_dir()
  try:
    return _load(name, config, data_dir)
  except CorruptCacheError as e:
    variant = _variant_dir(data_dir, name, config)
    logger.error('Corrupt cache for %s/%s at %s (%s). Deleting it and rebuilding from seed %s.',
                 name, config.name, variant, e, getattr(config, 'seed', None))
    shutil.rmtree(variant, ignore_errors=True)
    return _load(name, config, data_dir)

