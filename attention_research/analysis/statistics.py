"""Attention statistics per head and layer: entropy, mean attention distance, rollout, and table rows.

Weights are [..., T, S] (queries x keys), usually [B, N, T, S]; every function works in float64 numpy.
Each row is read as a distribution over keys: negative entries (possible in the weights reconstructed for
low-rank variants) are clipped to 0 and the row is renormalised, which is a no-op for exact variants.
A row with no weight at all (a fully masked query, padding) has entropy 0 and distance 0 and is left out of
per-head averages, so padding never produces NaN and never drags a head's average down.

  entropy             H = -sum_s p log p in nats; 0 for one-hot, log S for uniform (saturation: a head
                      near log S attends to everything and selects nothing).
  normalised_entropy  H / log(#keys the query may see), in [0, 1]; with a causal mask query t sees t + 1.
  mean_distance       sum_s p_ts |pos_t - pos_s|, in positions (1-D) or coordinates (e.g. ViT patches).
  attention_rollout   Abnar and Zuidema (2020): average heads, add the identity for the residual stream,
                      renormalise rows, multiply through the layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from attention_research.analysis import _checks, maps as maps_lib

SATURATION_THRESHOLD = 0.9  # normalised entropy above which a head counts as saturated (near uniform)


def _weights(weights, name='weights', min_rank=2):
  return _checks.as_array(weights, name, min_rank=min_rank, layout='[..., T, S]')


def distribution(weights) -> tuple[np.ndarray, np.ndarray]:
  """(rows renormalised to sum 1, bool [..., T] whether the row had any weight)."""
  p = np.clip(_weights(weights), 0.0, None)
  total = p.sum(-1, keepdims=True)
  p = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
  return p, total[..., 0] > 0


def entropy(weights) -> np.ndarray:
  """Entropy of each query's weights over the keys, in nats: [..., T, S] -> [..., T]."""
  p, _ = distribution(weights)
  safe = np.where(p > 0, p, 1.0)
  return -(p * np.log(safe)).sum(-1)


def causal_mask(T: int, S: int) -> np.ndarray:
  """Bool [T, S]: key s is visible to query t when s <= t + S - T (queries are the last T positions, the
  causal convention of `attention`)."""
  return np.arange(S)[None, :] <= np.arange(T)[:, None] + (S - T)


def visible_keys(weights, mask=None) -> np.ndarray:
  """Number of keys each query may attend to, [..., T]: S without a mask, else the mask's count."""
  w = _weights(weights)
  if mask is None:
    return np.full(w.shape[:-1], w.shape[-1], dtype=np.float64)
  m = np.asarray(mask)
  if m.dtype != np.bool_:
    raise ValueError(f'mask must be boolean (True = may attend); got dtype {m.dtype} and shape {m.shape}.')
  try:
    m = np.broadcast_to(m, w.shape)
  except ValueError as e:
    raise ValueError(f'mask of shape {m.shape} does not broadcast to the weights of shape {w.shape}.') from e
  return m.sum(-1).astype(np.float64)


def max_entropy(weights, mask=None) -> np.ndarray:
  """log(#visible keys) per query, [..., T]: the entropy of uniform attention over what the query may see."""
  n = visible_keys(weights, mask)
  return np.log(np.maximum(n, 1.0))


def normalised_entropy(weights, mask=None) -> np.ndarray:
  """Entropy / log(#visible keys), in [0, 1], [..., T]; 0 where a query sees at most one key."""
  h, hmax = entropy(weights), max_entropy(weights, mask)
  return np.divide(h, hmax, out=np.zeros_like(h), where=hmax > 0)


def _positions(pos, n: int, default_offset: int, name: str) -> np.ndarray:
  if pos is None:
    return (np.arange(n, dtype=np.float64) + default_offset)[:, None]
  p = _checks.as_array(pos, name, ranks=(1, 2), layout='[L] or [L, coordinates]')
  p = p[:, None] if p.ndim == 1 else p
  if p.shape[0] != n:
    raise ValueError(f'{name} of shape {p.shape} must have {n} rows to match the weights.')
  return p


