"""Exact softmax attention in query/key blocks with an online softmax: the kernel behind `flash` and `local`.

Memory is O(T + S) per head in the forward and the backward pass: the forward keeps only the output and the
log-sum-exp of every query row; the backward (a custom VJP) recomputes each score block from them
(Dao 2023, FlashAttention-2, adapted to XLA on the CPU).

Which key blocks a query block visits is decided when tracing, from the static lengths and the band of
visible keys: key s is visible to query t when  t + off - left <= s <= t + off + right  (off = S - T, the
causal convention of the package; causal is right = 0, left = infinity; `local` is a finite window).
Every query block therefore visits one contiguous run of key blocks, split into an inner run that is
entirely visible (no positional mask is formed) and partial blocks at its ends. Blocks outside the band are
never computed, so causal attention does about half the work and a window of width w costs O(T w).

Layouts inside the kernel (letters of _checks plus nq/nk = number of query/key blocks, bq/bk = their sizes,
R = G * bq rows of one query block):
  q  [nq, B*K, R, H]    k [nk, B*K, bk, H]    v [nk, B*K, bk, V]    out [nq, B*K, R, V]    lse [nq, B*K, R]
  mask/bias [B|1, K|1, G|1, Tp|1, Sp|1] (padded, dims of size 1 kept)
Every matrix product is one batched 3-d dot_general: heads are its batch, and the G query heads that share a
key/value head are stacked as extra rows, so grouped-query attention never repeats k or v and XLA needs no
transposes or copies of the score blocks (5-d einsums cost a copy of every score block on the CPU).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from attention_research.attention import _checks

MASK_VALUE = _checks.MASK_VALUE
# Log-sum-exp given to rows that see no key: exp(s - DEAD_LSE) is 0 for every finite score s.
DEAD_LSE = -MASK_VALUE
UNBOUNDED = 1 << 30

# Block sizes measured with experiments/benchmark.py on a 2-core CPU (B=1, N=8, H=64, float32). XLA's CPU
# matmuls run on one core below about 8 x 512 x 256 scores per product, so a score block spans about
# BLOCK_ELEMENTS scores across all heads: 512 x 512 for 8 heads, smaller for more heads. Blocks stay at most
# MAX_BLOCK on a side so that the temporaries of few-head calls stay small (a few blocks of scores).
DEFAULT_BLOCK = 512
BLOCK_ELEMENTS = 8 * 512 * 512
MIN_BLOCK, MAX_BLOCK = 64, 512
# Without a band (no causal mask, no window) no block straddles a diagonal, so query blocks of calls with
# enough heads to fill BLOCK_ELEMENTS grow TALL times taller once there are at least two of them: the products
# get more rows per call (T=4096, 8 heads: forward 203 -> 185 ms, forward+backward 618 -> 560 ms; T=16384:
# 3.08 -> 2.71 s and 9.57 -> 8.93 s) for about 1.5x the temporaries (4096: 48 -> 74 MB forward+backward).
# Causal calls waste more work on the diagonal with taller blocks, which pays only once there are many of them:
# at T=4096 forward+backward went 360 -> 380 ms, at 8192 1.40 -> 1.34 s, at 16384 5.01 -> 4.80 s (forward
# 1.82 -> 1.58 s); so causal calls take tall blocks from CAUSAL_TALL_BLOCKS of them. Windows (`local`) and
# few-head calls, whose temporaries stay a few small blocks, keep square ones.
TALL = 2
CAUSAL_TALL_BLOCKS = 8


@dataclasses.dataclass(frozen=True)
class Plan:
  """Static description of one call: shapes, block sizes, the visible band and the block schedule."""
  B: int
  K: int
  G: int
  T: int
  S: int
  bq: int
  bk: int
  nq: int
  nk: int
  left: int
  right: int
  scale: float
  scale_q: bool  # scale folded into q before the kernel (exact enough in float32 and float64)
  # Per query block i: key blocks [lo, a) and [b, hi) are partial, [a, b) fully visible.
  rows: tuple[tuple[int, int, int, int], ...]
  # Per key block j: query blocks [lo, a) and [b, hi) partial, [a, b) fully visible.
  cols: tuple[tuple[int, int, int, int], ...]
  soft_cap: float | None = None  # scores s -> soft_cap * tanh(s / soft_cap) before bias and mask

  @property
  def off(self) -> int:
    return self.S - self.T


def _block_table(T, S, bq, bk, nq, nk, left, right):
  """[nq, nk] int: 0 block not visited, 1 partially visible, 2 fully visible."""
  off = S - T
  t0 = np.arange(nq)[:, None] * bq
  t1 = np.minimum(t0 + bq, T) - 1  # padded query rows are discarded, so they do not widen the band
  s0 = np.arange(nk)[None, :] * bk
  s1 = np.minimum(s0 + bk, S) - 1
  any_visible = (s1 >= t0 + off - left) & (s0 <= t1 + off + right)
  full = (s0 >= t1 + off - left) & (s0 + bk - 1 <= t0 + off + right) & (s0 + bk <= S)
  return np.where(full, 2, np.where(any_visible, 1, 0))


def _runs(line):
  """(lo, a, b, hi) of one row/column of the block table; visited blocks form one interval."""
  visited = np.flatnonzero(line)
  if visited.size == 0:
    return (0, 0, 0, 0)
  lo, hi = int(visited[0]), int(visited[-1]) + 1
  full = np.flatnonzero(line == 2)
  if full.size == 0:
    return (lo, hi, hi, hi)
  a, b = int(full[0]), int(full[-1]) + 1
  assert np.all(line[lo:hi] > 0) and np.all(line[a:b] == 2), line  # a band: runs are contiguous
  return (lo, a, b, hi)


def _pick_block(length, requested, default):
  if requested is not None:
    return min(requested, length)
  n = -(-length // default)
  block = -(-length // n)
  return block if n == 1 else -(-block // 8) * 8  # spread the padding thinly, keep rows aligned


def make_plan(d: _checks.Dims, *, scale, scale_q, left=UNBOUNDED, right=UNBOUNDED, block_q=None,
              block_k=None, soft_cap=None) -> Plan:
  block_q = None if block_q is None else _checks.check_int('block_q', block_q)
  block_k = None if block_k is None else _checks.check_int('block_k', block_k)
  heads = d.B * d.N
  left, right = min(left, UNBOUNDED), min(right, UNBOUNDED)
  side = min(max(int(math.sqrt(BLOCK_ELEMENTS / heads)) // 8 * 8, MIN_BLOCK), MAX_BLOCK)
  if left < d.T + d.S or heads * side * side < BLOCK_ELEMENTS:
    tall = False
  else:  # no window: all of the past visible, and the future too or (causal) none of it
    tall = d.T >= (2 if right >= d.T + d.S else CAUSAL_TALL_BLOCKS) * TALL * side
  bq = _pick_block(d.T, block_q, TALL * side if tall else side)
  # Short queries (decoding) that see every key before them take wide key blocks, or all keys in one block.
  wide = bq < side and left >= d.S and (right >= d.S or right == 0)
  wide_side = max(side, min(BLOCK_ELEMENTS // (heads * bq), 8 * MAX_BLOCK) // 8 * 8) if wide else side
  if block_k is None and wide and heads * bq * d.S <= BLOCK_ELEMENTS:
    bk = d.S  # no online rescaling at all
  else:
    bk = _pick_block(d.S, block_k, wide_side)
  nq, nk = -(-d.T // bq), -(-d.S // bk)
  table = _block_table(d.T, d.S, bq, bk, nq, nk, left, right)
  rows = tuple(_runs(table[i]) for i in range(nq))
  cols = tuple(_runs(table[:, j]) for j in range(nk))
  return Plan(d.B, d.K, d.G, d.T, d.S, bq, bk, nq, nk, left, right, float(scale), scale_q, rows, cols,
              None if soft_cap is None else float(soft_cap))


# ----------------------------------------------------------------------------------------------------------
# Layout changes (outside the custom VJP, so autodiff transposes them).


def _pad_axis(x, axis, size):
  if x.shape[axis] in (1, size):
    return x
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, size - x.shape[axis])
  return jnp.pad(x, pad)


def to_blocks_q(q, d: _checks.Dims, p: Plan):
  """[..., T, N, H] -> [nq, B*K, G*bq, H]."""
  q = _pad_axis(_checks.flatten_batch(q, d), 1, p.nq * p.bq)
  q = q.reshape(d.B, p.nq, p.bq, d.K, d.G, q.shape[-1]).transpose(1, 0, 3, 4, 2, 5)
  return q.reshape(p.nq, d.B * d.K, d.G * p.bq, q.shape[-1])


def from_blocks_q(o, d: _checks.Dims, p: Plan):
  """[nq, B*K, G*bq, V] -> [..., T, N, V]."""
  o = o.reshape(p.nq, d.B, d.K, d.G, p.bq, o.shape[-1]).transpose(1, 0, 4, 2, 3, 5)
  o = o.reshape(d.B, p.nq * p.bq, d.N, o.shape[-1])
  return _checks.unflatten_batch(o[:, :d.T], d)


def to_blocks_kv(x, d: _checks.Dims, p: Plan):
  """[..., S, K, H] -> [nk, B*K, bk, H]."""
  x = _pad_axis(_checks.flatten_batch(x, d), 1, p.nk * p.bk)
  x = x.reshape(d.B, p.nk, p.bk, d.K, x.shape[-1]).transpose(1, 0, 3, 2, 4)
  return x.reshape(p.nk, d.B * d.K, p.bk, x.shape[-1])


def to_blocks_mask(x, d: _checks.Dims, p: Plan):
  """Mask/bias broadcastable to [..., N, T, S] -> [B|1, K|1, G|1, Tp|1, Sp|1] without materialising 1-dims."""
  if x is None:
    return None
  x = _checks.to_bnts(x, d)
  if x.shape[1] == 1:
    x = x[:, :, None]
  else:
    x = x.reshape(x.shape[0], d.K, d.G, x.shape[2], x.shape[3])
  x = _pad_axis(x, 3, p.nq * p.bq)
  return _pad_axis(x, 4, p.nk * p.bk)


def _block_of(x, i, j, p: Plan):
  """The [.., bq|1, bk|1] block (i, j) of a blocked mask or bias (dims of size 1 stay size 1)."""
  starts = [0, 0, 0, 0 if x.shape[3] == 1 else i * p.bq, 0 if x.shape[4] == 1 else j * p.bk]
  sizes = list(x.shape[:3]) + [1 if x.shape[3] == 1 else p.bq, 1 if x.shape[4] == 1 else p.bk]
  return lax.dynamic_slice(x, starts, sizes)


def _band(i, j, p: Plan):
  """Bool [bq, bk]: the positional mask of block (i, j) (window band and key padding)."""
  t = i * p.bq + lax.broadcasted_iota(jnp.int32, (p.bq, p.bk), 0)
  s = j * p.bk + lax.broadcasted_iota(jnp.int32, (p.bq, p.bk), 1)
  rel = s - t - p.off
  ok = s < p.S
  if p.left < UNBOUNDED:
    ok &= rel >= -p.left
  if p.right < UNBOUNDED:
    ok &= rel <= p.right
  return ok


# Batched matrix products over the leading (head) axis, accumulating in float32.
def _dot(a, b, contract_a, contract_b):
  return lax.dot_general(a, b, (((contract_a,), (contract_b,)), ((0,), (0,))),
                         preferred_element_type=jnp.float32)


def _scores(q_i, k_j, i, j, mask, bias, p: Plan, positional: bool):
  """Float32 scores of block (i, j): [B*K, R, bk], masked entries at MASK_VALUE."""
  s = _dot(q_i, k_j, 2, 2)
  if not p.scale_q:
    s = s * jnp.float32(p.scale)
  if p.soft_cap is not None:
    s = jnp.float32(p.soft_cap) * jnp.tanh(s * jnp.float32(1.0 / p.soft_cap))
  if mask is None and bias is None and not positional:
    return s
  s5 = s.reshape(p.B, p.K, p.G, p.bq, p.bk)  # a bitcast: the mask and bias have these axes
  if bias is not None:
    s5 = s5 + _block_of(bias, i, j, p).astype(jnp.float32)
  keep = None if mask is None else _block_of(mask, i, j, p)
  fill = MASK_VALUE
  if positional:
    band = _band(i, j, p)
    keep = band if keep is None else keep & band
    # Padded key columns take -inf, not MASK_VALUE: they must not count as masked keys, or a row whose real
    # scores are all -inf (a bias of -inf) would read as fully masked and give zeros instead of the NaN of
    # softmax. A [bk] vector: the select still makes one pass over the block.
    fill = jnp.where(j * p.bk + jnp.arange(p.bk) < p.S, jnp.float32(MASK_VALUE), -jnp.inf)
  if keep is not None:
    s5 = jnp.where(keep, s5, fill)
  return s5.reshape(s.shape)


def _loop(lo, hi, body, carry):
  """fori_loop over a run whose bounds are static ints or traced scalars; empty static runs cost nothing."""
  if isinstance(lo, int) and isinstance(hi, int):
    if hi <= lo:
      return carry
    if hi - lo == 1:
      return body(lo, carry)
  return lax.fori_loop(lo, hi, body, carry)


def _runs_for(table, index):
  """(lo, a, b, hi) for block `index`: Python ints for a single block, traced lookups otherwise."""
  if len(table) == 1:
    return table[0]
  arr = jnp.asarray(np.asarray(table, np.int32))
  return tuple(arr[index, c] for c in range(4))


# ----------------------------------------------------------------------------------------------------------
# Forward.


def _sink_rows(sinks, p: Plan):
  """Sink logits [K, G] (float32) -> [B*K, R], the layout of one query block's rows."""
  return jnp.broadcast_to(sinks[None, :, :, None], (p.B, p.K, p.G, p.bq)).reshape(p.B * p.K, p.G * p.bq)


