"""Machinery shared by the recurrent attention families (retention, gla, ssd, delta, gated_delta).

Each kv head j carries a state matrix S [H, V], updated once per position; query head n reads kv head n // G:
    o_t = S_t^T (scale q_t),   S_t including the update of step t.
A family supplies three pieces and this module turns them into the three forms of one computation:
  step(s, q_t, k_t, v_t, *gates_t) -> (o_t, s)      one position (recurrent form, cached decoding)
  intra(q, k, v, *gates) -> (o, q_eff, m, r)          one chunk of L positions, in parallel: with S0 the state
      before the chunk, its outputs are o + q_eff S0 and the state after it is m S0 + r (m is [..., H, H], or a
      diagonal [..., E] with E = H or 1)
  weights(q, k, v, *gates) -> [..., G, L, L]          the matrix w with o = w v when S0 = 0
The parallel form is `intra` over one chunk spanning the sequence (quadratic); the chunked form runs `intra` (or
the family's `chunk_intra`, a faster computation of the same chunk) on every chunk at once and passes states
between chunks with a jax.lax.scan (linear in T); the recurrent form scans `step` over time with an O(H V) state.

Internal layout: q [B, K, T, G, H], k [B, K, T, H], v [B, K, T, V], gates [B, K, T, ...], state [B, K, H, V];
C chunk length, c chunk index. Everything is float32 inside.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from attention_research.attention import _checks

IMPLEMENTATIONS = ('parallel', 'chunked', 'recurrent')
DEFAULT_CHUNK_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Family:
  step: Callable
  intra: Callable
  weights: Callable
  # The chunked form's `intra` where it differs from the parallel form's (a faster computation of the same chunk);
  # the parallel form keeps `intra`, so parallel == chunked tests compare two computations.
  chunk_intra: Callable | None = None


def causal_decay(gc):
  """exp(gc_t - gc_s) for s <= t, else 0: gc [..., L] cumulative log gates -> [..., L, L].

  The difference is masked before the exp, so exp never sees the positive gc_t - gc_s of s > t (which overflows
  when gates are near 0) and the gradient of the masked part is exactly 0.
  """
  L = gc.shape[-1]
  seen = jnp.tri(L, dtype=bool)
  diff = gc[..., :, None] - gc[..., None, :]
  return jnp.where(seen, jnp.exp(jnp.where(seen, diff, 0.0)), 0.0)


def _check_options(variant, implementation, chunk_size, is_causal):
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f'{variant}: unknown implementation {implementation!r}; known: {list(IMPLEMENTATIONS)}.')
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f'{variant}: chunk_size must be a positive int; got {chunk_size!r}.')
  if is_causal is not True:
    raise ValueError(f'{variant} attention is causal by construction (a recurrence over positions); is_causal must '
                     f'be True or left at its default, got {is_causal!r}.')


@dataclasses.dataclass
class Prepared:
  """Checked inputs of one call in the internal layout, with padded keys already zeroed."""
  variant: str
  d: _checks.Dims
  q: Any
  k: Any
  v: Any
  keep: Any  # bool [B|1, 1, T] (True = real key) or None
  s0: Any
  dtype: Any

  def gate(self, name, x, trailing=()):
    """Checks a per-position gate [..., T, K, *trailing] and returns it as float32 [B, K, T, *trailing]."""
    d = self.d
    want = d.batch_shape + (d.T, d.K) + tuple(trailing)
    x = jnp.asarray(x)
    if x.shape != want:
      raise ValueError(f'{self.variant}: {name} must have shape [..., T, K{", H" if trailing else ""}] = {want} '
                       f'for q {d.batch_shape + (d.T, d.N, d.H)} and k {d.batch_shape + (d.T, d.K, d.H)}; '
                       f'got {x.shape}.')
    return jnp.moveaxis(x.reshape((d.B, d.T, d.K) + tuple(trailing)).astype(jnp.float32), 2, 1)

  def masked(self, g):
    """Gates of padded keys set to 0: log gate 0 keeps the state, beta 0 writes nothing."""
    if self.keep is None:
      return g
    keep = self.keep.reshape(self.keep.shape + (1,) * (g.ndim - 3))
    return jnp.where(keep, g, 0.0)


def l2_normalize(x, eps=1e-6):
  """x / |x| over the last axis, in float32; eps keeps zero rows (padding) finite in value and gradient."""
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


def prepare(variant, q, k, v, *, mask, is_causal, scale, implementation, chunk_size, initial_state,
            normalize_qk=False) -> Prepared:
  d = _checks.check_qkv(q, k, v)
  dtype = v.dtype
  if d.S != d.T:
    raise ValueError(f'{variant} attention runs over one sequence: k and v must have the length of q; got q {q.shape}, '
                     f'k {k.shape}, v {v.shape}.')
  _check_options(variant, implementation, chunk_size, is_causal)
  mask, _ = _checks.check_mask_bias(mask, None, d)
  _checks.check_key_padding_only(mask, d, variant)
  keep = None
  if mask is not None:
    if mask.ndim >= 3 and mask.shape[-3] != 1:
      raise ValueError(f'{variant}: the state is shared by the query heads of a kv head, so the key-padding mask must '
                       f'be the same for every head ([..., 1, 1, S]); got a mask of shape {mask.shape}.')
    m = _checks.to_bnts(mask, d)  # [B|1, 1, 1, S|1]
    keep = jnp.broadcast_to(m[:, 0, 0, :], (m.shape[0], d.T))[:, None, :]
  s = jnp.float32(_checks.default_scale(scale, d.H))
  q, k = (_checks.flatten_batch(x, d).astype(jnp.float32) for x in (q, k))
  if normalize_qk:
    q, k = l2_normalize(q), l2_normalize(k)
  q = jnp.moveaxis((q * s).reshape(d.B, d.T, d.K, d.G, d.H), 2, 1)
  k, v = (jnp.moveaxis(_checks.flatten_batch(x, d).astype(jnp.float32), 2, 1) for x in (k, v))
  if keep is not None:
    k = jnp.where(keep[..., None], k, 0.0)
  if initial_state is None:
    s0 = jnp.zeros((d.B, d.K, d.H, d.V), jnp.float32)
  else:
    initial_state = jnp.asarray(initial_state)
    want = d.batch_shape + (d.K, d.H, d.V)
    if initial_state.shape != want:
      raise ValueError(f'{variant}: initial_state must have shape [..., K, H, V] = {want}; got {initial_state.shape}.')
    s0 = initial_state.reshape((d.B, d.K, d.H, d.V)).astype(jnp.float32)
  return Prepared(variant, d, q, k, v, keep, s0, dtype)


def _transition(m, s, r):
  if m.ndim == s.ndim:
    return jnp.einsum('...ij,...jv->...iv', m, s) + r
  return m[..., None] * s + r


def _chunked(intra, q, k, v, gates, s0, C):
  B, K, T = k.shape[:3]
  C = max(1, min(C, T))  # T = 0: no chunk at all, the state stays s0
  nc = -(-T // C)
  pad = nc * C - T

  def chunks(x):  # [B, K, T, ...] -> [B, K, c, C, ...]; zero padding is the identity step (no decay, no write)
    x = jnp.pad(x, [(0, 0), (0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 3)) if pad else x
    return x.reshape((B, K, nc, C) + x.shape[3:])

  o, q_eff, m, r = intra(*(chunks(x) for x in (q, k, v) + gates))

  def body(s, mr):
    return _transition(mr[0], s, mr[1]), s

  s_last, s_before = jax.lax.scan(body, s0, (jnp.moveaxis(m, 2, 0), jnp.moveaxis(r, 2, 0)))
  o = o + jnp.einsum('BKcCGH,cBKHV->BKcCGV', q_eff, s_before)
  return o.reshape((B, K, nc * C) + o.shape[4:])[:, :, :T], s_last


def _recurrent(step, q, k, v, gates, s0):
  def body(s, xs):
    o, s = step(s, *xs)
    return s, o

  s_last, o = jax.lax.scan(body, s0, tuple(jnp.moveaxis(x, 2, 0) for x in (q, k, v) + gates))
  return jnp.moveaxis(o, 0, 2), s_last


def attend(x: Prepared, family: Family, gates, *, implementation, chunk_size, return_weights, return_state):
  """Runs one form and packs the result: out, (out, weights), (out, state) or (out, weights, state)."""
  d = x.d
  if implementation == 'recurrent':
    o, s = _recurrent(family.step, x.q, x.k, x.v, gates, x.s0)
  else:
    parallel = implementation == 'parallel'
    intra = family.intra if parallel or family.chunk_intra is None else family.chunk_intra
    o, s = _chunked(intra, x.q, x.k, x.v, gates, x.s0, d.T if parallel else chunk_size)
  out = jnp.moveaxis(o, 1, 2).reshape((d.B, d.T, d.N, d.V)).astype(x.dtype)
  result = (_checks.unflatten_batch(out, d),)
  if return_weights:
    w = family.weights(x.q, x.k, x.v, *gates).reshape(d.B, d.N, d.T, d.T)
    result += (_checks.unflatten_batch(w, d),)
  if return_state:
    result += (s.reshape(d.batch_shape + s.shape[1:]),)
  return result[0] if len(result) == 1 else result


def one_step(variant, step, state, q_t, k_t, v_t, gates, scale, normalize_qk=False):
  """Public single-position step: q_t [..., N, H], k_t [..., K, H], v_t [..., K, V], state [..., K, H, V]."""
  d = _checks.check_qkv(q_t[..., None, :, :], k_t[..., None, :, :], v_t[..., None, :, :])
  want = d.batch_shape + (d.K, d.H, d.V)
  if state.shape != want:
    raise ValueError(f'{variant}.step: state must have shape [..., K, H, V] = {want}; got {state.shape}.')
  s = jnp.float32(_checks.default_scale(scale, d.H))
  q_t, k_t = q_t.astype(jnp.float32), k_t.astype(jnp.float32)
  if normalize_qk:
    q_t, k_t = l2_normalize(q_t), l2_normalize(k_t)
  q = q_t.reshape(d.batch_shape + (d.K, d.G, d.H)) * s
  o, state = step(state.astype(jnp.float32), q, k_t, v_t.astype(jnp.float32),
                  *(g.astype(jnp.float32) for g in gates))
  return o.reshape(d.batch_shape + (d.N, d.V)).astype(v_t.dtype), state


def check_step_gate(variant, name, g, want):
  g = jnp.asarray(g)
  if g.shape != tuple(want):
    raise ValueError(f'{variant}.step: {name} must have shape {tuple(want)}; got {g.shape}.')
  return g


def state_size(*, num_kv_heads, head_dim, value_dim, **unused) -> int:
  """Floats of state per sequence: one [H, V] matrix per kv head."""
  del unused
  return num_kv_heads * head_dim * value_dim


def init_state(batch_shape, num_kv_heads, head_dim, value_dim, dtype=jnp.float32):
  return jnp.zeros(tuple(batch_shape) + (num_kv_heads, head_dim, value_dim), dtype)


# ---------------------------------------------------------------- layer hooks shared by the families (see registry)
# Registry-wide tests run on a few positions: chunks of 4 make them span several chunks, the last one padded.
EXAMPLE_OPTIONS = {'chunk_size': 4}


def dense_init(key, shape, fan_in, dtype):
  return jax.random.normal(key, shape, dtype) / jnp.sqrt(jnp.asarray(fan_in, dtype))


def init_decay_params(key, *, in_features, num_kv_heads, dtype, a_range=(1.0, 16.0), dt_range=(1e-3, 1e-1)):
  """Mamba-2's per-head decay (kept by Gated DeltaNet): log_gate = -exp(a_log) softplus(x dt_proj + dt_bias).

  A = exp(a_log) ~ U(a_range) and softplus(dt_bias) log-uniform in dt_range, so a fresh layer's heads forget over
  horizons from a few to about a thousand positions (Dao & Gu 2024).
  """
  kw, ka, kd = jax.random.split(key, 3)
  K = num_kv_heads
  dt = jnp.exp(jax.random.uniform(kd, (K,), jnp.float32, jnp.log(dt_range[0]), jnp.log(dt_range[1])))
  return {'dt_proj': dense_init(kw, (in_features, K), in_features, dtype),
          'dt_bias': (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype),  # softplus^{-1}(dt)
          'a_log': jnp.log(jax.random.uniform(ka, (K,), jnp.float32, *a_range)).astype(dtype)}


def decay_log_gate(params, x):
  """Log gates [..., T, K] of the layer input x [..., T, D] (see init_decay_params)."""
  p = {n: params[n].astype(jnp.float32) for n in ('dt_proj', 'dt_bias', 'a_log')}
  return -jnp.exp(p['a_log']) * jax.nn.softplus(x.astype(jnp.float32) @ p['dt_proj'] + p['dt_bias'])


def init_beta_params(key, *, in_features, num_kv_heads, dtype):
  return {'beta_proj': dense_init(key, (in_features, num_kv_heads), in_features, dtype)}


def write_strength(params, x):
  """beta = sigmoid(x beta_proj) [..., T, K] in (0, 1) of the layer input x [..., T, D]."""
  return jax.nn.sigmoid(x.astype(jnp.float32) @ params['beta_proj'].astype(jnp.float32))


def init_decode_state(batch_size, *, num_kv_heads, head_dim, value_dim):
  """The O(1) decoding state a layer carries instead of a key/value cache: zeros [B, K, H, V] float32."""
  return init_state((batch_size,), num_kv_heads, head_dim, value_dim)


def decode_recurrent(fn, state, q, k, v, *, index, mask, return_weights=False, **kwargs):
  """One cached decoding step with the recurrent state: q [B, T, N, H], k, v [B, T, K, H|V] are the T new positions,
  state [B, K, H, V] everything before them; returns (out [B, T, N, V], new state). mask: key padding of the new
  positions, or None."""
  del index  # the state already holds every earlier position
  if return_weights:
    raise ValueError('a recurrent decoding step keeps a state, not the past keys, so it has no attention weights; '
                     'capture them on a full (teacher-forced) pass instead.')
  return fn(q, k, v, mask=mask, initial_state=state, return_state=True, **kwargs)