def mean_attention_distance(weights, query_positions=None, key_positions=None) -> np.ndarray:
  """sum_s p_ts ||pos_t - pos_s|| per query, [..., T].

  Positions default to the convention of the attention functions: key s at s, query t at t + S - T (queries
  are the last T keys, as in incremental decoding). Pass [T, D] / [S, D] coordinates for 2-D patches (the
  ViT paper's attention distance, in pixels if the coordinates are pixels). Meaningful for self-attention;
  for cross-attention it compares positions in two different sequences.
  """
  p, _ = distribution(weights)
  T, S = p.shape[-2:]
  qp = _positions(query_positions, T, S - T, 'query_positions')
  kp = _positions(key_positions, S, 0, 'key_positions')
  if qp.shape[1] != kp.shape[1]:
    raise ValueError(f'query_positions {qp.shape} and key_positions {kp.shape} have different coordinates.')
  dist = np.sqrt(((qp[:, None, :] - kp[None, :, :]) ** 2).sum(-1))  # [T, S]
  return (p * dist).sum(-1)


def _layer_list(layers) -> list[np.ndarray]:
  if isinstance(layers, Mapping) or (not hasattr(layers, 'shape') and any(
      isinstance(x, Mapping) or x is None for x in layers)):
    groups = maps_lib.group_layers(maps_lib.flatten(layers))
    if len(groups) != 1:
      raise ValueError(f'attention_rollout needs the maps of one stack of layers; got groups {sorted(groups)}.')
    return [_checks.as_array(w, name, min_rank=3) for _, name, w in next(iter(groups.values()))]
  if hasattr(layers, 'shape'):
    a = _checks.as_array(layers, 'weights', min_rank=4, layout='[L, ..., N, T, T]')
    return list(a)
  return [_checks.as_array(w, f'weights[{i}]', min_rank=3, layout='[..., N, T, T]') for i, w in enumerate(layers)]


def attention_rollout(layers, *, residual: bool = True, head_fusion: str = 'mean') -> np.ndarray:
  """Attention rollout (Abnar and Zuidema 2020), [..., T, T] with rows summing to 1.

  Args:
    layers: self-attention weights of the layers, first layer first: a sequence of [..., N, T, T] arrays, an
      array [L, ..., N, T, T], or a per-layer dict tree (see `maps.flatten`) holding a single stack.
    residual: add the identity before renormalising (0.5 W + 0.5 I for rows that sum to 1), for the
      residual connection around each attention layer.
    head_fusion: 'mean' (the paper), 'max' or 'min' over heads.

  Returns:
    R = A_L ... A_1: row t is how much each input token contributes to output token t of the last layer.
  """
  fuse = {'mean': np.mean, 'max': np.max, 'min': np.min}
  if head_fusion not in fuse:
    raise ValueError(f'unknown head_fusion {head_fusion!r}; known: {sorted(fuse)}.')
  ws = _layer_list(layers)
  if not ws:
    raise ValueError('attention_rollout needs at least one layer of weights.')
  shape = ws[0].shape
  for i, w in enumerate(ws):
    if w.shape != shape:
      raise ValueError(f'layer {i} weights have shape {w.shape}, layer 0 has {shape}; rollout needs equal shapes.')
    if w.shape[-1] != w.shape[-2]:
      raise ValueError(f'rollout needs self-attention weights [..., N, T, T]; layer {i} has shape {w.shape}.')
  T = shape[-1]
  eye = np.eye(T)
  rollout = None
  for w in ws:
    a, _ = distribution(fuse[head_fusion](np.clip(w, 0.0, None), axis=-3))
    if residual:
      a = a + eye
    total = a.sum(-1, keepdims=True)
    # A query with no weight and no residual keeps its own token, so the product stays row-stochastic.
    a = np.where(total > 0, a / np.where(total > 0, total, 1.0), eye)
    rollout = a if rollout is None else a @ rollout
  return rollout


