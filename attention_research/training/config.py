"""Experiment configuration: frozen, validated dataclasses built from the ConfigDict of a config file.

A config file (see config_files.make_config) returns a locked ConfigDict with these sections:

    task              name for `data.load_task` ('mqar', 'digits', ...)
    model             {'name': 'transformer.Encoder', <fields of the model's config dataclass>}
    objective         options of the task kind's objective (label smoothing, beam size, ...)
    data / train / optim   the dataclasses below
    seed              seed of a single run (`train`); compare uses 0..seeds-1
    variant_fields    dotted fields that `compare --variants` sets to each variant name
    compare           default variants / seeds / seed_mode of `compare` for this config

`ExperimentConfig.from_config_dict` checks every section before anything is built or compiled; a
bad value raises ValueError naming its field (`config.train.steps must be >= 1, got 0`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import ml_collections

SCHEDULES = ('constant', 'cosine', 'linear', 'rsqrt')
OPTIMIZERS = ('adamw', 'adam', 'sgd', 'adafactor')
SEED_MODES = ('vmap', 'sequential')


def _fail(field: str, value: Any, requirement: str):
  raise ValueError(f'config.{field} {requirement}, got {value!r}.')


def _int(field, value, minimum=None):
  if isinstance(value, bool) or not isinstance(value, int):
    _fail(field, value, 'must be an integer')
  if minimum is not None and value < minimum:
    _fail(field, value, f'must be >= {minimum}')
  return value


def _float(field, value, minimum=None, maximum=None, open_min=False):
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    _fail(field, value, 'must be a finite number')
  if minimum is not None and (value <= minimum if open_min else value < minimum):
    _fail(field, value, f'must be {">" if open_min else ">="} {minimum}')
  if maximum is not None and value > maximum:
    _fail(field, value, f'must be <= {maximum}')
  return float(value)


def _choice(field, value, choices):
  if value not in choices:
    _fail(field, value, f'must be one of {list(choices)}')
  return value


def _build(cls, section: str, values: Mapping[str, Any]):
  known = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise ValueError(f'unknown field config.{section}.{unknown[0]}; known fields of config.{section}: '
                     f'{sorted(known)}.')
  return cls(**values)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  size: str = 'default'  # 'default' | 'small' (the data builders' test size)
  data_dir: str | None = None
  eval_split: str = 'validation'  # periodic evaluation during training
  test_split: str = 'test'  # final evaluation, the numbers in result tables
  eval_batch_size: int = 64
  eval_examples: int = 0  # evaluate on the first N examples of a split; 0 = all of it
  options: dict = dataclasses.field(default_factory=dict)  # the task builder's config fields (lengths, sizes)
  # 'task': every split padded to the longest sequence of any split (one shape); 'split': each split to its own
  # longest, so training does not pay for a longer out-of-distribution split (Task.batches).
  pad_scope: str = 'task'

  def __post_init__(self):
    if not isinstance(self.options, dict):
      _fail('data.options', self.options, 'must be a mapping of builder options')
    _choice('data.size', self.size, ('default', 'small'))
    _choice('data.pad_scope', self.pad_scope, ('task', 'split'))
    if self.data_dir is not None and not isinstance(self.data_dir, str):
      _fail('data.data_dir', self.data_dir, 'must be a path or None')
    _int('data.eval_batch_size', self.eval_batch_size, 1)
    _int('data.eval_examples', self.eval_examples, 0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  steps: int = 1000
  batch_size: int = 32
  log_every: int = 50
  eval_every: int = 0  # 0: evaluate only at the end
  checkpoint_every: int = 0  # 0: only the final checkpoint
  keep_checkpoints: int = 3
  # A rerun in a workdir that holds checkpoints resumes them, and refuses a config that differs from the
  # workdir's config.json (see loop.RESUMABLE_FIELDS for the fields that may differ). restart=True deletes the
  # workdir's checkpoints and metrics and starts over; allow_changes='optim.learning_rate,...' resumes with
  # those optimiser fields changed on purpose (e.g. after a non-finite loss).
  restart: bool = False
  allow_changes: str = ''
  # Devices that split the parameters and optimiser state (the mesh's 'fsdp' axis; the rest is 'data').
  fsdp: int = 1
  # Devices that split each sequence (the mesh's 'sequence' axis, context parallelism; exact attention runs as
  # attention.ring). 1: none.
  sequence: int = 1

  def __post_init__(self):
    _int('train.steps', self.steps, 1)
    _int('train.batch_size', self.batch_size, 1)
    _int('train.log_every', self.log_every, 1)
    _int('train.eval_every', self.eval_every, 0)
    _int('train.checkpoint_every', self.checkpoint_every, 0)
    _int('train.keep_checkpoints', self.keep_checkpoints, 1)
    _int('train.fsdp', self.fsdp, 1)
    _int('train.sequence', self.sequence, 1)
    if not isinstance(self.restart, bool):
      _fail('train.restart', self.restart, 'must be True or False')
    if not isinstance(self.allow_changes, str):
      _fail('train.allow_changes', self.allow_changes, 'must be a comma-separated list of optim.* fields')
    for name in self.allowed_changes:
      field = name.removeprefix('optim.')
      if not name.startswith('optim.') or field == 'name' or field not in {f.name for f in
                                                                          dataclasses.fields(OptimConfig)}:
        _fail('train.allow_changes', self.allow_changes, 'may only name optim.* fields other than optim.name '
              '(the optimiser state must keep its structure)')

  @property
  def allowed_changes(self) -> tuple[str, ...]:
    return tuple(f.strip() for f in self.allow_changes.split(',') if f.strip())


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  name: str = 'adamw'
  learning_rate: float = 1e-3  # peak value; the schedule multiplies it
  schedule: str = 'cosine'
  warmup_steps: int = 0
  end_lr_fraction: float = 0.0  # cosine / linear decay end, as a fraction of the peak
  weight_decay: float = 0.0
  b1: float = 0.9  # also the momentum of sgd
  b2: float = 0.98
  eps: float = 1e-9
  grad_clip_norm: float = 1.0  # 0 disables clipping

  def __post_init__(self):
    _choice('optim.name', self.name, OPTIMIZERS)
    _float('optim.learning_rate', self.learning_rate, 0.0, open_min=True)
    _choice('optim.schedule', self.schedule, SCHEDULES)
    _int('optim.warmup_steps', self.warmup_steps, 0)
    _float('optim.end_lr_fraction', self.end_lr_fraction, 0.0, 1.0)
    _float('optim.weight_decay', self.weight_decay, 0.0)
    _float('optim.b1', self.b1, 0.0, 1.0)
    _float('optim.b2', self.b2, 0.0, 1.0)
    _float('optim.eps', self.eps, 0.0)
    _float('optim.grad_clip_norm', self.grad_clip_norm, 0.0)


@dataclasses.dataclass(frozen=True)
class CompareDefaults:
  variants: str = 'dot_product'
  seeds: int = 1
  seed_mode: str = 'sequential'
  sweep: str = ''  # default --sweep, e.g. 'learning_rate=1e-3,3e-3'
  grid: str = ''   # default --grid of a grid run (training.grid), e.g. 'seq_len=64,128;d_model=32,64'
  # {variant: {option: value}} added to model.attention_options when that variant runs: the options only one
  # variant takes (local's window), which shared attention_options cannot carry.
  variant_options: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.variants, str) or not self.variants.strip():
      _fail('compare.variants', self.variants, 'must be a non-empty comma-separated list')
    if not isinstance(self.variant_options, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in self.variant_options.items()):
      _fail('compare.variant_options', self.variant_options, 'must map variant names to option mappings')
    if not isinstance(self.sweep, str) or not isinstance(self.grid, str):
      _fail('compare.sweep/grid', (self.sweep, self.grid), 'must be strings')
    _int('compare.seeds', self.seeds, 1)
    _choice('compare.seed_mode', self.seed_mode, SEED_MODES)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  task: str
  model: dict
  objective: dict
  data: DataConfig
  train: TrainConfig
  optim: OptimConfig
  compare: CompareDefaults = CompareDefaults()
  seed: int = 0
  variant_fields: tuple[str, ...] = ('model.attention',)
  name: str = ''  # free-form label for tables

  def __post_init__(self):
    if not isinstance(self.task, str) or not self.task:
      _fail('task', self.task, 'must name a task')
    if not isinstance(self.model.get('name'), str):
      _fail('model.name', self.model.get('name'), "must name a model, e.g. 'transformer.Encoder'")
    _int('seed', self.seed, 0)
    for f in self.variant_fields:
      try:
        _get_dotted(self.model_dump(), f)
      except ValueError:
        raise ValueError(f'config.variant_fields names config.{f}, which does not exist.') from None

  @classmethod
  def from_config_dict(cls, config: ml_collections.ConfigDict | Mapping[str, Any]) -> 'ExperimentConfig':
    d = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
    sections = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - sections)
    if unknown:
      raise ValueError(f'unknown field config.{unknown[0]}; known top-level fields: {sorted(sections)}.')
    for required in ('task', 'model', 'train', 'optim'):
      if required not in d:
        raise ValueError(f'config has no {required!r} section.')
    vf = d.get('variant_fields', 'model.attention')
    if isinstance(vf, str):
      vf = tuple(f.strip() for f in vf.split(',') if f.strip())
    return cls(
        task=d['task'], model=dict(d['model']), objective=dict(d.get('objective') or {}),
        data=_build(DataConfig, 'data', d.get('data') or {}),
        train=_build(TrainConfig, 'train', d['train']),
        optim=_build(OptimConfig, 'optim', d['optim']),
        compare=_build(CompareDefaults, 'compare', d.get('compare') or {}),
        seed=d.get('seed', 0), variant_fields=tuple(vf), name=d.get('name', '') or '')

  def model_dump(self) -> dict:
    """The whole config as nested plain dicts (for JSON, checkpoints and dotted lookups)."""
    out = {}
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      out[f.name] = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
    out['variant_fields'] = list(self.variant_fields)
    return out

  def replace(self, **dotted: Any) -> 'ExperimentConfig':
    """Returns a validated copy with dotted fields replaced: cfg.replace(**{'optim.learning_rate': 3e-4})."""
    d = self.model_dump()
    for key, value in dotted.items():
      _set_dotted(d, key, value)
    return ExperimentConfig.from_config_dict(d)


def _get_dotted(d: Mapping, key: str):
  node = d
  for part in key.split('.'):
    if not isinstance(node, Mapping) or part not in node:
      raise ValueError(f'config.{key} does not exist.')
    node = node[part]
  return node


def _set_dotted(d: dict, key: str, value: Any):
  parts = key.split('.')
  node = d
  for part in parts[:-1]:
    if not isinstance(node, dict) or part not in node:
      raise ValueError(f'config.{key} does not exist (no section {part!r}).')
    node = node[part]
  if not isinstance(node, dict) or parts[-1] not in node:
    raise ValueError(f'config.{key} does not exist; fields there: {sorted(node) if isinstance(node, dict) else []}.')
  node[parts[-1]] = value


def get_dotted(config: ExperimentConfig, key: str):
  return _get_dotted(config.model_dump(), key)
