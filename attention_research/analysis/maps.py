"""Attention weights as models return them -> a flat, named dict of arrays, grouped by layer.

Models return weights in nested containers: a Transformer gives a list of per-layer dicts
{'self': [B, N, T, S], 'cross': [B, N, T, S] or None}, possibly under 'encoder'/'decoder' keys; NNX `sow`
gives tuples inside an `nnx.State`. `flatten` turns any such tree into {'decoder/layer_1/cross': array}, and
`group_layers` stacks the maps that differ only by their layer index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

_LAYER = re.compile(r'^(?:layers?|blocks?|l)?[_-]?(\d+)$', re.IGNORECASE)


def _is_array(x) -> bool:
  return hasattr(x, 'shape') and hasattr(x, 'dtype')


def flatten(tree, prefix: str = '') -> dict[str, np.ndarray]:
  """{'path/to/map': np.ndarray}: list items are named layer_<i>, dict keys keep their names; None leaves
  (an encoder layer with no cross-attention) are dropped; a 1-tuple from NNX `sow` is unwrapped."""
  if hasattr(tree, 'to_pure_dict'):  # nnx.State
    tree = tree.to_pure_dict()
  if hasattr(tree, 'get_value') and not _is_array(tree):  # an nnx.Variable
    tree = tree.get_value()
  out: dict[str, np.ndarray] = {}
  if tree is None:
    return out
  if _is_array(tree):
    out[prefix or 'attention'] = np.asarray(tree)
    return out
  if isinstance(tree, Mapping):
    for key, value in tree.items():
      out.update(flatten(value, f'{prefix}/{key}' if prefix else str(key)))
    return out
  if isinstance(tree, Sequence) and not isinstance(tree, str):
    if isinstance(tree, tuple) and len(tree) == 1:
      return flatten(tree[0], prefix)
    for i, value in enumerate(tree):
      out.update(flatten(value, f'{prefix}/layer_{i}' if prefix else f'layer_{i}'))
    return out
  raise ValueError(f'cannot read attention weights from a {type(tree).__name__} at {prefix or "the root"!r}; '
                   'expected arrays in nested dicts, lists or tuples.')


def split_layer(name: str) -> tuple[str, int | None]:
  """'decoder/layer_2/cross' -> ('decoder/cross', 2); a name without a layer index -> (name, None)."""
  parts, layer, kept = name.split('/'), None, []
  for part in parts:
    m = _LAYER.match(part)
    if m and layer is None:
      layer = int(m.group(1))
    else:
      kept.append(part)
  return '/'.join(kept) or 'attention', layer


def group_layers(maps: Mapping[str, np.ndarray]) -> dict[str, list[tuple[int, str, np.ndarray]]]:
  """{'decoder/cross': [(layer, full_name, array), ...] sorted by layer}."""
  groups: dict[str, list[tuple[int, str, np.ndarray]]] = {}
  for name, w in maps.items():
    group, layer = split_layer(name)
    groups.setdefault(group, []).append((-1 if layer is None else layer, name, w))
  return {g: sorted(items, key=lambda t: t[0]) for g, items in groups.items()}
