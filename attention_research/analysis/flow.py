"""Attention flow (Abnar and Zuidema 2020): maximum flow through the layer graph of a self-attention stack.

The graph has a node per (layer boundary, token): the L + 1 boundaries of L layers, T tokens each. Layer l
joins boundary l - 1 to boundary l with an edge (l - 1, s) -> (l, t) of capacity A_l[t, s], where A_l is the
layer's head-averaged weights with the residual added and rows renormalised (0.5 W + 0.5 I), as in
`statistics.attention_rollout`. flow[t, s] is the value of a maximum flow from input token s (boundary 0) to
output token t (boundary L). Rollout multiplies the layers' matrices, so it assumes that all paths compose;
flow treats the weights as capacities, so a path carries no more than its narrowest edge.

With one layer, flow and rollout are the same matrix (a single edge from s to t). scipy's maximum_flow takes
integer capacities: weights are scaled by 2**20 and rounded, so values are exact to about 1e-6.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import maximum_flow

from attention_research.analysis import statistics

SCALE = 1 << 20


def layer_matrices(layers, *, residual: bool = True, head_fusion: str = 'mean') -> list[np.ndarray]:
  """Each layer's [..., T, T] matrix of rollout: heads fused, residual added, rows renormalised."""
  ws = statistics._layer_list(layers)  # pylint: disable=protected-access
  if not ws:
    raise ValueError('attention flow needs at least one layer of weights.')
  # Rollout of one layer is that layer's matrix: reuse its checks, fusion and renormalisation.
  return [statistics.attention_rollout([w], residual=residual, head_fusion=head_fusion) for w in ws]


def _graph(mats: list[np.ndarray]) -> sparse.csr_array:
  """Capacities of the layer graph, node (l, t) numbered l * T + t."""
  T = mats[0].shape[-1]
  rows, cols, caps = [], [], []
  for l, a in enumerate(mats):
    t, s = np.nonzero(a > 0)
    rows.append(l * T + s)
    cols.append((l + 1) * T + t)
    caps.append(np.rint(a[t, s] * SCALE).astype(np.int32))
  n = (len(mats) + 1) * T
  return sparse.csr_array((np.concatenate(caps), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def flow_matrix(mats: list[np.ndarray]) -> np.ndarray:
  """Max-flow values [T, T] (output token x input token) of the graph of one example's layer matrices [T, T]."""
  T = mats[0].shape[-1]
  graph = _graph(mats)
  out = np.zeros((T, T))
  sink0 = len(mats) * T
  for s in range(T):
    for t in range(T):
      out[t, s] = maximum_flow(graph, s, sink0 + t).flow_value / SCALE
  return out


def attention_flow(layers, *, residual: bool = True, head_fusion: str = 'mean') -> np.ndarray:
  """Attention flow, [..., T, T]: row t holds the max-flow from each input token to output token t.

  Args:
    layers: self-attention weights, first layer first, as for `statistics.attention_rollout` (a sequence of
      [..., N, T, T] arrays, an array [L, ..., N, T, T], or a per-layer dict tree of one stack).
    residual, head_fusion: as in attention_rollout.

  Rows are not renormalised: a row sums to at most 1, and its values are bounded by the narrowest layer.
  Cost: T^2 max-flow problems of (L + 1) T nodes per example; meant for short sequences.
  """
  mats = layer_matrices(layers, residual=residual, head_fusion=head_fusion)
  batch = mats[0].shape[:-2]
  flat = [m.reshape((-1,) + m.shape[-2:]) for m in mats]
  out = np.stack([flow_matrix([m[b] for m in flat]) for b in range(flat[0].shape[0])])
  return out.reshape(batch + out.shape[-2:])
