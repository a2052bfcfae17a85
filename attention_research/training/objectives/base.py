"""The small interface between training and models: one Objective per task kind.

An objective knows how to build a model from its config (filling sizes from the task's info), how to
compute a differentiable loss on a batch, and how to evaluate a model on batches with the task's own
metrics. The loop knows nothing else about models.

    objective = objectives.make(task, options)        # options: config.objective
    model = objective.init_model(model_cfg, seed)     # model_cfg: config.model (with 'name')
    loss, metrics = objective.loss(model, batch, rng) # traced inside the jit-compiled train step
    metrics = objective.evaluate(model, batches)      # python floats
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import typing
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

Batch = Mapping[str, Any]


def resolve_model(name: str) -> type:
  """'transformer.Encoder' -> attention_research.models.transformer.Encoder; 'pkg.mod:Class' for any module."""
  if ':' in name:
    module_name, _, cls_name = name.partition(':')
  else:
    module_name, _, cls_name = name.rpartition('.')
    if not module_name:
      raise ValueError(f"config.model.name {name!r} must look like 'transformer.Encoder' or 'package.module:Class'.")
    module_name = f'attention_research.models.{module_name}'
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(f'config.model.name {name!r}: cannot import {module_name} ({e}).') from e
  if not hasattr(module, cls_name):
    known = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, nnx.Module))
    raise ValueError(f'config.model.name {name!r}: {module_name} has no {cls_name}; models there: {known}.')
  return getattr(module, cls_name)


def model_config_class(model_cls: type) -> type:
  """The frozen dataclass that configures a model: its `Config` attribute or its __init__'s first argument."""
  cfg_cls = getattr(model_cls, 'Config', None)
  if dataclasses.is_dataclass(cfg_cls):
    return cfg_cls
  params = list(inspect.signature(model_cls.__init__).parameters.values())[1:]
  if params:
    hints = typing.get_type_hints(model_cls.__init__)
    hint = hints.get(params[0].name)
    if dataclasses.is_dataclass(hint):
      return hint
  raise ValueError(f'cannot find the config dataclass of {model_cls.__name__}.')


def build_model_config(model_cfg: Mapping[str, Any], defaults: Mapping[str, Any] = ()):
  """Validates config.model against the model's dataclass (unknown fields name themselves) and builds it.

  `defaults` are task-derived values (vocabulary size, classes) used where the config leaves a field
  None or unset.
  """
  model_cfg = dict(model_cfg)
  name = model_cfg.pop('name')
  model_cls = resolve_model(name)
  cfg_cls = model_config_class(model_cls)
  fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
  unknown = sorted(set(model_cfg) - set(fields))
  if unknown:
    raise ValueError(f'unknown field config.model.{unknown[0]} for {name}; known fields: {sorted(fields)}.')
  for key, value in dict(defaults).items():
    if key in fields and model_cfg.get(key) is None:
      model_cfg[key] = value
  model_cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in model_cfg.items()}
  try:
    cfg = cfg_cls(**model_cfg)
  except TypeError as e:  # a required field without a value
    raise ValueError(f'config.model ({name}): {e}.') from e
  except ValueError as e:
    raise ValueError(f'config.model ({name}): {e}') from e
  return model_cls, cfg


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init_state(model_cls, cfg, key):
  return nnx.split(model_cls(cfg, rngs=nnx.Rngs(key)))[1]


def init_model(model_cls: type, cfg, seed: int) -> nnx.Module:
  """Builds model_cls(cfg, rngs=nnx.Rngs(seed)), initialising in one compiled program when possible.

  Eager initialisation compiles every distinct operation separately, which takes seconds on CPU;
  the compiled one is reused for every seed. Models that cannot be traced are built eagerly.
  """
  try:
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: model_cls(cfg, rngs=nnx.Rngs(seed))))
    return nnx.merge(graphdef, _init_state(model_cls, cfg, jax.random.key(seed)))
  except (TypeError, jax.errors.JAXTypeError, jax.errors.ConcretizationTypeError):
    return model_cls(cfg, rngs=nnx.Rngs(seed))


def cross_entropy(logits, labels, weights, label_smoothing: float = 0.0):
  """Mean token cross-entropy over weights > 0, in float32; returns (loss, total weight)."""
  logits = logits.astype(jnp.float32)
  num_classes = logits.shape[-1]
  onehot = jax.nn.one_hot(labels, num_classes)
  if label_smoothing:
    onehot = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
  ce = optax.softmax_cross_entropy(logits, onehot)
  weights = weights.astype(jnp.float32)
  total = jnp.maximum(weights.sum(), 1.0)
  return (ce * weights).sum() / total, total


def masked_accuracy(logits, labels, weights):
  weights = weights.astype(jnp.float32)
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return (correct * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def pad_rows(batch: Batch, rows: int) -> tuple[dict, int]:
  """Pads every array of a batch with zero rows up to `rows` so evaluation compiles once."""
  n = len(next(iter(batch.values())))
  if n == rows:
    return dict(batch), n
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    out[k] = np.concatenate([v, np.zeros((rows - n,) + v.shape[1:], v.dtype)]) if n < rows else v
  return out, n


class Objective:
  """Base class. Subclasses set `kind`, `Options` and `metric_names`, and implement loss / evaluate."""

  kind: str = ''
  Options: type = None
  # (name, 'max' | 'min'): the metrics tables report, first one is the headline.
  metric_names: tuple[tuple[str, str], ...] = ()

  def __init__(self, task, options: Mapping[str, Any] | None = None):
    self.task = task
    self.info = task.info
    options = dict(options or {})
    known = {f.name for f in dataclasses.fields(self.Options)}
    unknown = sorted(set(options) - known)
    if unknown:
      raise ValueError(f'unknown field config.objective.{unknown[0]} for task kind {self.kind!r}; '
                       f'known fields: {sorted(known)}.')
    self.options = self.Options(**options)
    self.put = lambda batch: batch  # the loop installs a device-placing function
    self._jit_cache: dict = {}

  # --- models
  def model_defaults(self) -> dict[str, Any]:
    """Task-derived model config values, used where config.model leaves them None."""
    return {}

  def init_model(self, model_cfg: Mapping[str, Any], seed: int) -> nnx.Module:
    model_cls, cfg = build_model_config(model_cfg, self.model_defaults())
    return init_model(model_cls, cfg, seed)

  # --- training
  def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    raise NotImplementedError

  # --- evaluation
  def evaluate(self, model: nnx.Module, batches: Iterable[Batch]) -> dict[str, float]:
    raise NotImplementedError

  def compiled(self, name: str, model: nnx.Module, fn: Callable) -> tuple[Callable, Any]:
    """jit-compiles fn(model, batch) once per model structure; returns (jitted(state, batch), state)."""
    graphdef, state = nnx.split(model)
    key = (name, graphdef)
    if key not in self._jit_cache:
      def pure(state, batch):
        return fn(nnx.merge(graphdef, state), batch)
      self._jit_cache[key] = jax.jit(pure)
    return self._jit_cache[key], state

  def iterate_padded(self, batches: Iterable[Batch]):
    """Yields (device batch padded to a fixed row count, number of real rows)."""
    rows = None
    for batch in batches:
      n = len(next(iter(batch.values())))
      rows = rows or n
      if n > rows:
        raise ValueError(f'evaluation batch of {n} rows after one of {rows}.')
      padded, n = pad_rows(batch, rows)
      yield self.put(padded), n


def mean_metrics(sums: dict[str, float], count: float) -> dict[str, float]:
  return {k: v / max(count, 1.0) for k, v in sums.items()}
