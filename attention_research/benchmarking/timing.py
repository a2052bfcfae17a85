"""Timing that survives a busy machine: compile apart, warm up, then interleave the repeats of every case.

Cases compared in one row group run round-robin (a, b, c, a, b, c, ...), so a slow spell on a shared CPU
hits all of them alike and their ratios stay meaningful even when absolute times drift. The median of the
repeats is reported; compile time is measured once, separately, from `jit(f).lower(...).compile()`, and the
same compiled executable is what gets timed.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp

MATMUL_SIZE = 2048


@dataclasses.dataclass
class Prepared:
  """A case ready to time: `call()` runs it once to completion."""
  call: Callable[[], object]
  compile_s: float | None = None
  temp_bytes: int | None = None
  note: str = ''  # how the case was set up (e.g. its chunk size), shown beside its row


@dataclasses.dataclass
class Timed:
  median_s: float | None = None
  times_s: list[float] = dataclasses.field(default_factory=list)
  compile_s: float | None = None
  temp_bytes: int | None = None
  skipped: str | None = None  # why the case did not run
  note: str = ''


def temp_bytes(compiled) -> int | None:
  """Temporary buffer bytes XLA allocates for one call (None where the backend does not say)."""
  try:
    stats = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  (some backends raise instead of returning None)
    return None
  return None if stats is None else getattr(stats, 'temp_size_in_bytes', None)


def compile_jax(fn, *args) -> tuple[Callable, float, int | None]:
  """jit + lower + compile, timed; returns (compiled, seconds, temporary bytes)."""
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  return compiled, time.perf_counter() - start, temp_bytes(compiled)


def compile_jax_donated(fn, donate_argnums, *args) -> tuple[Callable, float, int | None]:
  """compile_jax for a step that consumes its state (donated buffers are reused for the new state)."""
  start = time.perf_counter()
  compiled = jax.jit(fn, donate_argnums=donate_argnums).lower(*args).compile()
  return compiled, time.perf_counter() - start, temp_bytes(compiled)


def prepare_jax(fn, *args) -> Prepared:
  compiled, seconds, temp = compile_jax(fn, *args)
  return Prepared(lambda: jax.block_until_ready(compiled(*args)), seconds, temp)


def matmul_case(dtype=jnp.float32, size: int = MATMUL_SIZE) -> tuple[Prepared, float]:
  """The ceiling every row is compared with: one size x size matmul, and its FLOPs."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), dtype)
  b = jax.random.normal(jax.random.PRNGKey(1), (size, size), dtype)
  return prepare_jax(lambda a, b: a @ b, a, b), 2.0 * size ** 3


def run_interleaved(prepared: dict[str, Prepared | str], repeats: int, warmup: int = 1) -> dict[str, Timed]:
  """Times every Prepared case `repeats` times round-robin after `warmup` calls; strings are skip reasons."""
  results = {}
  live = {}
  for name, case in prepared.items():
    if isinstance(case, str):
      results[name] = Timed(skipped=case)
      continue
    results[name] = Timed(compile_s=case.compile_s, temp_bytes=case.temp_bytes, note=case.note)
    live[name] = case
  for _ in range(warmup):
    for case in live.values():
      case.call()
  for _ in range(repeats):
    for name, case in live.items():
      start = time.perf_counter()
      case.call()
      results[name].times_s.append(time.perf_counter() - start)
  for name in live:
    if results[name].times_s:
      results[name].median_s = statistics.median(results[name].times_s)
  return results
