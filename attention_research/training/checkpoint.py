"""orbax CheckpointManager for a run: train state, data-iterator positions and run metadata.

Saves are atomic (orbax writes a temporary directory and renames it), so a run killed at any moment
leaves only complete checkpoints; the last `keep` are kept.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp

from attention_research.training.step import TrainState


class Checkpointer:

  def __init__(self, directory: str, keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: TrainState, data_states: list[Any], meta: dict[str, Any]):
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state.as_dict()),
        data=ocp.args.JsonSave({'iterators': data_states}),
        meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, step: int, target: TrainState) -> tuple[TrainState, list[Any], dict[str, Any]]:
    """Restores into the structure, dtypes and shardings of `target` (a freshly initialised state)."""
    out = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target.as_dict()),
        data=ocp.args.JsonRestore(),
        meta=ocp.args.JsonRestore()))
    return TrainState.from_dict(out.state), out.data['iterators'], out.meta

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()
