"""A Pallas (Triton) forward kernel for the GPU cases cuDNN's fused attention does not take.

cuDNN computes plain, causal and biased softmax attention (see `flash`); boolean masks, logit soft-caps,
attention sinks and sliding windows (`local`) would otherwise run the XLA blocked kernel of `_blocked`. This
kernel computes those in one fused pass per query block (FlashAttention-2's forward, Dao 2023): a program per
(query block, batch row, query head) loops over the key blocks of the visible band only, with an online softmax
in float32, and never writes a score to memory. Grouped-query heads read their key/value head in place.

Only the forward pass is a Pallas kernel: under differentiation the custom VJP runs the blocked kernel's
forward and backward instead (so training costs what it costs today, and inference gets the fused kernel).
The semantics are the blocked kernel's: rows that see no key give zeros, sinks start the online softmax at
(m, l) = (sink, 1), the soft-cap applies to the scaled scores before the mask.

`interpret=True` runs the kernel through Pallas's interpreter on any backend: that is how the CPU tests check
it against the reference. On a GPU, `experiments.gpu_check` reports which calls take it.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from attention_research.attention import _blocked, _checks

MASK_VALUE = _checks.MASK_VALUE
HEAD_SIZES = (16, 32, 64, 128, 256)  # Triton's dot wants power-of-two tiles of at least 16
DTYPES = (jnp.float16, jnp.bfloat16)  # float32 stays on the blocked kernel (Triton's dot would round to tf32)
BLOCK_Q, BLOCK_K, MIN_BLOCK = 128, 64, 16


def fits(q, k, v, d: _checks.Dims, bias, mask=None, sinks=None, soft_cap=None) -> bool:
  """True where this kernel computes the call on this backend (checked when tracing).

  A Triton lowering error would surface only when the caller's program compiles, too late to fall back, so
  each kind of call (dtype, head size, mask layout, sinks, soft-cap) is first compiled once on small shapes
  (`compiles`); a kind that fails runs the blocked kernel instead.
  """
  if jax.default_backend() != 'gpu' or bias is not None or not supported(q, k, v, d):
    return False
  mask_rows = None if mask is None else _checks.to_bnts(mask, d).shape[2] > 1
  return compiles(jnp.dtype(q.dtype).name, d.H, mask_rows, sinks is not None, soft_cap is not None)


@functools.lru_cache(maxsize=None)
def compiles(dtype: str, H: int, mask_rows, has_sinks: bool, has_soft_cap: bool, interpret=False) -> bool:
  """Whether the kernel lowers and compiles for this kind of call (mask_rows: None = no mask, else whether
  the mask has a row per query), tried once on T = S = 64, two query heads sharing one key/value head."""
  L, N = 64, 2
  q = jax.ShapeDtypeStruct((1, L, N, H), dtype)
  kv = jax.ShapeDtypeStruct((1, L, 1, H), dtype)
  mask = None if mask_rows is None else jax.ShapeDtypeStruct((1, 1, L if mask_rows else 1, L), jnp.bool_)
  sinks = jax.ShapeDtypeStruct((N,), jnp.float32) if has_sinks else None
  d = _checks.Dims((1,), L, L, N, 1, H, H)

  def run(q, k, v, mask, sinks):
    return _forward(q, k, v, mask, sinks, d=d, scale=1.0, left=16, right=0,
                    soft_cap=30.0 if has_soft_cap else None, interpret=interpret)
  try:
    jax.jit(run).lower(q, kv, kv, mask, sinks).compile()
  except Exception:  # noqa: BLE001 -- any lowering or compiler error means: use the blocked kernel
    return False
  return True


def supported(q, k, v, d: _checks.Dims) -> bool:
  """The shapes and dtypes the kernel handles, on any backend (the interpreter included)."""
  dtypes_ok = all(x.dtype == q.dtype for x in (k, v)) and q.dtype in DTYPES
  return dtypes_ok and d.H == d.V and d.H in HEAD_SIZES and d.T > 0 and d.S > 0


def _block(length, largest):
  """A power of two >= MIN_BLOCK: `largest`, or less for a short sequence."""
  return max(MIN_BLOCK, min(largest, 1 << max(0, math.ceil(math.log2(length)))))


def _kernel(*refs, has_mask, has_sinks, T, S, bq, bk, left, right, scale, soft_cap):
  q_ref, k_ref, v_ref = refs[:3]
  mask_ref = refs[3] if has_mask else None
  sinks_ref = refs[3 + has_mask] if has_sinks else None
  o_ref = refs[-1]
  i = pl.program_id(0)
  off = S - T
  q = q_ref[...]
  rows = i * bq + lax.broadcasted_iota(jnp.int32, (bq, bk), 0)  # global query positions of the block

  def step(j, carry):
    m, l, acc = carry
    cols = j * bk + lax.broadcasted_iota(jnp.int32, (bq, bk), 1)
    k = k_ref[pl.ds(j * bk, bk), :]
    s = jnp.dot(q, k.T, preferred_element_type=jnp.float32) * scale
    if soft_cap is not None:
      s = soft_cap * jnp.tanh(s * (1.0 / soft_cap))
    keep = (cols >= rows + off - left) & (cols <= rows + off + right)
    if has_mask:
      block = mask_ref[:, pl.ds(j * bk, bk)]  # [bq or 1, bk] int8
      keep = keep & (block != 0)
    s = jnp.where(keep, s, MASK_VALUE)
    s = jnp.where(cols < S, s, -jnp.inf)  # padding keys do not exist, not even as masked keys
    m_new = jnp.maximum(m, jnp.max(s, axis=1))
    shift = jnp.where(m_new == -jnp.inf, 0.0, m_new)
    e = jnp.exp(s - shift[:, None])
    alpha = jnp.exp(m - shift)
    v = v_ref[pl.ds(j * bk, bk), :]
    acc = alpha[:, None] * acc + jnp.dot(e.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return m_new, alpha * l + jnp.sum(e, axis=1), acc

  # The key blocks that hold a visible key for some row of this query block.
  first = jnp.maximum(i * bq + off - left, 0)
  last = jnp.minimum(i * bq + bq - 1 + off + right, S - 1)
  lo = lax.div(first, bk)
  hi = jnp.maximum(lax.div(last, bk) + 1, lo)
  if has_sinks:
    m0 = jnp.full((bq,), jnp.max(sinks_ref[...]), jnp.float32)
    l0 = jnp.ones((bq,), jnp.float32)
  else:
    m0 = jnp.full((bq,), -jnp.inf, jnp.float32)
    l0 = jnp.zeros((bq,), jnp.float32)
  m, l, acc = lax.fori_loop(lo, hi, step, (m0, l0, jnp.zeros((bq, q.shape[-1]), jnp.float32)))
  dead = m <= 0.5 * MASK_VALUE  # every key masked (or none visited): zeros, as the blocked kernel gives
  out = jnp.where(dead[:, None], 0.0, acc / jnp.where(dead, 1.0, l)[:, None])
  o_ref[...] = out.astype(o_ref.dtype)


def _pad(x, axis, size):
  if x.shape[axis] == size:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, size - x.shape[axis])
  return jnp.pad(x, widths)


def _forward(q, k, v, mask, sinks, *, d: _checks.Dims, scale, left, right, soft_cap, interpret):
  """q [B, T, N, H], k/v [B, S, K, H], mask [B|1, N|1, T|1, S|1] bool or None, sinks [N] or None."""
  bq, bk = _block(d.T, BLOCK_Q), _block(d.S, BLOCK_K)
  Tp, Sp = -(-d.T // bq) * bq, -(-d.S // bk) * bk
  G = d.G
  args = [_pad(q, 1, Tp), _pad(k, 1, Sp), _pad(v, 1, Sp)]
  specs = [pl.BlockSpec((None, bq, None, d.H), lambda i, b, n: (b, i, n, 0)),
           pl.BlockSpec((None, Sp, None, d.H), lambda i, b, n: (b, 0, n // G, 0)),
           pl.BlockSpec((None, Sp, None, d.H), lambda i, b, n: (b, 0, n // G, 0))]
  if mask is not None:
    Bm, Nm, Tm = mask.shape[0], mask.shape[1], mask.shape[2]
    m8 = jnp.broadcast_to(mask, (Bm, Nm, Tm, d.S)).astype(jnp.int8)
    m8 = _pad(_pad(m8, 3, Sp), 2, Tp if Tm > 1 else 1)
    args.append(m8)
    specs.append(pl.BlockSpec((None, None, bq if Tm > 1 else 1, Sp),
                              lambda i, b, n: (b if Bm > 1 else 0, n if Nm > 1 else 0, i if Tm > 1 else 0, 0)))
  if sinks is not None:  # a row of MIN_BLOCK copies per head: Triton loads no scalars from refs
    args.append(jnp.broadcast_to(sinks.astype(jnp.float32)[:, None], (d.N, MIN_BLOCK)))
    specs.append(pl.BlockSpec((None, MIN_BLOCK), lambda i, b, n: (n, 0)))
  kernel = functools.partial(_kernel, has_mask=mask is not None, has_sinks=sinks is not None, T=d.T, S=d.S,
                             bq=bq, bk=bk, left=left, right=right, scale=float(scale), soft_cap=soft_cap)
  params = {}
  if not interpret:
    from jax.experimental.pallas import triton as plgpu  # imported on a GPU only: Triton bindings
    params['compiler_params'] = plgpu.CompilerParams(num_warps=4 if d.H <= 64 else 8, num_stages=2)
  out = pl.pallas_call(
      kernel, grid=(Tp // bq, d.B, d.N), in_specs=specs,
      out_specs=pl.BlockSpec((None, bq, None, d.H), lambda i, b, n: (b, i, n, 0)),
      out_shape=jax.ShapeDtypeStruct((d.B, Tp, d.N, d.H), v.dtype), interpret=interpret,
      name='masked_attention_forward', **params)(*args)
  return out[:, :d.T]


def attention(q, k, v, d: _checks.Dims, *, mask, scale, left, right, sinks=None, soft_cap=None,
              interpret=False):
  """Validated q [..., T, N, H], k/v [..., S, K, H] (`supported`) -> out [..., T, N, H].

  mask: validated bool broadcastable to [..., N, T, S] or None; left/right: the visible band (the blocked
  kernel's convention; `_blocked.UNBOUNDED` for none); sinks [N]; soft_cap a float or None.
  """
  scale = _checks.default_scale(scale, d.H)
  mask = _checks.to_bnts(mask, d)
  qf, kf, vf = (_checks.flatten_batch(x, d) for x in (q, k, v))
  flat = dataclasses.replace(d, batch_shape=(d.B,))
  config = (flat, scale, left, right, soft_cap, interpret)
  return _checks.unflatten_batch(_fused(qf, kf, vf, mask, sinks, config), d)


def _blocked_call(q, k, v, mask, sinks, config):
  d, scale, left, right, soft_cap, _ = config
  return _blocked.blocked_attention(q, k, v, d, mask=mask, bias=None, scale=scale, is_causal=False,
                                    left=left, right=right, sinks=sinks, soft_cap=soft_cap)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _fused(q, k, v, mask, sinks, config):
  d, scale, left, right, soft_cap, interpret = config
  return _forward(q, k, v, mask, sinks, d=d, scale=scale, left=left, right=right, soft_cap=soft_cap,
                  interpret=interpret)


def _fused_fwd(q, k, v, mask, sinks, config):
  out, vjp = jax.vjp(lambda q, k, v, sinks: _blocked_call(q, k, v, mask, sinks, config), q, k, v, sinks)
  return out, vjp


def _fused_bwd(config, vjp, g):
  dq, dk, dv, dsinks = vjp(g)
  return dq, dk, dv, None, dsinks


_fused.defvjp(_fused_fwd, _fused_bwd)
