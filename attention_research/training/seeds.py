"""Seed groups and hyperparameter sweeps: the members that one run trains.

A member is (seed, config overrides). With seed_mode='vmap' all members of a group share one
compiled, jax.vmap-ed step over stacked states; that needs identical shapes, so only optimiser
values (`optim.SWEEPABLE`) may differ. 'sequential' trains members one at a time and may sweep any field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from attention_research.training import optim
from attention_research.training.config import ExperimentConfig, get_dotted


@dataclasses.dataclass(frozen=True)
class Member:
  seed: int
  overrides: tuple[tuple[str, Any], ...] = ()

  @property
  def label(self) -> str:
    parts = [f'{k.rsplit(".", 1)[-1]}={v}' for k, v in self.overrides] + [f'seed={self.seed}']
    return ','.join(parts)

  @property
  def sweep_label(self) -> str:
    return ','.join(f'{k.rsplit(".", 1)[-1]}={v}' for k, v in self.overrides)

  def config(self, base: ExperimentConfig) -> ExperimentConfig:
    return base.replace(seed=self.seed, **dict(self.overrides))


def _convert(raw: str, like: Any, field: str):
  try:
    if isinstance(like, bool):
      return raw.lower() in ('1', 'true')
    if isinstance(like, int):
      return int(raw)
    if isinstance(like, float):
      return float(raw)
    return raw
  except ValueError:
    raise ValueError(f'--sweep: {raw!r} is not a valid value for config.{field} '
                     f'({type(like).__name__}).') from None


def parse_sweep(spec: str | None, config: ExperimentConfig) -> tuple[str, list[Any]] | None:
  """'learning_rate=1e-3,3e-4' -> ('optim.learning_rate', [0.001, 0.0003]); dotted names work too."""
  if not spec:
    return None
  key, sep, values = spec.partition('=')
  key = key.strip()
  if not sep or not values.strip():
    raise ValueError(f"--sweep must look like 'learning_rate=1e-3,3e-4', got {spec!r}.")
  if '.' not in key:
    if key in optim.SWEEPABLE:
      key = f'optim.{key}'
    else:
      dump = config.model_dump()
      hits = [f'{s}.{key}' for s, v in dump.items() if isinstance(v, dict) and key in v]
      if len(hits) != 1:
        raise ValueError(f'--sweep: field {key!r} is {"ambiguous" if hits else "unknown"}; '
                         f'name it with its section, e.g. optim.{key}.')
      key = hits[0]
  like = get_dotted(config, key)
  parsed = [_convert(v.strip(), like, key) for v in values.split(',') if v.strip()]
  if len(set(map(str, parsed))) != len(parsed):
    raise ValueError(f'--sweep: repeated values in {spec!r}.')
  return key, parsed


def make_members(seeds: int | Sequence[int], sweep: tuple[str, list[Any]] | None = None) -> list[Member]:
  seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
  if not seed_list:
    raise ValueError('--seeds must be at least 1.')
  if sweep is None:
    return [Member(s) for s in seed_list]
  key, values = sweep
  return [Member(s, ((key, v),)) for v in values for s in seed_list]


def check_vmappable(members: Sequence[Member], base: ExperimentConfig):
  for m in members:
    for key, _ in m.overrides:
      if key.split('.')[0] != 'optim' or key.split('.', 1)[1] not in optim.SWEEPABLE:
        raise ValueError(f'--seed_mode=vmap can only sweep values that keep shapes and program structure '
                         f'({", ".join("optim." + f for f in optim.SWEEPABLE)}); config.{key} needs '
                         '--seed_mode=sequential.')
  clip = {m.config(base).optim.grad_clip_norm > 0 for m in members}
  if len(clip) > 1:
    raise ValueError('--seed_mode=vmap: a grad_clip_norm sweep cannot mix 0 (off) with positive values.')


def stack(trees: Sequence[Any]):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def stack_batches(batches: Sequence[dict]) -> dict:
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}
