"""Data parallelism, fully sharded data parallelism (FSDP) and context parallelism with the jax.sharding API.

The mesh has two axes, ('data', 'fsdp'), of sizes (devices / fsdp, fsdp), set by config.train.fsdp. Batches are
split over both axes together; parameters and optimiser state are split over 'fsdp' (each array along its
largest dimension that the fsdp size divides; arrays with none stay replicated) and replicated over 'data'.
fsdp=1 is plain data parallelism. XLA inserts the all-gathers and reduce-scatters, so the step computes the
same numbers as on one device.

config.train.sequence=P > 1 adds a third axis, ('data', 'fsdp', 'sequence') of sizes (devices / (fsdp P), fsdp,
P): batches are split over data and fsdp along their rows and over 'sequence' along their length (axis 1 of
each row), parameters are replicated over it. Steps run under `context()` (jax.set_mesh), where the attention
layers see the sequence axis and run exact attention as attention.ring (layers.context_parallel).

Every process draws the same global batch from the same seeded pipeline and feeds only its slice,
so one host and many hosts see exactly the same examples in the same order.
"""

from __future__ import annotations

import contextlib

import numpy as np
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from attention_research.layers.context_parallel import SEQUENCE_AXIS

_initialized = False


def maybe_initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                                 process_id: int | None = None):
  """jax.distributed.initialize when multi-host flags are given; a no-op otherwise."""
  global _initialized
  if _initialized or not coordinator_address:
    return
  if num_processes is None or process_id is None:
    raise ValueError('multi-host training needs --coordinator_address, --num_processes and --process_id together.')
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id)
  _initialized = True


class DataParallel:
  """The mesh of all devices and how to place state and batches on it."""

  def __init__(self, devices=None, fsdp: int = 1, sequence: int = 1):
    devices = list(devices if devices is not None else jax.devices())
    if not isinstance(fsdp, int) or isinstance(fsdp, bool) or fsdp < 1 or len(devices) % fsdp:
      raise ValueError(f'config.train.fsdp={fsdp!r} must be a positive int that divides the {len(devices)} '
                       'devices (the mesh is data x fsdp).')
    if (not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1
        or len(devices) % (fsdp * sequence)):
      raise ValueError(f'config.train.sequence={sequence!r} must be a positive int such that fsdp x sequence '
                       f'= {fsdp} x {sequence!r} divides the {len(devices)} devices (the mesh is data x fsdp x '
                       'sequence).')
    if sequence == 1:
      self.mesh = Mesh(np.asarray(devices).reshape(len(devices) // fsdp, fsdp), ('data', 'fsdp'))
    else:  # sequence innermost: a ring's neighbours are adjacent devices
      self.mesh = Mesh(np.asarray(devices).reshape(len(devices) // (fsdp * sequence), fsdp, sequence),
                       ('data', 'fsdp', SEQUENCE_AXIS))
    self.num_devices = len(devices)
    self.fsdp, self.sequence = fsdp, sequence
    self.replicated = NamedSharding(self.mesh, P())

  @property
  def row_devices(self) -> int:
    """The devices a batch's rows are split over (data x fsdp)."""
    return self.num_devices // self.sequence

  def check_batch_size(self, batch_size: int, field: str = 'train.batch_size'):
    if batch_size % self.row_devices == 0:
      return
    if self.sequence == 1:
      raise ValueError(f'config.{field}={batch_size} must be divisible by the {self.num_devices} devices '
                       '(data parallel splits each batch evenly).')
    raise ValueError(f'config.{field}={batch_size} must be divisible by the {self.row_devices} devices of the data '
                     f'and fsdp axes ({self.num_devices} devices / sequence={self.sequence}).')

  def context(self):
    """The context to trace steps in: jax.set_mesh when the mesh has a sequence axis (the attention layers read
    it), nothing otherwise."""
    return jax.set_mesh(self.mesh) if self.sequence > 1 else contextlib.nullcontext()

  def batch_sharding(self, batch_axis: int, split_length: bool = False) -> NamedSharding:
    """Rows (batch_axis) over data and fsdp; with split_length, the next axis (the length) over sequence."""
    length = (SEQUENCE_AXIS,) if split_length else ()
    return NamedSharding(self.mesh, P(*([None] * batch_axis), ('data', 'fsdp'), *length))

  def leaf_sharding(self, x) -> NamedSharding:
    """Split along the largest dimension that fsdp divides (the first such, on ties); else replicated."""
    shape = np.shape(x)
    fits = [(size, -axis) for axis, size in enumerate(shape) if self.fsdp > 1 and size % self.fsdp == 0]
    if not fits:
      return self.replicated
    axis = -max(fits)[1]
    return NamedSharding(self.mesh, P(*([None] * axis), 'fsdp'))

  def state_shardings(self, state):
    """The sharding of every array of a train state (a pytree of the same structure)."""
    return jax.tree.map(self.leaf_sharding, state)

  def put_state(self, state):
    return jax.device_put(state, self.state_shardings(state))

  def put_replicated(self, batch):
    """numpy batch -> jax arrays copied to every device (evaluation across hosts: outputs every process can read)."""
    return {k: jax.device_put(np.asarray(v), self.replicated) for k, v in batch.items()}

  def put_batch(self, batch, batch_axis: int = 0):
    """numpy global batch -> jax arrays sharded along batch_axis over the mesh, and along the next axis over the
    sequence axis where its length divides evenly (others are whole on every device of a ring: jit moves them)."""
    nproc, pid = jax.process_count(), jax.process_index()

    def put(x):
      x = np.asarray(x)
      if x.ndim <= batch_axis:
        return jax.device_put(x, self.replicated)
      split = self.sequence > 1 and x.ndim > batch_axis + 1 and x.shape[batch_axis + 1] % self.sequence == 0
      sharding = self.batch_sharding(batch_axis, split)
      if nproc == 1:
        return jax.device_put(x, sharding)
      rows = x.shape[batch_axis] // nproc
      local = np.take(x, np.arange(pid * rows, (pid + 1) * rows), axis=batch_axis)
      return jax.make_array_from_process_local_data(sharding, local, x.shape)

    return {k: put(v) for k, v in batch.items()}