def _forward(q, k, v, mask, bias, sinks, p: Plan):
  """Returns out [nq, B*K, R, V] (v's dtype) and lse [nq, B*K, R] (float32).

  A sink (a key without value) is the online softmax's starting state: running max m = sink, sum l = 1."""
  BK, R, _ = q.shape[1:]
  V = v.shape[-1]

  def q_block(i, q_i):
    def step(positional, j, carry):
      m, l, acc = carry
      s = _scores(q_i, k[j], i, j, mask, bias, p, positional)
      m_new = jnp.maximum(m, jnp.max(s, axis=-1))
      # m stays -inf while every score so far is -inf: shift by 0 then, so that exp gives 0 rather than NaN.
      shift = jnp.where(m_new == -jnp.inf, 0.0, m_new)
      e = jnp.exp(s - shift[..., None])
      alpha = jnp.exp(m - shift)
      l = alpha * l + jnp.sum(e, axis=-1)
      return m_new, l, alpha[..., None] * acc + _dot(e.astype(v.dtype), v[j], 2, 1)

    lo, a, b, hi = _runs_for(p.rows, i)
    m0 = jnp.full((BK, R), -jnp.inf, jnp.float32) if sinks is None else _sink_rows(sinks, p)
    l0 = (jnp.zeros if sinks is None else jnp.ones)((BK, R), jnp.float32)
    carry = (m0, l0, jnp.zeros((BK, R, V), jnp.float32))
    carry = _loop(lo, a, functools.partial(step, True), carry)
    carry = _loop(a, b, functools.partial(step, False), carry)
    m, l, acc = _loop(b, hi, functools.partial(step, True), carry)
    # A row whose keys are all masked has m at MASK_VALUE, or -inf when its block visits no key block: it
    # returns zeros (and DEAD_LSE for the VJP). A visited row whose scores are all -inf keeps m = -inf and
    # l = 0: 0/0 gives NaN, as softmax does. A NaN score makes l NaN (XLA's max reduction need not return
    # NaN, so m may even look masked): such a row stays alive and NaN reaches out, lse and the gradients.
    dead = (m <= 0.5 * MASK_VALUE) & ((m > -jnp.inf) | (hi <= lo)) & ~jnp.isnan(l)
    alive = ~dead
    l_safe = jnp.where(alive, l, 1.0)
    out = jnp.where(alive[..., None], acc * (1.0 / l_safe)[..., None], 0.0)
    lse = jnp.where(alive, m + jnp.log(l_safe), DEAD_LSE)
    return out.astype(v.dtype), lse

  if p.nq == 1:
    out, lse = q_block(0, q[0])
    return out[None], lse[None]
  return lax.map(lambda args: q_block(*args), (jnp.arange(p.nq), q))


