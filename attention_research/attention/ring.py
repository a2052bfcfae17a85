"""Ring attention: exact softmax attention with the sequence split over the devices of one mesh axis.

Inside `jax.shard_map`, every device holds a slice of the queries and of the keys/values along the sequence.
The key/value slices travel around the ring (`lax.ppermute`) for P - 1 steps while each device folds every
block it sees into an online softmax over its own queries, so no device ever holds more than two key/value
slices and its scores are [T/P, S/P] (Liu et al. 2023). The result equals `flash` / `dot_product` on the whole
sequence in values and gradients (reverse mode runs the ring backwards).

    from jax.sharding import PartitionSpec as P
    seq = P(None, 'sequence')  # [B, T, N, H] split along T
    out = jax.shard_map(functools.partial(attention.ring, axis_name='sequence', is_causal=True),
                        mesh=mesh, in_specs=(seq, seq, seq), out_specs=seq)(q, k, v)

Causal attention and load balancing: with contiguous slices, device P-1 does P times the useful work of device
0 under a causal mask. `zigzag_order(T, P)` reorders the sequence so that device i holds chunks i and 2P-1-i
(equal work per device); pass the reordered positions as `q_positions`/`k_positions` (sharded like q and k) and
undo the order on the output with `numpy.argsort(order)`. Masked blocks are computed and then zeroed, so the
balance evens out the useful work, not the FLOPs spent.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from attention_research.attention import _checks


def zigzag_order(T: int, num_devices: int) -> np.ndarray:
  """Positions in the order to shard: device i gets chunks i and 2P-1-i of 2P equal chunks ([T] int32)."""
  T, P = _checks.check_int('T', T), _checks.check_int('num_devices', num_devices)
  if T % (2 * P):
    raise ValueError(f'zigzag_order needs T divisible by 2 * num_devices; got T={T}, num_devices={P}.')
  chunks = np.arange(T, dtype=np.int32).reshape(2 * P, T // (2 * P))
  return np.concatenate([np.concatenate([chunks[i], chunks[2 * P - 1 - i]]) for i in range(P)])


# Score elements of one query chunk against one key/value slice: bounds a device's temporary memory to about
# 16 MB of float32 scores per chunk, whatever the slice lengths.
CHUNK_ELEMENTS = 1 << 22
# Log-sum-exp given to rows that see no key: exp(s - DEAD_LSE) is 0 for every finite score s.
DEAD_LSE = -_checks.MASK_VALUE


def _visible(qpos_C, kmask_BS, kpos_S, is_causal):
  """[B, C, S] True where a query of the chunk may attend a key of the slice."""
  vis = kmask_BS[:, None, :]
  return vis & (qpos_C[None, :, None] >= kpos_S[None, None, :]) if is_causal else vis


def _scores(q_BCKGH, k_BSKH, vis_BCS):
  s = jnp.einsum('bckgh,bskh->bkgcs', q_BCKGH, k_BSKH, preferred_element_type=jnp.float32)
  return jnp.where(vis_BCS[:, None, None], s, _checks.MASK_VALUE)


def _fold(q_nBCKGH, qpos_nC, blocks, carry, is_causal):
  """Folds one key/value slice into every query chunk's running (output, max, sum) of the online softmax."""
  k, v, kmask, kpos = blocks

  def chunk(args):
    q_c, qpos_c, o, m, l = args
    vis = _visible(qpos_c, kmask, kpos, is_causal)
    s = _scores(q_c, k, vis)
    m_new = jnp.maximum(m, s.max(-1))
    # Zeroing masked entries keeps a slice with no visible key from adding exp(0) = 1 per entry.
    p = jnp.where(vis[:, None, None], jnp.exp(s - m_new[..., None]), 0.0)
    corr = jnp.exp(m - m_new)
    o = o * corr[..., None] + jnp.einsum('bkgcs,bskv->bkgcv', p, v.astype(jnp.float32))
    return o, m_new, l * corr + p.sum(-1)

  return lax.map(chunk, (q_nBCKGH, qpos_nC, *carry))


