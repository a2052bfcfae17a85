"""orbax CheckpointManager for a run: train state, data-iterator positions and run metadata, with checksums.

Layout of <workdir>/checkpoints:

    <step>/               orbax's step directory (state/, data/, meta/), written atomically by orbax
    <step>.sha256.json    sha256 of the state's arrays and of the data and meta items as saved, written after
                          orbax finished: the step's commit mark. A step without one is never restored.

A step is committed only once the run vouches for it: its parameters and optimiser state are finite (checked
before saving), and the loop commits a periodic checkpoint only after the loss computed from its parameters
came out finite, so a diverging run never leaves a "last good" checkpoint that cannot resume.
`restore_latest` verifies the checksums newest first, says which checkpoint is damaged and why, sets it aside
(renamed to <step>.damaged) and falls back to the newest intact one, or refuses naming every path it tried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from attention_research.training.step import TrainState

logger = logging.getLogger(__name__)
ITEMS = ('state', 'data', 'meta')


class NonFiniteStateError(RuntimeError):
  """The parameters or optimiser state hold NaN or infinity; nothing was saved."""


class CheckpointError(RuntimeError):
  """The checkpoint directory holds checkpoints, but none of them is intact."""


class _Damaged(Exception):

  def __init__(self, message: str, uncommitted: bool = False):
    super().__init__(message)
    self.uncommitted = uncommitted  # saved but never committed: no checksum file, nothing was damaged


def _json_digest(value) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def array_digest(tree) -> str:
  """sha256 over every leaf's path, dtype, shape and bytes (host copies)."""
  h = hashlib.sha256()
  for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
    a = np.ascontiguousarray(jax.device_get(x))
    h.update(f'{jax.tree_util.keystr(path)}:{a.dtype}:{a.shape};'.encode())
    h.update(a.tobytes())
  return h.hexdigest()


def non_finite_leaves(tree) -> list[str]:
  """Paths of the floating-point leaves that hold NaN or infinity."""
  out = []
  for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
    a = np.asarray(jax.device_get(x))
    if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
      out.append(jax.tree_util.keystr(path))
  return out


