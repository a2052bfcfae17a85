"""Variant options as a hashable mapping: configs and layers are static in NNX graph definitions, which jit
caches key on, so their option mappings must hash (lists become tuples)."""

from __future__ import annotations

from typing import Any, Mapping

from flax.core import FrozenDict


def freeze_options(options, name: str = 'options') -> FrozenDict:
  """None, a mapping or (key, value) pairs -> FrozenDict with list values as tuples; ValueError otherwise."""
  if options is None:
    return FrozenDict()
  items = options.items() if isinstance(options, Mapping) else options
  try:
    frozen: dict[str, Any] = {str(k): tuple(v) if isinstance(v, list) else v for k, v in items}
  except (TypeError, ValueError) as e:
    raise ValueError(f'{name} must be a mapping of variant options; got {options!r}.') from e
  return FrozenDict(frozen)