# ----------------------------------------------------------------------------------------------------------
# Backward: key blocks in the outer loop (dk, dv accumulate locally), query blocks inside (dq accumulates in
# a carried [nq, ...] buffer updated in place).
#
# The backward works on transposed score blocks [B*K, bk, R]. XLA's CPU matmul wants the contracted axis
# of its left operand last and that of its right operand first; a score block contracted over its other
# axis is copied first, which cost about as much as the product itself. In this orientation every product
# with a score block takes it as is: dv and dk contract over the rows R (its last axis) and dq is formed
# transposed, k^T [H, bk] @ ds^T [bk, R], from k blocks transposed once per call.


def _transpose_block(x):
  """A mask/bias block [B|1, K|1, G|1, bq|1, bk|1] -> [B|1, K|1, bk|1, G|1, bq|1]."""
  return jnp.transpose(x, (0, 1, 4, 2, 3))


def _scores_t(q_i, k_j, i, j, mask, bias, p: Plan, positional: bool):
  """Float32 transposed scores of block (i, j): [B*K, bk, R], masked entries at MASK_VALUE, and the derivative
  of the soft-cap at the scaled scores (None without a cap)."""
  s = _dot(k_j, q_i, 2, 2)
  if not p.scale_q:
    s = s * jnp.float32(p.scale)
  dcap = None
  if p.soft_cap is not None:
    th = jnp.tanh(s * jnp.float32(1.0 / p.soft_cap))
    s, dcap = jnp.float32(p.soft_cap) * th, 1.0 - th * th
  if mask is None and bias is None and not positional:
    return s, dcap
  s5 = s.reshape(p.B, p.K, p.bk, p.G, p.bq)  # a bitcast: rows R are (G, bq)
  if bias is not None:
    s5 = s5 + _transpose_block(_block_of(bias, i, j, p)).astype(jnp.float32)
  keep = None if mask is None else _transpose_block(_block_of(mask, i, j, p))
  if positional:
    band = _band(i, j, p).T[:, None, :]  # [bk, 1, bq]
    keep = band if keep is None else keep & band
  if keep is not None:
    s5 = jnp.where(keep, s5, MASK_VALUE)
  return s5.reshape(s.shape), dcap


