"""Reading sown attention weights with `nnx.capture`.

Attention layers sow their weights as `nnx.Intermediate` under the name 'attention_weights', and only while an
`nnx.capture` that collects `nnx.Intermediate` runs (`capturing`): outside one they neither form the weights
(fast kernels stay fast) nor sow (flax deprecates sowing outside a capture). A model's call returns its output;
the weights are read with

    logits, maps = capture_attention(lambda m: m(tokens), model)
    logits, maps = capture_attention(ASR.decode_targets, model, targets_in, memory, frame_lengths)

From sown paths to map groups. A layer's weights are sown at a path such as
`('decoder', 'blocks', 1, 'cross_attention', 'attention_weights')`:
  kind    the attribute that holds the attention module: 'self_attention' -> 'self', 'cross_attention' ->
          'cross', any other attribute keeps its name; weights sown by the model itself -> 'attention'.
  layer   the first integer on the path (the block's index in its stack); none for a single map.
  stack   the first name on the path (the model attribute holding the stack: 'encoder', 'decoder', 'stack').
  group   the kind, except that in a model where some stack has cross-attention, the self-attention of every
          stack without cross-attention is named after its stack: an encoder-decoder gives
          {'encoder': ..., 'self': ..., 'cross': ...}, a single stack (Encoder, ViT, DecoderLM) {'self': ...}.
A group with layer indices holds a list of per-layer maps in layer order ([B, N, T, S] each); a group without
them holds its one array (the RNN seq2seq's alignment [B, T, S] under 'attention'). A module called more than
once inside fn reports its last call.
"""

from __future__ import annotations

from typing import Any, Callable

from flax import nnx

NAME = 'attention_weights'
_KINDS = {'self_attention': 'self', 'cross_attention': 'cross'}


def capturing(module: nnx.Module, var_type: type[nnx.Variable] = nnx.Intermediate) -> bool:
  """True only inside an `nnx.capture` that collects var_type for this module."""
  captures = getattr(module, '__captures__', None)
  return captures is not None and any(type(var) is var_type for var in captures)


def sow_if_capturing(module: nnx.Module, name: str, value, var_type: type[nnx.Variable] = nnx.Intermediate):
  """module.sow(var_type, name, value) inside a capture that collects var_type; nothing outside one."""
  if capturing(module, var_type):
    module.sow(var_type, name, value)


def capture_intermediates(fn: Callable, module: nnx.Module, *args, var_type: type[nnx.Variable] = nnx.Intermediate,
                          **kwargs) -> tuple[Any, nnx.State]:
  """(fn(module, *args, **kwargs), State of what module and its submodules sowed of var_type).

  Safe to nest: flax's capture would replace an enclosing capture's collections and then delete them, so those
  are kept aside and restored, and what fn sowed is handed on to the enclosing capture as well.
  """
  outer = {path: m.__captures__ for path, m in nnx.iter_modules(module) if hasattr(m, '__captures__')}
  out, sown = nnx.capture(fn, var_type)(module, *args, **kwargs)
  if outer:
    modules = dict(nnx.iter_modules(module))
    for path, captures in outer.items():
      modules[path].__captures__ = nnx.data(captures)
    for path, variable in nnx.to_flat_state(sown):
      for value in variable.get_value():
        modules[tuple(path[:-1])].sow(var_type, path[-1], value)
  return out, sown


def _group_of(path: tuple, cross_stacks: set) -> tuple[str, int | None]:
  """path: the sowing module's path in the model (() for the model itself)."""
  layer = next((p for p in path if isinstance(p, int)), None)
  kind = _KINDS.get(str(path[-1]), str(path[-1])) if path else 'attention'
  if kind == 'self' and cross_stacks and path[0] not in cross_stacks:
    return str(path[0]), layer
  return kind, layer


def attention_maps(sown: nnx.State) -> dict[str, Any]:
  """The 'attention_weights' a capture collected, arranged by group (see the module docstring)."""
  entries = [(tuple(path[:-1]), variable.get_value()[-1]) for path, variable in nnx.to_flat_state(sown)
             if path[-1] == NAME]
  cross_stacks = {path[0] for path, _ in entries if path and path[-1] == 'cross_attention'}
  groups: dict[str, list] = {}
  for path, value in entries:
    group, layer = _group_of(path, cross_stacks)
    groups.setdefault(group, []).append((layer, value))
  return {group: items[0][1] if items[0][0] is None else [v for _, v in sorted(items, key=lambda t: t[0])]
          for group, items in groups.items()}


def capture_attention(fn: Callable, model: nnx.Module, *args, **kwargs) -> tuple[Any, dict[str, Any]]:
  """(fn(model, *args, **kwargs), its attention maps by group) with every attention layer of model sowing."""
  out, sown = capture_intermediates(fn, model, *args, **kwargs)
  return out, attention_maps(sown)