def head_statistics(weights, *, mask=None, query_positions=None, key_positions=None) -> dict[str, np.ndarray]:
  """Per-head averages over the batch and the queries that have any weight: weights [..., N, T, S] -> [N].

  Keys: entropy, max_entropy (log #visible keys), normalised_entropy, mean_distance, and queries (how many
  rows were averaged).
  """
  w = _weights(weights, min_rank=3)
  if w.ndim == 3:
    w = w[None]
  _, valid = distribution(w)
  stats = {
      'entropy': entropy(w),
      'max_entropy': max_entropy(w, mask),
      'normalised_entropy': normalised_entropy(w, mask),
      'mean_distance': mean_attention_distance(w, query_positions, key_positions),
  }
  axes = tuple(i for i in range(w.ndim - 1) if i != w.ndim - 3)  # every axis but the heads
  count = valid.sum(axis=axes).astype(np.float64)
  out = {k: np.divide((np.where(valid, v, 0.0)).sum(axis=axes), count, out=np.zeros_like(count),
                      where=count > 0) for k, v in stats.items()}
  out['queries'] = count
  return out


def _mask_for(mask, name):
  if isinstance(mask, Mapping):
    return mask.get(name)
  return mask


def table_rows(weights, *, mask=None, positions: Mapping[str, Any] | None = None, **columns) -> list[dict]:
  """One row per (attention map, layer, head), ready for a CSV/Markdown table or compare's results.

  Args:
    weights: one array [..., N, T, S] or any tree of them (see `maps.flatten`), e.g. a Transformer's list of
      {'self': ..., 'cross': ...} dicts.
    mask: None, one bool array broadcastable to every map, or {map_name: mask}.
    positions: optional {map_name: (query_positions, key_positions)} for `mean_attention_distance`.
    **columns: constant columns put first in every row (variant='linear', seed=0, ...).

  Returns:
    dicts with keys *columns, map (the map's name without its layer index, e.g. 'decoder/cross'), layer (-1
    for a map without a layer index), head, entropy, max_entropy, normalised_entropy, mean_distance,
    saturated (normalised entropy > SATURATION_THRESHOLD).
  """
  rows = []
  for group, items in maps_lib.group_layers(maps_lib.flatten(weights)).items():
    for layer, name, w in items:
      qp, kp = (positions or {}).get(name, (None, None))
      stats = head_statistics(w, mask=_mask_for(mask, name), query_positions=qp, key_positions=kp)
      for h in range(len(stats['entropy'])):
        rows.append({**columns, 'map': group, 'layer': layer, 'head': h,
                     **{k: float(stats[k][h]) for k in ('entropy', 'max_entropy', 'normalised_entropy',
                                                        'mean_distance')},
                     'saturated': bool(stats['normalised_entropy'][h] > SATURATION_THRESHOLD)})
  return rows


def summary_row(weights, *, mask=None, positions=None, **columns) -> dict:
  """One row per run for compare's results: head averages of `table_rows`, prefixed attn_.

  Keys: *columns, attn_entropy, attn_normalised_entropy, attn_mean_distance, attn_saturated_heads (fraction
  of (layer, head) pairs whose normalised entropy exceeds SATURATION_THRESHOLD), attn_heads.
  """
  rows = table_rows(weights, mask=mask, positions=positions)
  if not rows:
    raise ValueError('summary_row got no attention maps.')
  mean = lambda k: float(np.mean([r[k] for r in rows]))
  return {**columns, 'attn_entropy': mean('entropy'), 'attn_normalised_entropy': mean('normalised_entropy'),
          'attn_mean_distance': mean('mean_distance'), 'attn_saturated_heads': mean('saturated'),
          'attn_heads': len(rows)}
