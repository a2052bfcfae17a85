"""Model-facing probes (JAX): gradients with respect to attention weights, and runs with the weights replaced.

The only module of `analysis` that needs JAX and a model; everything it returns is numpy, for the numpy
functions of relevancy, faithfulness and sinks. It rests on one hook of `layers.MultiHeadAttention`: inside an
`nnx.capture` of `nnx.Perturbation` a layer adds P v to its output, P a perturbation of the shape of its weights
W [B, N, T, S] (`Module.perturb`). Every variant's output is W v for its exact or implied weights, so
  - the gradient with respect to P at P = 0 is the gradient with respect to W (attention_gradients), and
  - P = W' - W makes the layer attend with W' instead (run_with_attention: permuted, uniform, a head zeroed).

fn is called as fn(model, *args, **kwargs), as in `layers.capture_attention`; maps and gradients are grouped the
same way ({'self': [per-layer [B, N, T, S]], 'cross': [...], ...}). Pass a deterministic fn (no dropout).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention_research.layers.capture import NAME, attention_maps

# replace(group, layer, weights [B, N, T, S] numpy) -> new weights of that shape, or None to keep them.
Replace = Callable[[str, Any, np.ndarray], Any]


def _by_module(state: nnx.State, last: bool) -> dict[tuple, Any]:
  """{module path: value} of the NAME entries of a captured state (the last sown value when last=True)."""
  out = {}
  for path, variable in nnx.to_flat_state(state):
    if path[-1] == NAME:
      value = variable.get_value()
      out[tuple(path[:-1])] = value[-1] if last else value
  return out


def grouped(by_module: dict[tuple, Any]) -> dict[str, Any]:
  """{module path: array} -> the groups of layers.capture (numpy arrays)."""
  flat = [((*path, NAME), nnx.Intermediate((np.asarray(value),))) for path, value in by_module.items()]
  return attention_maps(nnx.from_flat_state(flat))


def groups_of(by_module: dict[tuple, Any]) -> dict[tuple, tuple[str, Any]]:
  """{module path: (group, layer)}: where each module's weights land in the grouped maps."""
  tagged = {path: np.full((1,), i) for i, path in enumerate(by_module)}
  where = {}
  for group, value in grouped(tagged).items():
    for layer, v in (enumerate(value) if isinstance(value, list) else [(None, value)]):
      where[list(by_module)[int(v[0])]] = (group, layer)
  return where


def _perturbations(deltas: dict[tuple, Any]) -> nnx.State:
  return nnx.from_flat_state([((*path, NAME), nnx.Perturbation(jnp.asarray(d, jnp.float32)))
                              for path, d in deltas.items()])


_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def _is_graph_node(x) -> bool:
  return isinstance(x, (nnx.Pytree, nnx.Variable))


def _split_arguments(args, kwargs):
  """(arrays, static) with the arrays of (args, kwargs) apart from the rest (tree structure, plain values), or
  None when some value is neither (a module, an unhashable object): then the caller runs fn op by op."""
  leaves, tree = jax.tree.flatten((args, kwargs), is_leaf=_is_graph_node)
  is_array = [isinstance(x, (jax.Array, np.ndarray)) for x in leaves]
  if not all(a or isinstance(x, _PLAIN) for x, a in zip(leaves, is_array)):
    return None
  return [x for x, a in zip(leaves, is_array) if a], (tree, tuple(None if a else x for x, a in zip(leaves, is_array)))


def _join_arguments(arrays, static):
  tree, plain = static
  arrays = iter(arrays)
  return jax.tree.unflatten(tree, [next(arrays) if x is None else x for x in plain])


def _compilable(fn, args, kwargs):
  """_split_arguments's (arrays, static), or None where fn cannot be a static argument: a module, or a method
  bound to one (it would reach the module outside the compiled copy)."""
  bound = getattr(fn, '__self__', None)
  if _is_graph_node(fn) or _is_graph_node(bound):
    return None
  try:
    hash(fn)
  except TypeError:
    return None
  return _split_arguments(args, kwargs)


def attention_weights(fn: Callable, model: nnx.Module, *args, **kwargs) -> tuple[Any, dict[tuple, np.ndarray]]:
  """(fn's output, {module path: weights [B, N, T, S]}) of every attention layer that ran."""
  out, sown = nnx.capture(fn, nnx.Intermediate)(model, *args, **kwargs)
  return out, {path: np.asarray(w) for path, w in _by_module(sown, last=True).items()}


