"""The pure train step: a jit-compiled function of (TrainState, batch) -> (TrainState, metrics).

The NNX model is split once into a static graphdef and arrays (params, RNG streams, the rest such as
batch statistics). Only arrays flow through the step, which is what lets jax.vmap stack the members
of a seed group or sweep, jax.sharding replicate them over devices, and orbax save them.

Dropout keys are not carried: each step reseeds the model's RNG streams from
fold_in(member key, step), so a run resumed from a checkpoint draws exactly the same randomness.
"""

from __future__ import annotations

import time
import zlib
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

PARAMS = nnx.Param
RNGS = nnx.RngState


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar ([M] when stacked)
  params: Any  # nnx.State of nnx.Param
  rest: Any  # nnx.State of every other non-RNG variable (batch statistics, ...)
  opt_state: Any
  rng: jax.Array  # raw uint32 key data: orbax-friendly, unlike typed keys

  def as_dict(self) -> dict:
    return {'step': self.step, 'params': self.params, 'rest': self.rest, 'opt_state': self.opt_state,
            'rng': self.rng}

  @classmethod
  def from_dict(cls, d) -> 'TrainState':
    return cls(**d)


def split_model(model: nnx.Module):
  """-> (graphdef, params, rng_state, rest)."""
  return nnx.split(model, PARAMS, RNGS, ...)


def merge_model(graphdef, params, rng_state, rest) -> nnx.Module:
  return nnx.merge(graphdef, params, rng_state, rest, copy=True)


def init_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int):
  graphdef, params, rng_state, rest = split_model(model)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, rest=rest, opt_state=tx.init(params),
                     rng=jax.random.key_data(jax.random.key(seed)))
  return graphdef, rng_state, state


def stream_names(rng_state) -> tuple[str, ...]:
  """The names (tags) of the RNG streams in a model's nnx.RngState."""
  return tuple(sorted({v.tag for _, v in nnx.to_flat_state(rng_state) if isinstance(v, nnx.RngKey)}))


def reseed(model: nnx.Module, key: jax.Array, streams: tuple[str, ...]):
  """nnx.reseed of every stream in `streams` to fold_in(key, crc32(stream name)), its count back to 0.

  The policy hands nnx.reseed the derived key itself (nnx.reseed would otherwise fold the count into it), so a
  stream draws exactly what it drew before this used nnx.reseed, and runs stay comparable across versions.
  """
  for name in streams:
    stream_key = jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)
    nnx.reseed(model, policy=lambda path, derived, shape, k=stream_key: jnp.broadcast_to(k, shape), **{name: 0})


def num_params(params) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))


def make_train_step(loss_fn: Callable, graphdef, rng_state, tx: optax.GradientTransformation) -> Callable:
  """step(state, batch) -> (state, metrics); loss_fn(model, batch, rng) -> (loss, metrics)."""

  streams = stream_names(rng_state)

  def step(state: TrainState, batch):
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

    def objective(params):
      model = merge_model(graphdef, params, rng_state, state.rest)
      reseed(model, key, streams)
      loss, metrics = loss_fn(model, batch, key)
      _, _, _, rest = split_model(model)
      return loss, (metrics, rest)

    (loss, (metrics, rest)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
    new = state.replace(step=state.step + 1, params=params, rest=rest, opt_state=opt_state)
    return new, metrics

  return step


class CompiledStep:
  """jit + ahead-of-time compile per input signature, so compile time and memory are measured."""

  def __init__(self, fn: Callable, *, donate: bool = True, out_shardings=None):
    kwargs = {'donate_argnums': (0,)} if donate else {}
    if out_shardings is not None:
      kwargs['out_shardings'] = out_shardings
    self._jitted = jax.jit(fn, **kwargs)
    self._compiled: dict = {}
    self.compile_seconds = 0.0
    self.memory_bytes = 0  # XLA's estimate for the largest compiled program

  def __call__(self, state, batch):
    sig = jax.tree.map(lambda x: (x.shape, x.dtype, getattr(x, 'sharding', None)), batch)
    key = str(sig)
    compiled = self._compiled.get(key)
    if compiled is None:
      t0 = time.perf_counter()
      compiled = self._jitted.lower(state, batch).compile()
      self.compile_seconds += time.perf_counter() - t0
      self.memory_bytes = max(self.memory_bytes, _program_bytes(compiled))
      self._compiled[key] = compiled
    return compiled(state, batch)


def _program_bytes(compiled) -> int:
  try:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)
  except Exception:  # some backends have no analysis
    return 0
