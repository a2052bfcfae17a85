"""Attention sinks: how much of each head's attention goes to the first position or to one key.

A sink head parks its attention on a key that carries no content, usually the first token (Xiao et al. 2024,
"Efficient Streaming Language Models with Attention Sinks"); learned sink logits and output gates (the `sinks`
and `output_gate` options of layers.MultiHeadAttention) give the head another place to put that mass. Per head,
averaged over the batch and the queries that have any weight (padding rows left out):

  first_mass     the weight on key 0.
  top_key_mass   the weight on the single key that gets the most attention over the queries of the example:
                 a sink at a position other than the first shows here.
  max_weight     each query's largest weight (how peaked the rows are, whichever key they pick).
  total_mass     the row total, 1 without sink logits; below 1 the rest went to the learned sink.
"""

from __future__ import annotations

import numpy as np

from attention_research.analysis import _checks, maps as maps_lib

KEYS = ('first_mass', 'top_key_mass', 'max_weight', 'total_mass')


def sink_statistics(weights) -> dict[str, np.ndarray]:
  """weights [B, N, T, S] (or [N, T, S]) -> {key: [N]} for the KEYS above, plus 'queries' (rows averaged)."""
  w = _checks.as_array(weights, 'weights', ranks=(3, 4), layout='[B, N, T, S] or [N, T, S]')
  w = np.clip(w[None] if w.ndim == 3 else w, 0.0, None)
  total = w.sum(-1)  # [B, N, T]
  valid = total > 0
  count = valid.sum((0, 2)).astype(np.float64)
  # The key with most attention over an example's valid queries, per head: [B, N].
  top = (w * valid[..., None]).sum(2).argmax(-1)
  per_row = {
      'first_mass': w[..., 0],
      'top_key_mass': np.take_along_axis(w, top[:, :, None, None], -1)[..., 0],
      'max_weight': w.max(-1),
      'total_mass': total,
  }
  out = {k: np.divide(np.where(valid, v, 0.0).sum((0, 2)), count, out=np.zeros_like(count), where=count > 0)
         for k, v in per_row.items()}
  out['queries'] = count
  return out


def sink_rows(weights, **columns) -> list[dict]:
  """One row per (map, layer, head) of any tree of weights (see `maps.flatten`), with the KEYS above."""
  rows = []
  for group, items in maps_lib.group_layers(maps_lib.flatten(weights)).items():
    for layer, _, w in items:
      stats = sink_statistics(w)
      for h in range(len(stats['first_mass'])):
        rows.append({**columns, 'map': group, 'layer': layer, 'head': h,
                     **{k: float(stats[k][h]) for k in KEYS}})
  return rows
