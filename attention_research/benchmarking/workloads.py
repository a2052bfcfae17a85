"""The benchmark's workloads: groups of cases that are timed together (interleaved) and compared in a table.

A Group is one shape and one pass (forward, forward+backward, a layer's training step, or compile-only
memory); its cases are the project's variants and the baselines (jax.nn, torch, Flax's layer). Cases are
built lazily, so a skipped case (too large to materialise, torch missing) costs nothing.

Useful FLOPs are those of exact softmax attention, 4 B N T S H for the two matrix products over the
visible (query, key) pairs: half of them when causal, the band when local; forward+backward counts 3.5x
the forward, FlashAttention's convention (the backward pass has five matrix products to the forward's two).
Approximate and recurrent variants are charged the FLOPs of the exact attention they replace, so their GFLOP/s
is an effective rate.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from attention_research import attention
from attention_research.attention import _heads_major
from attention_research.benchmarking import baselines, layer_steps, recurrent, seed_steps, timing

WORKLOADS = ('dense', 'gqa', 'local', 'decode', 'linear', 'memory', 'layers', 'seeds', 'recurrent', 'recurrent_decode')
VARIANTS = ('flash', 'dot_product', 'local', 'linear', 'performer') + recurrent.RECURRENT_VARIANTS
BASELINES = ('jax.nn', 'torch', 'flax', 'sequential')
FWD, FWD_BWD, TRAIN, MEMORY = 'fwd', 'fwd+bwd', 'train step', 'memory (compile only)'
BACKWARD_FLOPS = 3.5

# Sequence lengths per workload: (full run, --quick run).
LENGTHS = {
    'dense': ((1024, 4096, 16384), (1024,)),
    'gqa': ((4096,), (1024,)),
    'local': ((4096, 16384), (4096,)),
    'decode': ((4096, 16384), (4096,)),  # key/value cache lengths; one query, all heads and grouped (K=2)
    'linear': ((1024, 4096, 16384, 65536), (1024, 4096)),
    'memory': ((32768,), (32768,)),
    'layers': ((1024,), (256,)),
    'seeds': ((64,), (32,)),  # the default suite's MQAR length is 32
  'recurrent': ((1024, 4096, 16384, 65536), (256, 1024)),
  'recurrent_decode': ((4096, 16384), (256, 1024)),  # cache length = position of the recurrent step
}
LOCAL_WINDOW = 256
HEADS_MAJOR_CASE = 'dot_product, head-major cache'  # the decode workload's layer-cache layout
GQA_KV_HEADS = 2
# Exact attention past this length costs minutes per call on a CPU; the linear-time rows stop comparing there.
MAX_EXACT_LENGTH = 16384
LAYER_WIDTH, LAYER_MLP, LAYER_BATCH = 512, 2048, 2
SEED_COUNT, SEED_BATCH = 3, 32


@dataclasses.dataclass(frozen=True)
class Shape:
  T: int
  S: int
  B: int = 1
  N: int = 8
  K: int = 8
  H: int = 64
  causal: bool = False
  window: int | None = None  # local attention: keys within `window` on each side


@dataclasses.dataclass
class Group:
  workload: str
  pass_: str
  shape: Shape
  flops: float | None
  cases: dict[str, Callable[[], timing.Prepared | str]]
  # Case name -> exponent of its time in T: the runner extrapolates from the last length it ran and skips a case
  # whose repeats would exceed its time budget. Cases not named are always run.
  scaling: dict[str, float] = dataclasses.field(default_factory=dict)


def visible_pairs(shape: Shape) -> float:
  if shape.window is not None:
    t = np.arange(shape.T)[:, None] + (shape.S - shape.T)
    lo, hi = np.maximum(t - shape.window, 0), np.minimum(t + shape.window, shape.S - 1)
    return float(np.sum(hi - lo + 1))
  return shape.T * shape.S / (2.0 if shape.causal else 1.0)


def useful_flops(shape: Shape, pass_: str) -> float:
  forward = 4.0 * shape.B * shape.N * shape.H * visible_pairs(shape)
  return forward * (BACKWARD_FLOPS if pass_ == FWD_BWD else 1.0)


def inputs(shape: Shape, dtype):
  ks = jax.random.split(jax.random.PRNGKey(0), 4)
  q = jax.random.normal(ks[0], (shape.B, shape.T, shape.N, shape.H), dtype)
  k = jax.random.normal(ks[1], (shape.B, shape.S, shape.K, shape.H), dtype)
  v = jax.random.normal(ks[2], (shape.B, shape.S, shape.K, shape.H), dtype)
  cot = jax.random.normal(ks[3], (shape.B, shape.T, shape.N, shape.H), jnp.float32)
  return q, k, v, cot


def variant_fn(name: str, shape: Shape):
  """The project's variant as a function of (q, k, v) for this shape."""
  c = shape.causal
  if name == 'flash':
    return lambda q, k, v: attention.flash(q, k, v, is_causal=c)
  if name == 'dot_product':
    return lambda q, k, v: attention.dot_product(q, k, v, is_causal=c)
  if name == 'local':
    return lambda q, k, v: attention.local(q, k, v, window=shape.window, is_causal=c)
  if name == 'linear':
    return lambda q, k, v: attention.linear(q, k, v, is_causal=c)
  if name == 'performer':
    from attention_research.attention.performer import draw_features  # pylint: disable=g-import-not-at-top
    features = draw_features(jax.random.PRNGKey(1), 256, shape.H)
    return lambda q, k, v: attention.performer(q, k, v, is_causal=c, features=features)
  raise ValueError(f'unknown variant {name!r}; known: {VARIANTS}.')


