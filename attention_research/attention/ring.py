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


# Rematerialised in the backward pass: reverse mode then keeps only each step's inputs, not its [T, S] scores,
# so a device's temporary memory is one score block however many ring steps there are.
@jax.checkpoint
def _block(q_BTKGH, k_BSKH, v_BSKV, visible_BTS, carry):
  """Folds one key/value block into the running (output, max, sum) of the online softmax, in float32."""
  o, m, l = carry
  s = jnp.einsum('btkgh,bskh->bkgts', q_BTKGH, k_BSKH, preferred_element_type=jnp.float32)
  vis = visible_BTS[:, None, None]
  s = jnp.where(vis, s, _checks.MASK_VALUE)
  m_new = jnp.maximum(m, s.max(-1))
  # Zeroing masked entries keeps a block with no visible key from adding exp(0) = 1 per entry.
  p = jnp.where(vis, jnp.exp(s - m_new[..., None]), 0.0)
  corr = jnp.exp(m - m_new)
  l = l * corr + p.sum(-1)
  o = o * corr[..., None] + jnp.einsum('bkgts,bskv->bkgtv', p, v_BSKV.astype(jnp.float32))
  return o, m_new, l


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
  P = lax.axis_size(axis_name)
  idx = lax.axis_index(axis_name)
  q_pos = idx * d.T + jnp.arange(d.T) if q_positions is None else jnp.asarray(q_positions)
  k_pos = idx * d.S + jnp.arange(d.S) if k_positions is None else jnp.asarray(k_positions)
  if q_pos.shape != (d.T,) or k_pos.shape != (d.S,):
    raise ValueError(f'q_positions and k_positions must have shapes ({d.T},) and ({d.S},); got '
                     f'{q_pos.shape} and {k_pos.shape}.')
  B = d.B
  scale = _checks.default_scale(scale, d.H)
  q5 = (q.reshape(B, d.T, d.K, d.G, d.H).astype(jnp.float32) * scale)
  kb, vb = k.reshape(B, d.S, d.K, d.H), v.reshape(B, d.S, d.K, d.V)
  kmask = jnp.ones((B, d.S), bool) if mask is None else mask.reshape(B, d.S)

  def visible(kmask_BS, kpos_S):
    vis = jnp.broadcast_to(kmask_BS[:, None, :], (B, d.T, d.S))
    return vis & (q_pos[:, None] >= kpos_S[None, :]) if is_causal else vis

  carry = (jnp.zeros((B, d.K, d.G, d.T, d.V), jnp.float32),
           jnp.full((B, d.K, d.G, d.T), _checks.MASK_VALUE, jnp.float32),
           jnp.zeros((B, d.K, d.G, d.T), jnp.float32))
  carry = _block(q5, kb, vb, visible(kmask, k_pos), carry)
  perm = [(i, (i + 1) % P) for i in range(P)]

  def step(state, _):
    carry, blocks = state
    blocks = lax.ppermute(blocks, axis_name, perm)
    kb, vb, km, kp = blocks
    return (_block(q5, kb, vb, visible(km, kp), carry), blocks), None

  blocks = tuple(_varying(x, axis_name) for x in (kb, vb, kmask, k_pos))
  carry = tuple(_varying(x, axis_name) for x in carry)
  (carry, _), _ = lax.scan(step, (carry, blocks), None, length=P - 1)
  o, _, l = carry
  out = jnp.where(l[..., None] > 0, o / jnp.where(l > 0, l, 1.0)[..., None], 0.0)
  out = jnp.moveaxis(out.reshape(B, d.N, d.T, d.V), 1, 2)  # heads n = k * G + g, as the other variants
  return out.reshape(*d.batch_shape, d.T, d.N, d.V).astype(q.dtype)
