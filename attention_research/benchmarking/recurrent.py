"""Cases of the recurrent families (retention, gla, ssd, delta, gated_delta): chunked forms and one decoding step.

Gates are drawn once, outside the timed function, and passed to it as arguments: closed over, they would be
constants that XLA folds at compile time (a cumulative sum over [T, ...] gates took minutes to fold). Log gates are
logsigmoid(normal) and beta is sigmoid(normal), one draw per shape; keys are scaled by 1 / sqrt(H) so the delta
rules stay contractions. Each variant's chunk size is the fastest forward of a few candidates, timed once per run
at a short length (`chunk_size`), and the same size serves the forward+backward rows.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp

from attention_research.benchmarking import timing

RECURRENT_VARIANTS = ('retention', 'gla', 'ssd', 'delta', 'gated_delta')
# (candidates, length) of the chunk-size measurement: full run, --quick run.
CHUNK_CANDIDATES = {False: ((32, 64, 128), 2048), True: ((16, 32), 256)}
TUNING_REPEATS = 2


def module(name: str):
  if name not in RECURRENT_VARIANTS:
    raise ValueError(f'unknown recurrent variant {name!r}; known: {RECURRENT_VARIANTS}.')
  return importlib.import_module(f'attention_research.attention.{name}')


def gates(name: str, B: int, T: int, K: int, H: int, *, key=jax.random.PRNGKey(7)) -> dict:
  """The variant's gates for [B, T] positions and K kv heads (T=None: one decoding step, no T axis)."""
  pos = (B,) if T is None else (B, T)
  k1, k2 = jax.random.split(key)
  log_gate = jax.nn.log_sigmoid(jax.random.normal(k1, pos + (K,)))
  beta = jax.nn.sigmoid(jax.random.normal(k2, pos + (K,)))
  if name == 'retention':
    return {'log_decay': module(name).default_log_decay(K)}
  if name == 'gla':
    return {'log_gate': jax.nn.log_sigmoid(jax.random.normal(k1, pos + (K, H)))}
  if name == 'ssd':
    return {'log_gate': log_gate}
  if name == 'delta':
    return {'beta': beta}
  if name == 'gated_delta':
    return {'beta': beta, 'log_gate': log_gate}
  raise ValueError(f'unknown recurrent variant {name!r}; known: {RECURRENT_VARIANTS}.')


def inputs(B: int, T: int, N: int, K: int, H: int, dtype):
  ks = jax.random.split(jax.random.PRNGKey(0), 4)
  q = jax.random.normal(ks[0], (B, T, N, H), dtype)
  k = (jax.random.normal(ks[1], (B, T, K, H)) / H ** 0.5).astype(dtype)
  v = jax.random.normal(ks[2], (B, T, K, H), dtype)
  cot = jax.random.normal(ks[3], (B, T, N, H), jnp.float32)
  return q, k, v, cot


def chunked_fn(name: str, chunk: int):
  """(q, k, v, gates) -> out of the variant's chunked form."""
  fn = getattr(module(name), name)
  return lambda q, k, v, g: fn(q, k, v, implementation='chunked', chunk_size=chunk, **g)


def prepare_chunked(name: str, chunk: int, B, T, N, K, H, dtype, backward: bool) -> timing.Prepared:
  q, k, v, cot = inputs(B, T, N, K, H, dtype)
  g = gates(name, B, T, K, H)
  forward = chunked_fn(name, chunk)
  if not backward:
    return timing.prepare_jax(forward, q, k, v, g)
  # The cotangent is an argument too: as a [T, ...] constant it cost seconds of constant folding per compile.
  loss = lambda q, k, v, g, cot: jnp.sum(forward(q, k, v, g).astype(jnp.float32) * cot)
  return timing.prepare_jax(jax.value_and_grad(loss, (0, 1, 2)), q, k, v, g, cot)


# (variant, dtype, quick) -> (chosen chunk size, {candidate: forward ms}); measured once per process.
_TUNED: dict = {}


def measure_chunk_sizes(name: str, dtype, quick: bool) -> tuple[int, dict[int, float]]:
  """(fastest chunk size, {candidate: forward ms}) of the variant at B=1, 8 heads, H=64, timed interleaved."""
  candidates, T = CHUNK_CANDIDATES[quick]
  prepared = {C: prepare_chunked(name, C, 1, T, 8, 8, 64, dtype, False) for C in candidates}
  results = timing.run_interleaved(prepared, TUNING_REPEATS)
  ms = {C: results[C].median_s * 1e3 for C in candidates}
  return min(ms, key=ms.get), ms


def tuned_chunk_size(name: str, dtype, quick: bool) -> int:
  key = (name, str(jnp.dtype(dtype)), quick)
  if key not in _TUNED:
    _TUNED[key] = measure_chunk_sizes(name, dtype, quick)
  return _TUNED[key][0]


def tuning_summary() -> dict:
  """Every chunk size chosen so far in this process: {variant: {'chunk': C, 'ms': {...}, 'T': length}}."""
  return {name: {'chunk': C, 'ms': ms, 'T': CHUNK_CANDIDATES[quick][1]}
          for (name, _, quick), (C, ms) in _TUNED.items()}


def prefix_state(name: str, position: int, B, N, K, H, dtype):
  """The state after `position` random tokens (from the chunked form), the cache a decoding step continues."""
  if position == 0:
    return module(name).init_state((B,), K, H, H, jnp.float32)
  q, k, v, _ = inputs(B, position, N, K, H, dtype)
  g = gates(name, B, position, K, H)
  fn = getattr(module(name), name)
  run = jax.jit(lambda q, k, v, g: fn(q, k, v, return_state=True, **g)[1])
  return jax.block_until_ready(run(q, k, v, g))


def prepare_step(name: str, position: int, B, N, K, H, dtype) -> timing.Prepared:
  """One jitted `step` of the variant from the state after `position` tokens."""
  state = prefix_state(name, position, B, N, K, H, dtype)
  ks = jax.random.split(jax.random.PRNGKey(3), 3)
  q_t = jax.random.normal(ks[0], (B, N, H), dtype)
  k_t = (jax.random.normal(ks[1], (B, K, H)) / H ** 0.5).astype(dtype)
  v_t = jax.random.normal(ks[2], (B, K, H), dtype)
  g = gates(name, B, None, K, H)
  step = module(name).step
  return timing.prepare_jax(lambda s, q, k, v, g: step(s, q, k, v, **g), state, q_t, k_t, v_t, g)
