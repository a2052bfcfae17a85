"""Config files' side of the configuration: their `key=value,flag` argument and their locked ConfigDict.

Every file in configs/ parses its argument with `parse_arg` and returns `make_config(...)`, which fills in
every field of the typed config (training.config) so that any of them can be overridden from the command
line, and validates the result before it is returned.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict

from attention_research.training.config import CompareDefaults, DataConfig, ExperimentConfig, OptimConfig, TrainConfig


def parse_arg(arg: str | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
  """Parses a config file argument 'key=value,flag,...' against typed defaults.

  A bare word sets a boolean option to True ('smoke'); values take the type of their default.
  """
  opts = dict(defaults)
  for item in (arg or '').split(','):
    item = item.strip()
    if not item:
      continue
    key, sep, raw = item.partition('=')
    key = key.strip()
    if key not in defaults:
      raise ValueError(f'unknown config option {key!r} in {arg!r}; known options: {sorted(defaults)}.')
    default = defaults[key]
    if not sep:
      if not isinstance(default, bool):
        raise ValueError(f'config option {key!r} needs a value ({key}=...), default {default!r}.')
      opts[key] = True
      continue
    raw = raw.strip()
    try:
      if isinstance(default, bool):
        if raw.lower() not in ('true', 'false', '1', '0'):
          raise ValueError
        opts[key] = raw.lower() in ('true', '1')
      elif isinstance(default, int):
        opts[key] = int(raw)
      elif isinstance(default, float):
        opts[key] = float(raw)
      else:
        opts[key] = raw
    except ValueError:
      raise ValueError(f'config option {key}={raw!r} is not a {type(default).__name__}.') from None
  return opts


def make_config(*, task: str, model: dict, train: dict, optim: dict, data: dict | None = None,
                objective: dict | None = None, compare: dict | None = None, seed: int = 0,
                variant_fields: str = 'model.attention', name: str = '',
                kind: str | None = None) -> ml_collections.ConfigDict:
  """The locked ConfigDict of a config file, checked by the typed config before it is returned.

  Every field of the data / train / optim / compare dataclasses and of the model's config dataclass
  is present, so any of them can be overridden from the command line (`--config.model.d_model=32`);
  None-valued fields get typed placeholders, so `--config.model.vocab_size=abc` fails in the parser.
  """
  from attention_research.training import objectives  # pylint: disable=g-import-not-at-top
  from attention_research.training.objectives import base  # pylint: disable=g-import-not-at-top
  objective = dict(objective or {})
  if kind is not None:  # the task kind's objective: all its options, checked now
    if kind not in objectives.OBJECTIVES:
      raise ValueError(f'unknown task kind {kind!r}; known: {sorted(objectives.OBJECTIVES)}.')
    fields = _dataclass_fields(objectives.OBJECTIVES[kind].Options)
    unknown = sorted(set(objective) - set(fields) - {'kind'})
    if unknown:
      raise ValueError(f'unknown field config.objective.{unknown[0]} for task kind {kind!r}; known fields: '
                       f'{sorted(fields)}.')
    objectives.OBJECTIVES[kind].Options(**{k: v for k, v in objective.items() if k != 'kind'})
    objective = {**{k: d for k, (d, _) in fields.items()}, **objective}
  model = dict(model)
  model_fields = _dataclass_fields(base.model_config_class(base.resolve_model(model['name'])))
  unknown = sorted(set(model) - set(model_fields) - {'name'})
  if unknown:
    raise ValueError(f'unknown field config.model.{unknown[0]} for {model["name"]}; known fields: '
                     f'{sorted(model_fields)}.')
  model = {'name': model['name'], **{k: model.get(k, default) for k, (default, _) in model_fields.items()}}
  sections = {'data': (DataConfig, data), 'train': (TrainConfig, train), 'optim': (OptimConfig, optim),
              'compare': (CompareDefaults, compare)}
  config = ml_collections.ConfigDict({
      'task': task, 'name': name or task, 'seed': seed, 'variant_fields': variant_fields,
      'objective': objective})
  for section, (cls, values) in sections.items():
    fields = _dataclass_fields(cls)
    values = dict(values or {})
    unknown = sorted(set(values) - set(fields))
    if unknown:
      raise ValueError(f'unknown field config.{section}.{unknown[0]}; known fields: {sorted(fields)}.')
    config[section] = _typed({k: values.get(k, default) for k, (default, _) in fields.items()}, fields)
  config.model = _typed(model, model_fields)
  ExperimentConfig.from_config_dict(config)
  config.lock()
  return config


def _dataclass_fields(cls) -> dict[str, tuple[Any, Any]]:
  """name -> (default, type hint) of a dataclass's fields (MISSING default: None)."""
  hints = typing.get_type_hints(cls)
  out = {}
  for f in dataclasses.fields(cls):
    if f.default is not dataclasses.MISSING:
      default = f.default
    elif f.default_factory is not dataclasses.MISSING:
      default = f.default_factory()
    else:
      default = None
    if isinstance(default, Mapping):
      default = dict(default)
    elif isinstance(default, tuple):
      default = list(default)
    out[f.name] = (default, hints.get(f.name))
  return out


def _typed(values: dict, fields: dict) -> ml_collections.ConfigDict:
  out = {}
  for k, v in values.items():
    if v is None and k in fields:
      args = [a for a in typing.get_args(fields[k][1]) if a is not type(None)]
      out[k] = config_dict.placeholder(args[0] if len(args) == 1 and isinstance(args[0], type) else object)
    else:
      out[k] = v
  return ml_collections.ConfigDict(out)
