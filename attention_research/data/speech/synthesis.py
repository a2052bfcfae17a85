"""Deterministic text-to-speech for many utterances, in parallel worker processes."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'espeak_worker.py')
SHARD_SIZE = 200  # fixed, so the output never depends on how many cores there are


def _run_shard(utterances: list[dict]) -> tuple[list[np.ndarray], int]:
  with tempfile.TemporaryDirectory() as tmp:
    spec, out = os.path.join(tmp, 'in.json'), os.path.join(tmp, 'out.npz')
    with open(spec, 'w') as f:
      json.dump(utterances, f)
    done = subprocess.run([sys.executable, _WORKER, spec, out], capture_output=True, text=True, check=False)
    if done.returncode != 0:
      raise RuntimeError(f'espeak-ng worker failed ({done.returncode}):\n{done.stderr[-2000:]}')
    with np.load(out) as data:
      ends = np.cumsum(data['lengths'])
      audio = np.split(data['audio'], ends[:-1]) if len(ends) else []
      return audio, int(data['sample_rate'])


def synthesize(utterances: list[dict], *, max_workers: int | None = None) -> tuple[list[np.ndarray], int]:
  """int16 waveforms (at the returned sample rate) for dicts with keys
  text, voice, rate (words per minute), pitch (0-99) and seed."""
  shards = [utterances[i:i + SHARD_SIZE] for i in range(0, len(utterances), SHARD_SIZE)]
  workers = max_workers or max(1, min(len(shards), os.cpu_count() or 1))
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    results = list(pool.map(_run_shard, shards))
  rates = {rate for _, rate in results}
  if len(rates) > 1:
    raise RuntimeError(f'espeak-ng reported several sample rates: {rates}.')
  audio = [a for shard, _ in results for a in shard]
  return audio, rates.pop() if rates else 22050