def attention_gradients(fn: Callable, model: nnx.Module, *args, **kwargs) -> tuple[float, dict, dict]:
  """(value, maps, grads): fn returns a scalar (e.g. the logit of the explained class summed over the batch);
  maps are the attention weights and grads d value / d weights, both grouped as in layers.capture_attention."""
  _, zeros = nnx.capture(fn, nnx.Perturbation)(model, *args, **kwargs)
  if not _by_module(zeros, last=False):
    raise ValueError('fn ran no attention layer that takes perturbations (layers.MultiHeadAttention).')
  split = _compilable(fn, args, kwargs)
  if split is None:
    (out, sown), grads = _value_and_grad(fn, model, zeros, args, kwargs)
  else:
    (out, sown), grads = _compiled_value_and_grad(fn, model, zeros, *split)
  maps = grouped({p: w for p, w in _by_module(sown, last=True).items()})
  return float(out), maps, grouped(_by_module(grads, last=False))


def _value_and_grad(fn, model, zeros, args, kwargs):
  def value(model, perturbations):
    out, sown = nnx.capture(fn, nnx.Intermediate, init=perturbations)(model, *args, **kwargs)
    if jnp.ndim(out) != 0:
      raise ValueError(f'attention_gradients needs fn to return a scalar; got shape {jnp.shape(out)}.')
    return out, sown

  return nnx.value_and_grad(value, argnums=1, has_aux=True)(model, zeros)


# Only the gradient pass is compiled (fn static, its array arguments traced): op-by-op autodiff of a model is
# several times slower than one program, while the forward passes of run_with_attention reuse the cached
# compilations of single ops from call to call and compiling them costs more than it saves on small models.
@functools.partial(nnx.jit, static_argnums=(0, 4))
def _compiled_value_and_grad(fn, model, zeros, arrays, static):
  return _value_and_grad(fn, model, zeros, *_join_arguments(arrays, static))


def input_gradients(fn: Callable, inputs) -> tuple[float, np.ndarray]:
  """(fn(inputs), d fn / d inputs) for a scalar fn of continuous inputs (embeddings, patches, features); with
  relevancy.gradient_x_input, the non-attention baseline."""
  value, grad = jax.value_and_grad(fn)(jnp.asarray(inputs))
  return float(value), np.asarray(grad)


def run_with_attention(fn: Callable, model: nnx.Module, *args, replace: Replace, max_passes: int | None = None,
                       tol: float = 1e-6, **kwargs) -> tuple[Any, dict, dict]:
  """fn's output when each attention layer attends with replace(group, layer, W) instead of its weights W.

  A replaced layer changes the input of the layers after it, and so their weights; replace sees each layer's
  weights given the replacements before it: the model runs again until no layer's weights change (at most
  one pass more than there are attention layers). replace must be a deterministic function of its arguments
  (draw random permutations once, outside it).

  Returns:
    (output, maps, replaced): maps the weights W each layer formed in the last pass, replaced what it used
    instead, both grouped as in layers.capture_attention.
  """
  out, weights = attention_weights(fn, model, *args, **kwargs)
  where = groups_of(weights)
  passes = len(weights) + 1 if max_passes is None else max_passes
  used = {}
  for _ in range(passes):
    used = {}
    for path, w in weights.items():
      new = replace(*where[path], w)
      used[path] = w if new is None else np.asarray(new, np.float64)
      if used[path].shape != w.shape:
        raise ValueError(f'replace gave weights of shape {used[path].shape} for {where[path]}, whose weights '
                         f'have shape {w.shape}.')
    deltas = {path: used[path] - w for path, w in weights.items()}
    out, sown = nnx.capture(fn, nnx.Intermediate, init=_perturbations(deltas))(model, *args, **kwargs)
    fresh = {path: np.asarray(w) for path, w in _by_module(sown, last=True).items()}
    changed = max(float(np.abs(fresh[p] - weights[p]).max()) for p in weights)
    weights = fresh
    if changed <= tol:
      break
  return out, grouped(weights), grouped(used)


def zero_heads(heads: set[tuple[str, Any, int]]) -> Replace:
  """A replace for run_with_attention that zeroes the weights of the (group, layer, head) triples given: the
  head contributes nothing to its layer's output (the masking of head-ablation studies, Michel et al. 2019)."""
  def replace(group, layer, w):
    drop = [h for g, l, h in heads if g == group and l == layer]
    if not drop:
      return None
    w = w.copy()
    w[..., drop, :, :] = 0.0
    return w
  return replace
