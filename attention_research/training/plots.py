"""--plot and the attention columns of compare's tables: one fixed evaluation example through a trained model.

    batch = plots.example_batch(task, split)              # the split's first example: the same for every run
    view = plots.attention_view(objective, model, batch)  # objective.attention_for_plot, see its docstring
    paths = plots.write_figures(view, out_dir)            # figures_for_run + viewer.html + attention_summary.json
    stats = plots.attention_summary(view)                 # {'attn_normalised_entropy': .., 'attn_mean_distance': ..}
    paths = plots.plot_run(result, split, out_dir)        # all of it for member 0 of a loop.RunResult

Statistics (the columns of result tables) average over layers, heads and the example's real queries:
  attn_normalised_entropy  entropy / log(#keys the query may see): real tokens, and t + 1 under a causal mask;
                           0 = each query looks at one key, 1 = uniform over everything it may see.
  attn_mean_distance       sum_s p_ts |pos_t - pos_s| over self-attention maps only (queries and keys in one
                           sequence; pixels between patch centres for a ViT without a class token); absent
                           for models whose only attention is cross-attention (RNN seq2seq, captioner).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from attention_research import analysis
from attention_research.analysis import maps as maps_lib, statistics, viewer
from attention_research.training import loop

STAT_KEYS = ('cross', 'positions')  # keys of a view that are for statistics, not for figures_for_run
STAT_COLUMNS = ('attn_normalised_entropy', 'attn_mean_distance')
VIEWER_KEYS = ('weights', 'kind', 'example', 'tokens', 'source_tokens', 'target_tokens', 'image', 'grid',
               'spectrogram', 'token_ids', 'vocab')


def example_batch(task, split: str) -> dict[str, np.ndarray]:
  """The first example of a split as a batch of one row, in the split's order (no shuffling)."""
  batch = next(iter(loop.eval_batches(task, split, 1, 1)), None)
  if batch is None:
    raise ValueError(f'split {split!r} of task {getattr(task, "name", "")!r} has no examples to plot.')
  return {k: np.asarray(v) for k, v in batch.items()}


def attention_view(objective, model, batch) -> dict[str, Any]:
  view = objective.attention_for_plot(model, batch)
  for key in ('kind', 'weights'):
    if key not in view:
      raise ValueError(f'{type(objective).__name__}.attention_for_plot returned no {key!r}.')
  return view


def _maps(view) -> dict[str, tuple[str, np.ndarray]]:
  """{map name: (group, [1, N, T, S] or [1, T, S] weights)}."""
  return {name: (maps_lib.split_layer(name)[0], w) for name, w in maps_lib.flatten(view['weights']).items()}


def attention_summary(view) -> dict[str, float]:
  """Mean normalised entropy over every map, mean attention distance over the self-attention maps."""
  maps = _maps(view)
  causal, cross = set(view.get('causal', ())), set(view.get('cross', ()))
  positions = view.get('positions') or {}
  # Maps cropped to nothing (an empty reference) have no queries to average.
  maps = {name: gw for name, gw in maps.items() if np.size(gw[1])}
  if not maps:
    raise ValueError('the example has no attention weights to summarise (empty sequences).')
  masks = {name: statistics.causal_mask(*np.shape(w)[-2:])
           for name, (group, w) in maps.items() if group in causal}
  out = {'attn_normalised_entropy': statistics.summary_row(
      {name: w for name, (_, w) in maps.items()}, mask=masks)['attn_normalised_entropy']}
  own = {name: w for name, (group, w) in maps.items() if group not in cross}
  if own:
    pos = {name: positions[group] for name, (group, _) in maps.items() if name in own and group in positions}
    out['attn_mean_distance'] = statistics.summary_row(own, positions=pos)['attn_mean_distance']
  return out


def write_figures(view, out_dir, *, prefix: str = '', summary: dict[str, float] | None = None) -> dict[str, Path]:
  """figures_for_run on the view, the interactive viewer.html, and attention_summary.json (the run's averages,
  as in compare's table)."""
  kwargs = {k: v for k, v in view.items() if k not in STAT_KEYS}
  paths = analysis.figures_for_run(out_dir, **kwargs, prefix=prefix)
  page_kwargs = {k: v for k, v in kwargs.items() if k in VIEWER_KEYS}
  paths['viewer'] = viewer.write_viewer(Path(os.fspath(out_dir)) / f'{prefix}viewer.html', title=prefix.strip('_ '),
                                        **page_kwargs)
  summary = attention_summary(view) if summary is None else summary
  path = Path(os.fspath(out_dir)) / f'{prefix}attention_summary.json'
  with open(path, 'w') as f:
    json.dump(summary, f, indent=1)
  paths['attention_summary'] = path
  return paths


def plot_run(result: loop.RunResult, split: str, out_dir, *, member: int = 0, prefix: str = '') -> dict[str, Path]:
  """Figures of one member of a finished run on the first example of `split`, written to out_dir."""
  objective = result.objective
  if objective is None:
    raise ValueError('the RunResult holds no objective; plot_run needs one returned by train_and_evaluate.')
  view = attention_view(objective, result.model(member), example_batch(objective.task, split))
  return write_figures(view, out_dir, prefix=prefix)