def _attention_case(fn, shape: Shape, pass_: str, dtype, compile_only=False):
  def build():
    q, k, v, cot = inputs(shape, dtype)
    f = baselines.with_backward(fn, cot) if pass_ in (FWD_BWD, MEMORY) else fn
    if compile_only:
      _, seconds, temp = timing.compile_jax(f, q, k, v)
      return timing.Prepared(lambda: None, seconds, temp)
    return timing.prepare_jax(f, q, k, v)
  return build


def _jax_nn_case(shape: Shape, pass_: str, dtype, compile_only=False):
  size = baselines.materialised_bytes(shape.B, shape.N, shape.T, shape.S, pass_ != FWD)
  if size > baselines.MAX_MATERIALISED_BYTES and not compile_only:
    return lambda: f'skipped: materialises {size / 2**30:.0f} GiB of scores'
  return _attention_case(baselines.jax_nn(is_causal=shape.causal, window=shape.window), shape, pass_, dtype,
                         compile_only)


def _torch_case(shape: Shape, pass_: str, dtype):
  def build():
    q, k, v, cot = inputs(shape, dtype)
    return baselines.torch_sdpa(q, k, v, cot, is_causal=shape.causal, backward=pass_ == FWD_BWD)
  return build


def _attention_group(workload, shape, pass_, variants, dtype, *, torch=True, jax_nn=True):
  cases = {name: _attention_case(variant_fn(name, shape), shape, pass_, dtype) for name in variants}
  if jax_nn:
    cases['jax.nn'] = _jax_nn_case(shape, pass_, dtype)
  if torch:
    cases['torch'] = _torch_case(shape, pass_, dtype)
  return Group(workload, pass_, shape, useful_flops(shape, pass_), cases)


def _heads_major_case(shape: Shape, dtype):
  """dot_product's step over a cache stored head-major, [B, K, S, H], as MultiHeadAttention keeps it (and torch
  its own): the copies are made before timing, as for torch."""
  def build():
    q, k, v, _ = inputs(shape, dtype)
    k, v = (jnp.swapaxes(x, -3, -2) for x in (k, v))  # eager: new arrays laid out head-major
    return timing.prepare_jax(lambda q, k, v: _heads_major.attention(q, k, v), q, k, v)
  return build


def _recurrent_group(L, pass_, variants, dtype, quick):
  """Causal flash and linear beside each recurrent variant's chunked form (all causal), T = S = L."""
  shape = Shape(L, L, causal=True)
  cases = {name: _attention_case(variant_fn(name, shape), shape, pass_, dtype)
           for name in ('flash', 'linear') if name in variants}

  def case(name):
    def build():
      C = recurrent.tuned_chunk_size(name, dtype, quick)
      p = recurrent.prepare_chunked(name, C, shape.B, L, shape.N, shape.K, shape.H, dtype, pass_ == FWD_BWD)
      p.note = f'chunk {C}'
      return p
    return build

  cases.update({name: case(name) for name in recurrent.RECURRENT_VARIANTS if name in variants})
  scaling = {name: 2.0 if name == 'flash' else 1.0 for name in cases}
  return Group('recurrent', pass_, shape, useful_flops(shape, pass_), cases, scaling)


