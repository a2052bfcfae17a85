"""Preparing built-in datasets in a data_dir, and refusing corrupt caches.

After a build, a manifest of file digests is written beside the tfds files.
A later load re-checks it; a mismatch, a missing or unreadable
dataset_info.json, a tfrecord shard whose record count differs from the one
dataset_info.json records (a file cut at a record boundary passes every CRC),
or a record that fails its CRC is reported as an error naming the file, and
the dataset is rebuilt from its seed instead of being used silently. A cache
without a manifest (prepared by `tfds build`, or a lost manifest) gets one only
after its record counts validate.
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


def _count_records(path: str) -> int:
  """Records in a tfrecord file, walking the length headers; a file that ends inside a record is corrupt."""
  count, size = 0, os.path.getsize(path)
  with open(path, 'rb') as f:
    while (offset := f.tell()) < size:
      header = f.read(8)
      if len(header) < 8:
        raise CorruptCacheError(f'{path} ends inside the header of record {count} (byte {offset}).')
      end = offset + 12 + int.from_bytes(header, 'little') + 4  # length, its CRC, the data, the data's CRC
      if end > size:
        raise CorruptCacheError(f'{path} ends inside record {count} (byte {offset} of {size}).')
      f.seek(end)
      count += 1
  return count


def check_record_counts(directory: str) -> None:
  """Every split's shards exist and hold the number of records dataset_info.json says they do."""
  info_path = os.path.join(directory, 'dataset_info.json')
  try:
    with open(info_path) as f:
      info = json.load(f)
  except FileNotFoundError as e:
    raise CorruptCacheError(f'{info_path} is missing.') from e
  except (OSError, json.JSONDecodeError) as e:
    raise CorruptCacheError(f'{info_path} is unreadable: {e}') from e
  for split in info.get('splits', []):
    lengths = [int(n) for n in split.get('shardLengths', [])]
    shards = sorted(f for f in _files(directory) if f'-{split["name"]}.tfrecord-' in f)
    if len(shards) != len(lengths):
      raise CorruptCacheError(f'{directory}: split {split["name"]!r} has shards {shards}, but {info_path} '
                              f'lists {len(lengths)}.')
    for shard, expected in zip(shards, lengths):
      found = _count_records(os.path.join(directory, shard))
      if found != expected:
        raise CorruptCacheError(f'{os.path.join(directory, shard)} holds {found} records, {info_path} '
                                f'records {expected}.')


def write_manifest(directory: str) -> None:
  manifest = {f: _digest(os.path.join(directory, f)) for f in _files(directory)}
  tmp = os.path.join(directory, MANIFEST + '.tmp')
  with open(tmp, 'w') as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
  os.replace(tmp, os.path.join(directory, MANIFEST))


def check_manifest(directory: str) -> None:
  path = os.path.join(directory, MANIFEST)
  if not os.path.exists(path):
    # Prepared outside load_task (e.g. `tfds build`) or the manifest was lost: guard it from now on, but only
    # after its records are counted, so that a manifest is never written over a damaged cache.
    check_record_counts(directory)
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
  check_record_counts(directory)  # also guards a manifest written by hand or by an older version


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
  variant = _variant_dir(data_dir, name, config)
  if os.path.isdir(variant):
    # Before tfds looks at it: without dataset_info.json tfds prepares again into the same directory and
    # leaves the dataset's metadata (vocabularies, lengths) unread.
    check_manifest(variant)
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
  except tf.errors.OpError as e:  # DataLoss (CRC), InvalidArgument (parse), FailedPrecondition (counts)
    raise CorruptCacheError(f'a record could not be read: {type(e).__name__}: {e}') from e
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

