"""Metrics to a JSON-lines file and TensorBoard event files, and progress lines with steps/s and time left."""

from __future__ import annotations

import json
import os
import time
from typing import Mapping

import jax
from absl import logging

from attention_research.training import tensorboard


class MetricWriter:
  """One metrics.jsonl for the run; one TensorBoard directory per member (tb/<label>).

  Across hosts every process computes the same metrics; only process 0 writes them into the shared workdir.
  """

  def __init__(self, workdir: str, labels: list[str], *, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self._writes = jax.process_index() == 0
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self._labels = labels
    self._tb_dir = os.path.join(workdir, 'tb')
    self._tensorboard = tensorboard
    self._tb = None

  def truncate_after(self, step: int):
    """A resumed run rewrites what the interrupted one logged after its last checkpoint."""
    if not self._writes or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      keep = [line for line in f if line.strip() and json.loads(line).get('step', 0) <= step]
    with open(self.path + '.tmp', 'w') as f:
      f.writelines(keep)
    os.replace(self.path + '.tmp', self.path)

  def write(self, step: int, split: str, per_member: list[Mapping[str, float]]):
    if not self._writes:
      return
    with open(self.path, 'a') as f:
      for label, metrics in zip(self._labels, per_member):
        f.write(json.dumps({'step': step, 'split': split, 'member': label, **_plain(metrics)}) + '\n')
    if self._tensorboard:
      if self._tb is None:
        self._tb = [tensorboard.SummaryWriter(os.path.join(self._tb_dir, _safe(l))) for l in self._labels]
      for writer, metrics in zip(self._tb, per_member):
        writer.scalars(step, {f'{split}/{k}': v for k, v in _plain(metrics).items() if isinstance(v, float)})
        writer.flush()

  def close(self):
    for w in self._tb or ():
      w.close()


def _safe(label: str) -> str:
  return ''.join(c if c.isalnum() or c in '-_.=' else '_' for c in label) or 'run'


def _plain(metrics: Mapping) -> dict:
  out = {}
  for k, v in metrics.items():
    try:
      out[k] = float(v)
    except (TypeError, ValueError):
      out[k] = v
  return out


def format_seconds(s: float) -> str:
  s = int(round(s))
  return f'{s // 3600}h{s % 3600 // 60:02d}m' if s >= 3600 else f'{s // 60}m{s % 60:02d}s'


class Progress:
  """Steps/s over steps actually trained (compilation, evaluation and saving excluded) and time left."""

  def __init__(self, total_steps: int):
    self.total = total_steps
    self._t0 = None
    self._first = 0
    self._excluded = 0.0
    self._last_step = 0
    self._last_time = None

  def start(self, step: int):
    """Call once the first (compiling) step has finished."""
    self._t0 = self._last_time = time.perf_counter()
    self._first = self._last_step = step

  def exclude(self, seconds: float):
    self._excluded += seconds

  def mark(self, step: int):
    """Call after blocking on the results of `step`."""
    if self._t0 is not None:
      self._last_step, self._last_time = step, time.perf_counter()

  @property
  def steps_per_second(self) -> float:
    if self._t0 is None or self._last_step <= self._first:
      return float('nan')
    return (self._last_step - self._first) / max(self._last_time - self._t0 - self._excluded, 1e-9)

  def line(self, step: int, metrics: Mapping[str, float]) -> str:
    sps = self.steps_per_second
    left = (self.total - step) / sps if sps == sps and sps > 0 else float('nan')
    shown = ' '.join(f'{k} {v:.4g}' for k, v in metrics.items() if isinstance(v, float))
    eta = format_seconds(left) if left == left else '?'
    return f'step {step}/{self.total} {shown} | {sps:.2f} steps/s, {eta} left'


def log(msg: str, quiet: bool = False):
  """Progress goes to stdout (absl INFO is flooded by orbax) and to the absl log."""
  if not quiet:
    print(msg, flush=True)
  logging.debug(msg)