def _unfold(q_nBCKGH, qpos_nC, lse, dout, delta, blocks, grads, is_causal):
  """The gradient contributions of one key/value slice (FlashAttention-2's backward, chunk by chunk):
  returns dq of every chunk and the slice's dk, dv increased by this device's queries."""
  k, v, kmask, kpos = blocks

  def chunk(dkv, args):
    q_c, qpos_c, lse_c, do_c, delta_c = args
    vis = _visible(qpos_c, kmask, kpos, is_causal)
    p = jnp.where(vis[:, None, None], jnp.exp(_scores(q_c, k, vis) - lse_c[..., None]), 0.0)
    dp = jnp.einsum('bkgcv,bskv->bkgcs', do_c, v.astype(jnp.float32))
    ds = p * (dp - delta_c[..., None])
    dq = jnp.einsum('bkgcs,bskh->bckgh', ds, k.astype(jnp.float32))
    dk = dkv[0] + jnp.einsum('bkgcs,bckgh->bskh', ds, q_c)
    dv = dkv[1] + jnp.einsum('bkgcs,bkgcv->bskv', p, do_c)
    return (dk, dv), dq

  return lax.scan(chunk, grads, (q_nBCKGH, qpos_nC, lse, dout, delta))


def _ring_perm(axis_name):
  P = lax.axis_size(axis_name)
  return [(i, (i + 1) % P) for i in range(P)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _ring_core(q_nBCKGH, qpos_nC, k, v, kmask, kpos, axis_name, is_causal):
  return _ring_forward(q_nBCKGH, qpos_nC, k, v, kmask, kpos, axis_name, is_causal)[0]


def _ring_forward(q_nBCKGH, qpos_nC, k, v, kmask, kpos, axis_name, is_causal):
  nC, B, C, K, G, _ = q_nBCKGH.shape
  V = v.shape[-1]
  carry = (jnp.zeros((nC, B, K, G, C, V), jnp.float32), jnp.full((nC, B, K, G, C), _checks.MASK_VALUE, jnp.float32),
           jnp.zeros((nC, B, K, G, C), jnp.float32))
  blocks = tuple(_varying(x, axis_name) for x in (k, v, kmask, kpos))
  carry = _fold(q_nBCKGH, qpos_nC, blocks, tuple(_varying(x, axis_name) for x in carry), is_causal)

  def step(state, _):
    carry, blocks = state
    blocks = lax.ppermute(blocks, axis_name, _ring_perm(axis_name))
    return (_fold(q_nBCKGH, qpos_nC, blocks, carry, is_causal), blocks), None

  (carry, _), _ = lax.scan(step, (carry, blocks), None, length=lax.axis_size(axis_name) - 1)
  o, m, l = carry
  alive = l > 0
  out = jnp.where(alive[..., None], o / jnp.where(alive, l, 1.0)[..., None], 0.0)  # [nC, B, K, G, C, V]
  lse = jnp.where(alive, m + jnp.log(jnp.where(alive, l, 1.0)), DEAD_LSE)
  return out, lse


def _ring_fwd(q_nBCKGH, qpos_nC, k, v, kmask, kpos, axis_name, is_causal):
  out, lse = _ring_forward(q_nBCKGH, qpos_nC, k, v, kmask, kpos, axis_name, is_causal)
  return out, (q_nBCKGH, qpos_nC, k, v, kmask, kpos, out, lse)


def _ring_bwd(axis_name, is_causal, res, dout):
  """The backward pass is a second ring: dk and dv travel with their key/value slice, gathering every
  device's contribution, and are home again after P steps; only out and lse were kept from the forward."""
  q, qpos, k, v, kmask, kpos, out, lse = res
  dout = dout.astype(jnp.float32)
  delta = (dout * out).sum(-1)
  dq = jnp.zeros(q.shape, jnp.float32)
  grads = tuple(_varying(jnp.zeros(x.shape, jnp.float32), axis_name) for x in (k, v))
  blocks = tuple(_varying(x, axis_name) for x in (k, v, kmask, kpos))

  def step(state, _):
    dq, blocks, grads = state
    grads, dq_step = _unfold(q, qpos, lse, dout, delta, blocks, grads, is_causal)
    blocks, grads = lax.ppermute((blocks, grads), axis_name, _ring_perm(axis_name))
    return (dq + dq_step, blocks, grads), None

  (dq, _, (dk, dv)), _ = lax.scan(step, (_varying(dq, axis_name), blocks, grads), None,
                                  length=lax.axis_size(axis_name))
  return dq, None, dk.astype(k.dtype), dv.astype(v.dtype), None, None


_ring_core.defvjp(_ring_fwd, _ring_bwd)


def _varying(x, axis_name):
  """x typed as differing across the ring's devices, as the blocks that arrive by ppermute are (scan needs the
  carry's type to stay the same)."""
  manual = getattr(jax.typeof(x), 'manual_axis_type', None)
  if manual is None or axis_name in manual.varying:  # outside shard_map's type checks, or already varying
    return x
  return lax.pcast(x, axis_name, to='varying')


def ring(q, k, v, *, axis_name, is_causal: bool = False, mask=None, scale=None, q_positions=None,
         k_positions=None):
  """softmax(q k^T * scale) v over the whole sequence, for use inside shard_map over `axis_name`.

  Args (the local slices of one device):
    q: [..., T, N, H] queries.  k: [..., S, K, H] keys.  v: [..., S, K, V] values; N % K == 0.
    axis_name: the mesh axis the sequence is split over (P devices; the global lengths are P*T and P*S).
    is_causal: a query sees the keys at positions <= its own (queries and keys share positions, T == S).
    mask: key padding, bool [..., S] (True = may attend), sliced like k; it travels with the keys.
    scale: score scale; defaults to 1/sqrt(H).
    q_positions, k_positions: int [T] / [S] global positions of the local slices, for is_causal with a
      reordered sequence (`zigzag_order`); default: device i holds positions i*T ... (i+1)*T - 1.
  Returns: [..., T, N, V] in q's dtype; a query with no visible key gets zeros.
  """
  d = _checks.check_qkv(q, k, v)
  if is_causal and d.T != d.S:
    raise ValueError(f'causal ring attention needs queries and keys of one sequence (T == S); got q {q.shape}, '
                     f'k {k.shape}.')
  if mask is not None and (mask.dtype != jnp.bool_ or mask.shape != (*d.batch_shape, d.S)):
    raise ValueError(f'mask must be a bool key padding mask of shape {(*d.batch_shape, d.S)}; got '
                     f'{mask.dtype} {mask.shape}.')
  idx = lax.axis_index(axis_name)
  q_pos = idx * d.T + jnp.arange(d.T) if q_positions is None else jnp.asarray(q_positions)
  k_pos = idx * d.S + jnp.arange(d.S) if k_positions is None else jnp.asarray(k_positions)
  if q_pos.shape != (d.T,) or k_pos.shape != (d.S,):
    raise ValueError(f'q_positions and k_positions must have shapes ({d.T},) and ({d.S},); got '
                     f'{q_pos.shape} and {k_pos.shape}.')
  B = d.B
  scale = _checks.default_scale(scale, d.H)
  C = min(d.T, max(8, CHUNK_ELEMENTS // (d.N * max(d.S, 1)) // 8 * 8))
  nC = -(-d.T // C)
  pad = nC * C - d.T  # padded query rows sit at position -1 (see nothing under a causal mask) and are cropped
  q5 = jnp.pad(q.reshape(B, d.T, d.K, d.G, d.H).astype(jnp.float32) * scale, ((0, 0), (0, pad), (0, 0), (0, 0),
                                                                              (0, 0)))
  q_nBCKGH = jnp.moveaxis(q5.reshape(B, nC, C, d.K, d.G, d.H), 1, 0)
  qpos_nC = jnp.pad(q_pos, (0, pad), constant_values=-1).reshape(nC, C)
  kb, vb = k.reshape(B, d.S, d.K, d.H), v.reshape(B, d.S, d.K, d.V)
  kmask = jnp.ones((B, d.S), bool) if mask is None else mask.reshape(B, d.S)
  out = _ring_core(q_nBCKGH, qpos_nC, kb, vb, kmask, k_pos, axis_name, bool(is_causal))
  out = jnp.moveaxis(out, 0, 3).reshape(B, d.K, d.G, nC * C, d.V)[:, :, :, :d.T]
  out = jnp.moveaxis(out.reshape(B, d.N, d.T, d.V), 1, 2)  # heads n = k * G + g, as the other variants
  return out.reshape(*d.batch_shape, d.T, d.N, d.V).astype(q.dtype)