def _recurrent_decode_group(L, variants, dtype):
  """flash with one query against an L-long cache beside each variant's step from the state after L tokens."""
  shape = Shape(1, L)
  cases = {'flash': _attention_case(variant_fn('flash', shape), shape, FWD, dtype)} if 'flash' in variants else {}

  def case(name):
    def build():
      p = recurrent.prepare_step(name, L, shape.B, shape.N, shape.K, shape.H, dtype)
      p.note = f'state after {L} tokens'
      return p
    return build

  cases.update({f'{name}.step': case(name) for name in recurrent.RECURRENT_VARIANTS if name in variants})
  return Group('recurrent_decode', FWD, shape, None, cases)


def _layer_group(kind: str, T: int, variants, dtype):
  def case(implementation):
    def build():
      model = layer_steps.build(kind, implementation, d_model=LAYER_WIDTH, num_heads=8, mlp_dim=LAYER_MLP,
                                dtype=dtype)
      step, params = layer_steps.train_step(model)
      x = jax.random.normal(jax.random.PRNGKey(0), (LAYER_BATCH, T, LAYER_WIDTH), dtype)
      return timing.prepare_jax(step, params, x)
    return build
  label = 'MultiHeadAttention' if kind == 'attention' else 'TransformerBlock'
  cases = {f'{label}[{v}]': case(v) for v in variants}
  cases['flax'] = case('flax')
  return Group(f'layers:{label}', TRAIN, Shape(T=T, S=T, B=LAYER_BATCH), None, cases)


def groups(workloads, variants, *, dtype=jnp.float32, quick=False, lengths=None, head_dim=64) -> list[Group]:
  """Every Group of the chosen workloads; `variants` filters the project's variants, lengths override;
  head_dim applies to the attention workloads (dense, gqa, local, decode, linear, memory)."""
  attention_shape = functools.partial(Shape, H=head_dim)
  unknown = sorted(set(workloads) - set(WORKLOADS))
  if unknown:
    raise ValueError(f'unknown workloads {unknown}; known: {WORKLOADS}.')
  unknown = sorted(set(variants) - set(VARIANTS))
  if unknown:
    raise ValueError(f'unknown variants {unknown}; known: {VARIANTS}.')
  keep = lambda *names: [n for n in names if n in variants]
  out = []
  for w in workloads:
    Ls = tuple(lengths) if lengths else LENGTHS[w][1 if quick else 0]
    for L in Ls:
      if w == 'dense':
        for pass_ in (FWD, FWD_BWD):
          for causal in (False, True):
            out.append(_attention_group(w, attention_shape(L, L, causal=causal), pass_, keep('flash'), dtype))
      elif w == 'gqa':
        for pass_ in (FWD, FWD_BWD):
          out.append(_attention_group(w, attention_shape(L, L, K=GQA_KV_HEADS), pass_, keep('flash'), dtype))
      elif w == 'local':
        window = min(LOCAL_WINDOW, L)
        out.append(_attention_group(w, attention_shape(L, L, window=window), FWD, keep('local', 'flash'), dtype,
                                    torch=False))
      elif w == 'decode':
        for name, kv_heads in (('decode', 8), ('decode:gqa', GQA_KV_HEADS)):
          group = _attention_group(name, attention_shape(1, L, K=kv_heads), FWD, keep('flash', 'dot_product'), dtype)
          if 'dot_product' in variants:
            group.cases[HEADS_MAJOR_CASE] = _heads_major_case(group.shape, dtype)
          out.append(group)
      elif w == 'linear':
        exact = keep('flash') if L <= MAX_EXACT_LENGTH else []
        out.append(_attention_group(w, attention_shape(L, L), FWD, keep('linear', 'performer') + exact, dtype,
                                    torch=False, jax_nn=False))
      elif w == 'memory':
        shape = attention_shape(L, L)
        cases = {n: _attention_case(variant_fn(n, shape), shape, MEMORY, dtype, compile_only=True)
                 for n in keep('flash')}
        cases['jax.nn'] = _jax_nn_case(shape, MEMORY, dtype, compile_only=True)
        out.append(Group(w, MEMORY, shape, None, cases))
      elif w == 'layers':
        for kind in ('attention', 'block'):
          out.append(_layer_group(kind, L, keep('flash'), dtype))
      elif w == 'seeds':
        out.append(Group(f'seeds:{SEED_COUNT}', TRAIN, Shape(T=L, S=L, B=SEED_BATCH), None,
                         seed_steps.cases(SEED_COUNT, L, SEED_BATCH)))
      elif w == 'recurrent':
        for pass_ in (FWD, FWD_BWD):
          out.append(_recurrent_group(L, pass_, variants, dtype, quick))
      elif w == 'recurrent_decode':
        out.append(_recurrent_decode_group(L, variants, dtype))
  return out
