"""The small interface between training and models: one Objective per task kind.

An objective knows how to build a model from its config (filling sizes from the task's info), how to
compute a differentiable loss on a batch, and how to evaluate a model on batches with the task's own
metrics. The loop knows nothing else about models.

    objective = objectives.make(task, options)        # options: config.objective
    model = objective.init_model(model_cfg, seed)     # model_cfg: config.model (with 'name')
    loss, metrics = objective.loss(model, batch, rng) # traced inside the jit-compiled train step
    metrics = objective.evaluate(model, batches)      # python floats
    view = objective.attention_for_plot(model, batch) # one example's attention, for --plot and statistics
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

from attention_research.layers import capture_attention

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


def token_labels(tokenizer, ids) -> list[str]:
  """One axis label per token id: its piece or word, special tokens by name, the id itself without a tokenizer.

  '$' is escaped because matplotlib reads text between two dollars as mathtext.
  """
  ids = [int(i) for i in np.asarray(ids).reshape(-1)]
  if tokenizer is None:
    return [str(i) for i in ids]
  specials = {tokenizer.pad_id: '<pad>', tokenizer.bos_id: '<s>', tokenizer.eos_id: '</s>', tokenizer.unk_id: '<unk>'}
  to_token = getattr(tokenizer, 'id_to_token', None)
  out = []
  for i in ids:
    # decode() drops specials and stops at EOS, so it cannot name them; id_to_token keeps leading spaces.
    text = specials.get(i) or (to_token(i) if to_token else tokenizer.decode([i])) or str(i)
    out.append(text.replace('$', r'\$'))
  return out


def real_length(ids, pad_id: int = 0) -> int:
  """Positions up to the last non-pad id of one row (batches are right-padded)."""
  nonpad = np.flatnonzero(np.asarray(ids).reshape(-1) != pad_id)
  return int(nonpad[-1]) + 1 if nonpad.size else 0


def crop_maps(tree, queries: int, keys: int):
  """Every [..., T, S] array of a weights tree cut to [..., :queries, :keys] (numpy)."""
  return jax.tree.map(lambda w: np.asarray(w)[..., :queries, :keys], tree)


def attention_maps(model, call: Callable) -> dict[str, Any]:
  """The attention maps the model's layers sow while call(model) runs, by group (layers.capture)."""
  _, maps = capture_attention(call, model)
  if not maps:
    raise NotImplementedError(f'{type(model).__name__} does not return attention weights (none of its layers sows '
                              'any inside nnx.capture), so there is nothing to plot.')
  return maps


def last_layer(maps, group: str):
  """The last layer's weights [B, N, Q, K] of one group of captured maps ('self', 'cross'), or None when the model
  sowed none (a variant without attention weights)."""
  layers = maps.get(group) if maps else None
  if layers is None or (isinstance(layers, (list, tuple)) and not layers):
    return None
  return layers[-1] if isinstance(layers, (list, tuple)) else layers


def salient_mass(weights_BNQK, salient_BL, valid_BL, use_cls: bool):
  """Attention mass on the salient keys per row [B]: the cls query (key 0 is the cls token) or the mean over the
  valid queries; weights averaged over heads."""
  w_BQK = weights_BNQK.astype(jnp.float32).mean(1)
  salient_BL = salient_BL.astype(jnp.float32)
  if use_cls:
    return jnp.einsum('BK,BK->B', w_BQK[:, 0, 1:], salient_BL)
  valid = valid_BL.astype(jnp.float32)
  per_query_BQ = jnp.einsum('BQK,BK->BQ', w_BQK, salient_BL)
  return (per_query_BQ * valid).sum(-1) / jnp.maximum(valid.sum(-1), 1.0)


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

  # --- attention of one example (--plot, attention statistics in result tables)
  def attention_for_plot(self, model: nnx.Module, batch: Batch) -> dict[str, Any]:
    """The attention of the batch's first example, cropped to its real length.

    Returns a dict with
      kind, weights: what `analysis.figures_for_run` takes (weights: a tree of numpy [1, ...] maps);
      any other keyword of figures_for_run: labels (tokens, source_tokens, target_tokens), image, grid, ...;
      causal: map groups (names as `analysis.maps.split_layer` gives them, e.g. 'self') with a causal mask;
      cross: map groups whose queries and keys are different sequences (no attention distance);
      positions: optional {group: (query_positions, key_positions)} for the attention distance.
    """
    raise NotImplementedError(f'the {self.kind!r} objective has no attention_for_plot.')

  def run_for_plot(self, name: str, model: nnx.Module, fn: Callable, batch: Batch):
    """fn(model, batch) compiled once per model structure (seeds of a variant share it), results as numpy."""
    jitted, state = self.compiled(f'plot_{name}', model, fn)
    return jax.device_get(jitted(state, {k: np.asarray(v)[:1] for k, v in batch.items()}))

  def tokenizer_for(self, key: str):
    tokenizers = getattr(self.task, 'tokenizers', None) or {}
    return tokenizers.get(key) or getattr(self.task, 'tokenizer', None)

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
