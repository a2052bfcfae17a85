"""The config checks every model shares: static integer sizes (attention._checks.check_int) and variant options
(layers.options.freeze_options)."""

from __future__ import annotations

from attention_research.attention._checks import check_int
from attention_research.layers.options import freeze_options

__all__ = ['check_int', 'check_positive', 'freeze_options']


def check_positive(name: str, value, *, allow_none: bool = False) -> int | None:
  """value as an int >= 1 (None passes with allow_none); bools, floats and traced values raise ValueError."""
  if value is None and allow_none:
    return None
  return check_int(name, value)
