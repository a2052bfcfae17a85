"""Context parallelism: exact softmax attention as `attention.ring` when the active mesh splits the sequence.

Under `jax.set_mesh(mesh)`, with a mesh axis named SEQUENCE_AXIS of size P > 1 and the inputs split along their
length over it, every position-wise layer (projections, MLPs, norms, embeddings, RoPE on the global positions of
`jnp.arange`) computes on jit's global view and XLA keeps its arrays split. Attention is the one layer that mixes
positions: MultiHeadAttention hands it to `attend`, which runs `attention.ring` in a `jax.shard_map` that is
manual over the sequence axis alone, so the batch stays split over the mesh's other axes (data, fsdp) as jit
placed it. No device ever holds the whole sequence's keys or scores.

Only exact softmax attention over the whole sequence has a ring form here (`supports_ring`): key padding masks
(they travel with the keys) and `is_causal` (global positions), no bias, sinks or soft-capping.

Dimension letters: B batch (any leading dims), T query length, S key length, N / K query / key-value heads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from attention_research import attention

SEQUENCE_AXIS = 'sequence'
# Variant options that choose how softmax attention is computed, not what: the ring computes the same numbers.
NEUTRAL_OPTIONS = ('implementation', 'block_q', 'block_k')


def sequence_devices() -> int:
  """P, the size of the active mesh's sequence axis (1 without a mesh or without that axis)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or SEQUENCE_AXIS not in mesh.axis_names:
    return 1
  return mesh.shape[SEQUENCE_AXIS]


def supports_ring(info: attention.Variant) -> bool:
  """Exact softmax attention over the whole sequence, with no parameters or call arguments of its own."""
  return info.family == 'softmax' and info.exact and info.init_params is None and info.call_kwargs is None


def ring_variants() -> list[str]:
  return [name for name, info in attention.VARIANTS.items() if supports_ring(info)]


def _check(info: attention.Variant, kwargs: dict, size: int):
  where = f"a '{SEQUENCE_AXIS}' mesh axis of {size} devices (config.train.sequence={size})"
  if not supports_ring(info):
    raise ValueError(f'{where} runs attention as attention.ring, which computes exact softmax attention only; '
                     f'variant {info.name!r} has no ring form. Supported variants: {ring_variants()}; or train '
                     'with config.train.sequence=1.')
  other = {k: v for k, v in kwargs.items() if k not in NEUTRAL_OPTIONS and k != 'scale' and v is not None}
  if other.get('normalizer', 'softmax') == 'softmax':
    other.pop('normalizer', None)
  if other:
    raise ValueError(f'{where}: attention.ring takes key padding masks and is_causal only; variant {info.name!r} '
                     f'got {sorted(other)} (biases, sinks, soft caps and other normalisers have no ring form).')


def _key_padding(mask, batch_shape, S):
  """mask broadcastable to [..., N, T, S] that varies over keys only -> bool [*batch_shape, S]."""
  mask = jnp.asarray(mask)
  if (mask.ndim >= 2 and mask.shape[-2] != 1) or (mask.ndim >= 3 and mask.shape[-3] != 1):
    raise ValueError(f'attention.ring under a sequence mesh takes key padding masks ([B, 1, 1, S]) only; got a '
                     f'mask of shape {mask.shape} that varies over heads or queries.')
  lead = mask.shape[:-3] if mask.ndim >= 3 else ()
  return jnp.broadcast_to(mask.reshape(lead + mask.shape[-1:]), (*batch_shape, S)).astype(bool)


def _pad_length(x, to: int, axis: int):
  if x.shape[axis] == to:
    return x
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, to - x.shape[axis])
  return jnp.pad(x, pad)


def attend(info: attention.Variant, q, k, v, *, mask=None, is_causal: bool = False, **kwargs):
  """info's attention over the whole (split) sequence as attention.ring; q [B, T, N, H], k, v [B, S, K, H|V].

  kwargs are the variant's keyword arguments (options, bias, sinks); only `scale` and NEUTRAL_OPTIONS are
  accepted. Lengths that the sequence axis does not divide are padded (padded keys are masked, padded queries
  cropped), which costs a reshuffle of the split arrays: lengths that P divides avoid it. Raises ValueError for a
  variant without a ring form (naming those that have one) or a mask that is not key padding.
  """
  size = sequence_devices()
  _check(info, kwargs, size)
  batch_shape, T, S = q.shape[:-3], q.shape[-3], k.shape[-3]
  Tp, Sp = -(-T // size) * size, -(-S // size) * size
  if is_causal and T != S:
    raise ValueError(f'causal attention over a split sequence needs queries and keys of one sequence (T == S); got '
                     f'q {q.shape}, k {k.shape}.')
  if mask is not None or Sp != S:
    mask = jnp.ones((*batch_shape, S), bool) if mask is None else _key_padding(mask, batch_shape, S)
    mask = _pad_length(mask, Sp, -1)
  q = _pad_length(q, Tp, -3)
  k, v = _pad_length(k, Sp, -3), _pad_length(v, Sp, -3)
  seq = P(*([None] * len(batch_shape)), SEQUENCE_AXIS)

  def ring(q, k, v, mask=None):
    return attention.ring(q, k, v, axis_name=SEQUENCE_AXIS, is_causal=is_causal, mask=mask,
                          scale=kwargs.get('scale'))

  args = (q, k, v) if mask is None else (q, k, v, mask)
  out = jax.shard_map(ring, in_specs=(seq,) * len(args), out_specs=seq, axis_names={SEQUENCE_AXIS})(*args)
  return out[..., :T, :, :]
