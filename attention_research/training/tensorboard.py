"""A minimal TensorBoard scalar writer: event files as TFRecords of `Event` protos, encoded by hand.

TensorFlow's tf.summary needs the `tensorboard` package for scalars, and importing TensorFlow costs
seconds per process; the event format is small and stable, so it is written here directly.
Wire format: record = len (u64 le) | masked crc32c(len) | Event bytes | masked crc32c(Event bytes);
Event{1: wall_time double, 2: step int64, 3: file_version string, 5: Summary{1: Value{1: tag, 2: simple_value float}}}.
"""

from __future__ import annotations

import os
import socket
import struct
import time

_CRC_TABLE = []
for _i in range(256):
  _c = _i
  for _ in range(8):
    _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
  _CRC_TABLE.append(_c)


def _crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for b in data:
    crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = _crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  n &= (1 << 64) - 1
  while True:
    b = n & 0x7F
    n >>= 7
    out.append(b | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
  return _varint((num << 3) | wire) + payload


def _bytes_field(num: int, data: bytes) -> bytes:
  return _field(num, 2, _varint(len(data)) + data)


def _event(step: int, *, wall_time: float, summary: bytes | None = None, file_version: str | None = None) -> bytes:
  out = _field(1, 1, struct.pack('<d', wall_time)) + _field(2, 0, _varint(step))
  if file_version is not None:
    out += _bytes_field(3, file_version.encode())
  if summary is not None:
    out += _bytes_field(5, summary)
  return out


def _scalar_summary(values: dict[str, float]) -> bytes:
  return b''.join(_bytes_field(1, _bytes_field(1, tag.encode()) + _field(2, 5, struct.pack('<f', value)))
                  for tag, value in values.items())


class SummaryWriter:
  """Appends scalar events to events.out.tfevents.<time>.<host> in a directory."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f'events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}'
    self.path = os.path.join(logdir, name)
    self._f = open(self.path, 'ab')
    self._record(_event(0, wall_time=time.time(), file_version='brain.Event:2'))

  def _record(self, data: bytes):
    header = struct.pack('<Q', len(data))
    self._f.write(header + struct.pack('<I', _masked_crc(header)) + data + struct.pack('<I', _masked_crc(data)))

  def scalars(self, step: int, values: dict[str, float]):
    self._record(_event(step, wall_time=time.time(), summary=_scalar_summary(values)))

  def flush(self):
    self._f.flush()

  def close(self):
    self._f.close()
