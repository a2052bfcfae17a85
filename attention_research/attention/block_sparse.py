"""Block-sparse attention in the style of BigBird (Zaheer et al. 2020): window + global + random key blocks.

Queries and keys are cut into blocks of `block_size`. Query t sits at key position t + S - T (the causal
convention of the package), so its block is (t + S - T) // block_size and for T == S query and key blocks
coincide. A query block qb attends:
  window  key blocks qb - w//2 ... qb + (w-1)//2 (w = num_window_blocks; 3 gives one block either side),
  global  the first g = num_global_blocks key blocks; query blocks qb < g (the first g, and any block before the
          first key when T > S) attend every key,
  random  r = num_random_blocks further key blocks, drawn without replacement from those not already taken
          (and, when causal, below the diagonal), deterministically from `seed` on the host.
Causal: blocks above the diagonal are dropped and the diagonal block is masked elementwise (s <= t + S - T).

The computation gathers, for each non-global query block, its w + g + r key blocks and runs a softmax over
those (w + g + r) * block_size keys: O(T (w+g+r) b H) time and O(T (w+g+r) b) memory, plus O(g b S) for the
global query rows; the [T, S] matrix is never formed. `block_sparse_mask` returns the same pattern as a
[T, S] boolean mask: block_sparse(q, k, v, ...) equals dot_product(q, k, v, mask=block_sparse_mask(...) & mask).
Lengths that are not multiples of block_size are padded internally.
Extra dimension letters: n query block, C query in block, D gathered key, W gathered key blocks.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from attention_research.attention import _checks
from attention_research.attention._dense import reference
from attention_research.attention.normalizers import softmax


@dataclasses.dataclass(frozen=True)
class _Layout:
  b: int  # block size
  front: int  # padding rows before query 0 (its offset inside its block)
  num_q_blocks: int  # query blocks qb0 ... num_k_blocks - 1
  num_k_blocks: int
  num_global_q_blocks: int  # the first query blocks, qb < g: dense rows
  idx: np.ndarray  # [sparse query blocks, W] key block indices (0 where not valid)
  valid: np.ndarray  # [sparse query blocks, W]

  def block_matrix(self) -> np.ndarray:
    """[num_q_blocks, num_k_blocks] bool: which key blocks each query block attends."""
    m = np.zeros((self.num_q_blocks, self.num_k_blocks), bool)
    m[:self.num_global_q_blocks] = True
    rows = np.arange(self.idx.shape[0])[:, None] + self.num_global_q_blocks
    m[np.broadcast_to(rows, self.idx.shape)[self.valid], self.idx[self.valid]] = True
    return m


# Options that make the pattern meaningful on the short sequences of registry-wide tests.
EXAMPLE_OPTIONS = {'block_size': 2, 'num_window_blocks': 3, 'num_global_blocks': 1, 'num_random_blocks': 1}


def _check_options(T, S, block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed):
  # Python ints: the sparsity pattern is static.
  opts = dict(block_size=_checks.check_int('block_size', block_size),
              num_window_blocks=_checks.check_int('num_window_blocks', num_window_blocks),
              num_global_blocks=_checks.check_int('num_global_blocks', num_global_blocks, minimum=0),
              num_random_blocks=_checks.check_int('num_random_blocks', num_random_blocks, minimum=0),
              seed=_checks.check_int('seed', seed, minimum=0))
  if opts['block_size'] > S > 0:  # S = 0 has no blocks at all: every variant returns zeros
    raise ValueError(f'block_size={block_size} is larger than the key sequence (S={S}, T={T}); use a block size '
                     f'<= {S} or dense attention.')
  return opts


@functools.lru_cache(maxsize=128)
def _layout(T, S, block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed, is_causal):
  b, g = block_size, num_global_blocks
  offset = S - T
  qb0 = offset // b  # negative when T > S
  nk = -(-S // b)
  nq = nk - qb0
  ng = min(max(g - qb0, 0), nq)
  left, right = num_window_blocks // 2, (0 if is_causal else (num_window_blocks - 1) // 2)
  rng = np.random.default_rng(seed)
  width = left + 1 + right + g + num_random_blocks
  idx = np.zeros((nq - ng, width), np.int32)
  valid = np.zeros((nq - ng, width), bool)
  for row, qb in enumerate(range(qb0 + ng, nk)):
    window = [kb for kb in range(qb - left, qb + right + 1) if 0 <= kb < nk]
    globs = [kb for kb in range(min(g, nk)) if kb not in window]
    taken = set(window) | set(range(min(g, nk)))
    limit = qb if is_causal else nk
    candidates = [kb for kb in range(min(limit, nk)) if kb not in taken]
    picks = sorted(rng.choice(candidates, size=min(num_random_blocks, len(candidates)), replace=False).tolist()) \
        if candidates and num_random_blocks else []
    chosen = window + globs + picks
    idx[row, :len(chosen)] = chosen
    valid[row, :len(chosen)] = True
  for a in (idx, valid):
    a.flags.writeable = False
  return _Layout(b, offset - qb0 * b, nq, nk, ng, idx, valid)


def block_sparse_mask(T: int, S: int, *, block_size=64, num_window_blocks=3, num_global_blocks=1,
                      num_random_blocks=2, seed=0, is_causal=False):
  """Bool [T, S] (True = may attend): the exact pattern `block_sparse` computes, causal constraint included."""
  o = _check_options(T, S, block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed)
  if T == 0 or S == 0:
    return jnp.zeros((T, S), bool)
  lay = _layout(T, S, **o, is_causal=bool(is_causal))
  q_block = (np.arange(T) + lay.front) // lay.b
  k_block = np.arange(S) // lay.b
  m = lay.block_matrix()[q_block[:, None], k_block[None, :]]
  if is_causal:  # numpy, not _checks.causal_mask_ts: this must stay concrete under jit
    m &= np.arange(S)[None, :] <= np.arange(T)[:, None] + S - T
  return jnp.asarray(m)


def _gather(x, rows, cols):
  """x [B', N', T|1, S|1] -> [B', N', *rows.shape[:-1], rows.shape[-1], cols.shape[-1]] at (rows, cols)."""
  r = rows if x.shape[2] > 1 else np.zeros_like(rows)
  c = cols if x.shape[3] > 1 else np.zeros_like(cols)
  return x[:, :, r[..., :, None], c[..., None, :]]


def block_sparse(q, k, v, *, block_size=64, num_window_blocks=3, num_global_blocks=1, num_random_blocks=2, seed=0,
                 mask=None, bias=None, is_causal=False, scale=None, return_weights=False):
  """BigBird block-sparse attention; see the module docstring for the pattern.

  Args:
    q: [..., T, N, H].  k: [..., S, K, H].  v: [..., S, K, V]; N % K == 0.
    block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed: the static pattern
      (Python ints; block_size <= S).
    mask: any bool mask broadcastable to [..., N, T, S], combined with the pattern.
    bias: additive float broadcastable to [..., N, T, S].
    is_causal: query t sees keys s <= t + S - T.
    scale: score scale, default 1/sqrt(H).
    return_weights: also return the weights [..., N, T, S] (from the dense reference with the pattern mask).

  Returns:
    out [..., T, N, V] in v's dtype, or (out, weights). Rows with no visible key give zeros.
  """
  d = _checks.check_qkv(q, k, v)
  mask, bias = _checks.check_mask_bias(mask, bias, d)
  o = _check_options(d.T, d.S, block_size, num_window_blocks, num_global_blocks, num_random_blocks, seed)
  if _checks.is_empty(d):
    return _checks.empty_result(d, v, return_weights)
  lay = _layout(d.T, d.S, **o, is_causal=bool(is_causal))
  scale = jnp.float32(_checks.default_scale(scale, d.H))
  b, nq, nk, ng = lay.b, lay.num_q_blocks, lay.num_k_blocks, lay.num_global_q_blocks
  m_bnts, bias_bnts = _checks.to_bnts(mask, d), _checks.to_bnts(bias, d)

  q_pad = jnp.pad(_checks.flatten_batch(q, d), [(0, 0), (lay.front, nq * b - lay.front - d.T), (0, 0), (0, 0)])
  q_pos = np.arange(nq * b) - lay.front  # query index t of each padded row
  q_rows = np.clip(q_pos, 0, d.T - 1)
  outs = []

  if ng:  # global query rows: every key, dense
    rows = q_rows[:ng * b]
    qg = q_pad[:, :ng * b]
    s = jnp.einsum('BTKGH,BSKH->BKGTS', qg.reshape(d.B, ng * b, d.K, d.G, d.H), _checks.flatten_batch(k, d),
                   preferred_element_type=jnp.float32).reshape(d.B, d.N, ng * b, d.S) * scale
    if bias_bnts is not None:
      s = s + _gather(bias_bnts, rows, np.arange(d.S)).astype(jnp.float32)
    allowed = None
    if is_causal:
      allowed = jnp.asarray(np.arange(d.S)[None, :] <= q_pos[:ng * b, None] + d.S - d.T)
    if m_bnts is not None:
      mg = _gather(m_bnts, rows, np.arange(d.S))
      allowed = mg if allowed is None else jnp.logical_and(allowed, mg)
    w = softmax(s, allowed)
    out = jnp.einsum('BKGTS,BSKV->BTKGV', w.reshape(d.B, d.K, d.G, ng * b, d.S).astype(v.dtype),
                     _checks.flatten_batch(v, d), preferred_element_type=jnp.float32)
    outs.append(out.reshape(d.B, ng * b, d.N, d.V))

  if nq > ng:  # sparse query blocks: gather their key blocks
    n = nq - ng
    W = lay.idx.shape[1]
    qs = q_pad[:, ng * b:].reshape(d.B, n, b, d.K, d.G, d.H)
    k_pad, v_pad = (jnp.pad(_checks.flatten_batch(x, d), [(0, 0), (0, nk * b - d.S), (0, 0), (0, 0)])
                    for x in (k, v))
    kg = k_pad.reshape(d.B, nk, b, d.K, d.H)[:, lay.idx].reshape(d.B, n, W * b, d.K, d.H)
    vg = v_pad.reshape(d.B, nk, b, d.K, d.V)[:, lay.idx].reshape(d.B, n, W * b, d.K, d.V)
    k_pos = (lay.idx[:, :, None] * b + np.arange(b)).reshape(n, W * b)  # key index s of each gathered key
    k_ok = np.repeat(lay.valid, b, axis=1) & (k_pos < d.S)
    qp = q_pos[ng * b:].reshape(n, b)
    allowed = np.broadcast_to(k_ok[:, None, :], (n, b, W * b))
    if is_causal:
      allowed = allowed & (k_pos[:, None, :] <= qp[:, :, None] + d.S - d.T)
    allowed = jnp.asarray(allowed)
    rows, cols = q_rows[ng * b:].reshape(n, b), np.clip(k_pos, 0, d.S - 1)
    if m_bnts is not None:
      allowed = jnp.logical_and(allowed, _gather(m_bnts, rows, cols))
    s = jnp.einsum('BnCKGH,BnDKH->BKGnCD', qs, kg, preferred_element_type=jnp.float32)
    s = s.reshape(d.B, d.N, n, b, W * b) * scale
    if bias_bnts is not None:
      s = s + _gather(bias_bnts, rows, cols).astype(jnp.float32)
    w = softmax(s, allowed).reshape(d.B, d.K, d.G, n, b, W * b)
    out = jnp.einsum('BKGnCD,BnDKV->BnCKGV', w.astype(v.dtype), vg, preferred_element_type=jnp.float32)
    outs.append(out.reshape(d.B, n * b, d.N, d.V))

  out = jnp.concatenate(outs, axis=1) if len(outs) > 1 else outs[0]
  out = _checks.unflatten_batch(out[:, lay.front:lay.front + d.T].astype(v.dtype), d)
  if not return_weights:
    return out
  pattern = block_sparse_mask(d.T, d.S, **o, is_causal=is_causal)
  full = pattern if mask is None else jnp.logical_and(mask, pattern)
  _, weights = reference(q, k, v, mask=full, bias=bias, scale=scale, return_weights=True)
  return out, weights