def _reduce_to(x, shape):
  """Sums x over the axes where `shape` has size 1."""
  axes = tuple(ax for ax, (have, want) in enumerate(zip(x.shape, shape)) if want == 1 and have != 1)
  return jnp.sum(x, axis=axes, keepdims=True) if axes else x


def _backward(q, k, v, mask, bias, sinks, out, lse, g, p: Plan):
  dt = q.dtype
  delta = jnp.sum(g.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)  # [nq, B*K, R]
  g = g.astype(v.dtype)
  k_t = jnp.swapaxes(k, 2, 3)  # [nk, B*K, H, bk]
  dq_t0 = jnp.zeros(q.shape[:2] + (q.shape[3], q.shape[2]), jnp.float32)  # [nq, B*K, H, R]
  dbias0 = None if bias is None else jnp.zeros(bias.shape, jnp.float32)
  bias_block = None if bias is None else tuple(
      [bias.shape[0], bias.shape[1], bias.shape[2], 1 if bias.shape[3] == 1 else p.bq,
       1 if bias.shape[4] == 1 else p.bk])

  def k_block(carry, j):
    dq_t, dbias = carry
    k_j, v_j, k_t_j = k[j], v[j], k_t[j]

    def step(positional, i, c):
      dk, dv, dq_t, dbias = c
      q_i, g_i = q[i], g[i]
      s, dcap = _scores_t(q_i, k_j, i, j, mask, bias, p, positional)
      pr = jnp.exp(s - lse[i][:, None, :])
      dv = dv + _dot(pr.astype(v.dtype), g_i, 2, 1)
      dp = _dot(v_j, g_i, 2, 2)
      ds = pr * (dp - delta[i][:, None, :])  # d loss / d score (after scale and bias)
      if dbias is not None:
        starts = (0, 0, 0, 0 if bias.shape[3] == 1 else i * p.bq, 0 if bias.shape[4] == 1 else j * p.bk)
        ds5 = ds.reshape(p.B, p.K, p.bk, p.G, p.bq)
        b0, b1, b2, b3, b4 = bias_block
        ds5 = jnp.transpose(_reduce_to(ds5, (b0, b1, b4, b2, b3)), (0, 1, 3, 4, 2))  # back to bias layout
        upd = lax.dynamic_slice(dbias, starts, bias_block) + ds5
        dbias = lax.dynamic_update_slice(dbias, upd, starts)
      if dcap is not None:
        ds = ds * dcap  # through the cap, to the scaled scores
      if not p.scale_q:
        ds = ds * jnp.float32(p.scale)
      ds = ds.astype(dt)
      dk = dk + _dot(ds, q_i, 2, 1)
      dq_t = lax.dynamic_update_index_in_dim(dq_t, dq_t[i] + _dot(k_t_j, ds, 2, 1), i, 0)
      return dk, dv, dq_t, dbias

    lo, a, b, hi = _runs_for(p.cols, j)
    c = (jnp.zeros(k_j.shape, jnp.float32), jnp.zeros(v_j.shape, jnp.float32), dq_t, dbias)
    c = _loop(lo, a, functools.partial(step, True), c)
    c = _loop(a, b, functools.partial(step, False), c)
    dk, dv, dq_t, dbias = _loop(b, hi, functools.partial(step, True), c)
    return (dq_t, dbias), (dk, dv)

  (dq_t, dbias), (dk, dv) = lax.scan(k_block, (dq_t0, dbias0), jnp.arange(p.nk))
  if dbias is not None:
    dbias = dbias.astype(bias.dtype)
  dsinks = None
  if sinks is not None:
    # d out_t / d sink = -p_sink,t out_t: d loss / d sink = -sum_t p_sink,t delta_t (0 for dead or padded rows).
    p_sink = jnp.exp(_sink_rows(sinks, p)[None] - lse)
    dsinks = -jnp.sum((p_sink * delta).reshape(p.nq, p.B, p.K, p.G, p.bq), axis=(0, 1, 4))
  return jnp.swapaxes(dq_t, 2, 3).astype(dt), dk.astype(k.dtype), dv.astype(v.dtype), dbias, dsinks


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def _attention(q, k, v, mask, bias, sinks, p: Plan):
  return _forward(q, k, v, mask, bias, sinks, p)[0]


