"""TensorBoard scalars through TensorFlow's own event writer (tf.summary.create_file_writer).

tf.summary.scalar lives in the separate `tensorboard` package, which the runs do not need; tf.summary.write
with the scalars plugin's metadata writes the same events with TensorFlow alone.
"""

from __future__ import annotations

import os


def _scalar_metadata():
  from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
  return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'))


class SummaryWriter:
  """Appends scalar events to an events.out.tfevents.* file in a directory."""

  def __init__(self, logdir: str):
    # TensorFlow is imported when the first writer is made: importing it costs seconds, which a process
    # that only reads results should not pay.
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._tf = tf
    os.makedirs(logdir, exist_ok=True)
    self._writer = tf.summary.create_file_writer(logdir)
    self._metadata = _scalar_metadata()

  def scalars(self, step: int, values: dict[str, float]):
    tf = self._tf
    with self._writer.as_default():
      for tag, value in values.items():
        tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=self._metadata)

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()