class Checkpointer:

  def __init__(self, directory: str, keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True))
    self._digests: dict[int, dict[str, str]] = {}  # saved, not yet committed

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def checksum_path(self, step: int) -> str:
    return os.path.join(self.directory, f'{step}.sha256.json')

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def committed_steps(self) -> list[int]:
    return [s for s in self.all_steps() if os.path.exists(self.checksum_path(s))]

  def save(self, step: int, state: TrainState, data_states: list[Any], meta: dict[str, Any], *,
           commit: bool = True):
    """Saves a step; commit=False leaves it uncommitted until `commit(step)` (or `discard(step)`)."""
    host = jax.device_get(state.as_dict())
    bad = non_finite_leaves({'params': host['params'], 'opt_state': host['opt_state']})
    if bad:
      raise NonFiniteStateError(f'the parameters or optimiser state are not finite at step {step} '
                                f'({", ".join(bad[:3])}{", ..." if len(bad) > 3 else ""}); not saved.')
    data = json.loads(json.dumps({'iterators': data_states}))
    meta = json.loads(json.dumps(meta))
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state.as_dict()), data=ocp.args.JsonSave(data),
        meta=ocp.args.JsonSave(meta)), force=True)
    self._digests[step] = {'state': array_digest(host), 'data': _json_digest(data), 'meta': _json_digest(meta)}
    if commit:
      self.commit(step)

  def commit(self, step: int):
    """Writes the checksum file of a saved step, after orbax has finished writing it."""
    self._manager.wait_until_finished()
    digests = self._digests.pop(step)
    if jax.process_index() == 0:
      tmp = self.checksum_path(step) + '.tmp'
      with open(tmp, 'w') as f:
        json.dump({'step': step, 'sha256': digests}, f, indent=1)
      os.replace(tmp, self.checksum_path(step))
      self._remove_stale_checksums()

  def discard(self, step: int):
    """Deletes a saved but uncommitted step (its parameters turned out to give a non-finite loss)."""
    self._manager.wait_until_finished()
    self._digests.pop(step, None)
    if step in self._manager.all_steps():
      self._manager.delete(step)

  def _remove_stale_checksums(self):
    kept = set(self._manager.all_steps())
    for name in os.listdir(self.directory):
      step = name[:-len('.sha256.json')]
      if name.endswith('.sha256.json') and step.isdigit() and int(step) not in kept:
        os.remove(os.path.join(self.directory, name))

  def _restore_verified(self, step: int, target: TrainState):
    path, where = self.checksum_path(step), self.step_dir(step)
    if not os.path.exists(path):
      raise _Damaged(f'{where} has no checksum file {path} (the run stopped while saving it, or its '
                     'parameters gave a non-finite loss)', uncommitted=True)
    try:
      with open(path) as f:
        expected = json.load(f)['sha256']
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise _Damaged(f'{path} is unreadable: {type(e).__name__}: {e}') from e
    args = {'state': ocp.args.StandardRestore(target.as_dict()), 'data': ocp.args.JsonRestore(),
            'meta': ocp.args.JsonRestore()}
    out = {}
    for item in ITEMS:  # one item at a time, so that an error names the item's directory
      try:
        out[item] = self._manager.restore(step, args=ocp.args.Composite(**{item: args[item]}))[item]
      except Exception as e:  # orbax, tensorstore, json and file errors alike; pylint: disable=broad-except
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ''
        raise _Damaged(f'{os.path.join(where, item)} could not be read: {type(e).__name__}: {first_line}') from e
    actual = {'state': array_digest(out['state']), 'data': _json_digest(out['data']),
              'meta': _json_digest(out['meta'])}
    bad = [item for item in ITEMS if actual[item] != expected.get(item)]
    if bad:
      raise _Damaged(f'{", ".join(os.path.join(where, i) for i in bad)} differ(s) from the checksum in {path}')
    return TrainState.from_dict(out['state']), out['data']['iterators'], out['meta']

  def restore_latest(self, target: TrainState):
    """-> None (no checkpoint) or (step, state, data_states, meta) of the newest intact checkpoint.

    Restores into the structure, dtypes and shardings of `target` (a freshly initialised state). Damaged
    or uncommitted steps newer than it are renamed to <step>.damaged (orbax no longer lists them, and the
    run can save that step again). When none is intact: None if they were all only uncommitted (the run
    starts over, as it would have), else CheckpointError naming each one.
    """
    steps = self.all_steps()
    problems = []
    for step in reversed(steps):
      try:
        state, data_states, meta = self._restore_verified(step, target)
      except _Damaged as e:
        problems.append((step, e))
        logger.warning('checkpoint step %d is not usable: %s', step, e)
        continue
      for bad, reason in problems:
        self._set_aside(bad)
        logger.warning('set aside %s (%s); resuming from step %d instead.', self.step_dir(bad), reason, step)
      return step, state, data_states, meta
    if problems and all(e.uncommitted for _, e in problems):
      for bad, reason in problems:
        self._set_aside(bad)
        logger.warning('set aside %s (%s); starting from step 0.', self.step_dir(bad), reason)
      return None
    if problems:
      raise CheckpointError(f'no intact checkpoint in {self.directory}: ' + '; '.join(str(e) for _, e in problems) +
                            '. Start over with --config.train.restart=True or use another --workdir.')
    return None

  def _set_aside(self, step: int):
    if jax.process_index() == 0:
      target, n = self.step_dir(step) + '.damaged', 1
      while os.path.exists(target):
        target, n = f'{self.step_dir(step)}.damaged{n}', n + 1
      os.rename(self.step_dir(step), target)
      if os.path.exists(self.checksum_path(step)):
        shutil.move(self.checksum_path(step), target + '.sha256.json')
    self._manager.reload()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()