def _attention_fwd(q, k, v, mask, bias, sinks, p):
  out, lse = _forward(q, k, v, mask, bias, sinks, p)
  return out, (q, k, v, mask, bias, sinks, out, lse)


def _attention_bwd(p, res, g):
  q, k, v, mask, bias, sinks, out, lse = res
  dq, dk, dv, dbias, dsinks = _backward(q, k, v, mask, bias, sinks, out, lse, g, p)
  return dq, dk, dv, None, dbias, dsinks


_attention.defvjp(_attention_fwd, _attention_bwd)


def blocked_attention(q, k, v, d: _checks.Dims, *, mask, bias, scale, is_causal, left=UNBOUNDED,
                      right=UNBOUNDED, block_q=None, block_k=None, sinks=None, soft_cap=None):
  """Validated q [..., T, N, H], k/v [..., S, K, H|V] -> out [..., T, N, V] in v's dtype.

  mask/bias: validated, broadcastable to [..., N, T, S]. left/right: the visible band around the diagonal
  (see the module docstring); is_causal sets right to 0. sinks: validated [N] sink logits (differentiable).
  soft_cap: validated float; scaled scores s become soft_cap * tanh(s / soft_cap) before bias and mask.
  """
  if is_causal:
    right = min(right, 0)
  if _checks.is_empty(d):  # no blocks to cut (and no block size to divide by)
    return _checks.empty_result(d, v, return_weights=False)
  dtype = jnp.result_type(q, k, v)
  scale = _checks.default_scale(scale, d.H)
  scale_q = jnp.finfo(dtype).bits >= 32
  p = make_plan(d, scale=scale, scale_q=scale_q, left=left, right=right, block_q=block_q, block_k=block_k,
                soft_cap=soft_cap)
  q = q.astype(dtype)
  if scale_q:
    q = q * jnp.asarray(scale, dtype)
  qb = to_blocks_q(q, d, p)
  kb = to_blocks_kv(k.astype(dtype), d, p)
  vb = to_blocks_kv(v.astype(dtype), d, p)
  sinks_kg = None if sinks is None else sinks.astype(jnp.float32).reshape(d.K, d.G)
  out = _attention(qb, kb, vb, to_blocks_mask(mask, d, p), to_blocks_mask(bias, d, p), sinks_kg, p)
  return from_blocks_q(out, d, p).astype(v.dtype)
