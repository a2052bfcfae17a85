"""Data parallelism and fully sharded data parallelism (FSDP) with the explicit jax.sharding API.

The mesh has two axes, ('data', 'fsdp'), of sizes (devices / fsdp, fsdp), set by config.train.fsdp. Batches are
split over both axes together; parameters and optimiser state are split over 'fsdp' (each array along its
largest dimension that the fsdp size divides; arrays with none stay replicated) and replicated over 'data'.
fsdp=1 is plain data parallelism. XLA inserts the all-gathers and reduce-scatters, so the step computes the
same numbers as on one device.

Every process draws the same global batch from the same seeded pipeline and feeds only its slice,
so one host and many hosts see exactly the same examples in the same order.
"""

from __future__ import annotations

import numpy as np
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

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

  def __init__(self, devices=None, fsdp: int = 1):
    devices = list(devices if devices is not None else jax.devices())
    if not isinstance(fsdp, int) or isinstance(fsdp, bool) or fsdp < 1 or len(devices) % fsdp:
      raise ValueError(f'config.train.fsdp={fsdp!r} must be a positive int that divides the {len(devices)} '
                       'devices (the mesh is data x fsdp).')
    self.mesh = Mesh(np.asarray(devices).reshape(len(devices) // fsdp, fsdp), ('data', 'fsdp'))
    self.num_devices = len(devices)
    self.fsdp = fsdp
    self.replicated = NamedSharding(self.mesh, P())

  def check_batch_size(self, batch_size: int, field: str = 'train.batch_size'):
    if batch_size % self.num_devices:
      raise ValueError(f'config.{field}={batch_size} must be divisible by the {self.num_devices} devices '
                       '(data parallel splits each batch evenly).')

  def batch_sharding(self, batch_axis: int) -> NamedSharding:
    return NamedSharding(self.mesh, P(*([None] * batch_axis), ('data', 'fsdp')))

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
    """numpy global batch -> jax arrays sharded along batch_axis over the mesh."""
    sharding = self.batch_sharding(batch_axis)
    nproc, pid = jax.process_count(), jax.process_index()

    def put(x):
      x = np.asarray(x)
      if x.ndim <= batch_axis:
        return jax.device_put(x, self.replicated)
      if nproc == 1:
        return jax.device_put(x, sharding)
      rows = x.shape[batch_axis] // nproc
      local = np.take(x, np.arange(pid * rows, (pid + 1) * rows), axis=batch_axis)
      return jax.make_array_from_process_local_data(sharding, local, x.shape)

    return {k: put(v) for k, v in batch.items()}
