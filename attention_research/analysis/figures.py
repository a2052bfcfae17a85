"""`figures_for_run`: the one call the runners make for `--plot`.

    from attention_research import analysis
    paths = analysis.figures_for_run(
        out_dir, weights, kind='transformer',    # 'transformer' | 'vit' | 'rnn' | 'captioner' | 'asr'
        example=0, prefix='dot_product_',        # which batch row to draw; a file-name prefix (e.g. the variant)
        tokens=None, source_tokens=None, target_tokens=None,     # labels of that one example (lists of str)
        image=None, grid=None, token_cells=None, cells=3,        # captioner / vit
        spectrogram=None, ctc_logits=None, token_ids=None, vocab=None, blank_id=0,   # asr
        causal=(),                               # groups of causal maps (e.g. 'self'), for attention_stats.csv
        max_heads=8, max_layers=6, dpi=100)
    # -> {figure name: pathlib.Path} of the files written (PNG figures and attention_stats.csv)

Every array argument keeps the model's leading batch axis [B, ...]; `example` selects the row to draw.
`weights` is what `layers.capture_attention` reads from the model (or an attention function's return_weights=True):
  transformer/vit  one [B, N, T, S] array, a list of them (one per layer), or a tree of them such as a
                   list of per-layer dicts {'self': ..., 'cross': ...}, possibly under 'encoder'/'decoder'
                   (None leaves are skipped). Maps that differ only by layer index form one group.
  rnn              the alignment [B, T, S].
  captioner        alphas [B, T, R] over a grid of R regions; image [B, H, W] or [B, H, W, C]; grid (rows,
                   cols) of the regions (default square); token_cells [B, T] (digit_scenes) outlines each
                   named digit's true cell in a cells x cells partition.
  asr              cross-attention [B, N, T, F] (or a tree; the last layer's 'cross' map is used for the
                   alignment figure); spectrogram [B, frames, mels]; ctc_logits [B, F, V]; token_ids [B, T].
Labels: source_tokens label encoder positions and the keys of cross-attention, target_tokens label decoder
positions (queries of cross-attention), tokens label a single sequence (encoder-only, decoder-only LM,
captions). A map's self-attention uses source labels under an 'enc...' key, target labels under 'dec...' or
beside a 'cross' map, otherwise tokens. Labels shorter than a weights axis crop that axis (the rest is
padding); longer labels raise ValueError.

Figures written (each name prefixed by `prefix`):
  <group>_heads.png      layers x heads grid of heatmaps per group of maps (e.g. decoder_cross_heads.png)
  <group>_rollout.png    attention rollout for self-attention groups with 2 or more layers
  alignment.png          target x source, mean over heads of the last cross-attention layer (rnn: the alignment)
  bars.png               bar chart of one query's weights (last layer, mean over heads)
  captions.png           captioner: per-word attention overlaid on the image (Show, Attend and Tell)
  regions.png            captioner: words x regions heatmap
  vit_rollout.png        vit with an image: the class token's rollout over the patches, on the image
  asr_alignment.png      asr: spectrogram, attention alignment and CTC alignment on one time axis
  attention_stats.csv    per (map, layer, head) statistics (`statistics.table_rows`), for transformer/vit/asr;
                         in the groups named in `causal`, a query's normalised entropy counts only the keys
                         it may see
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np

from attention_research.analysis import (_checks, alignments, asr as asr_plots, bars, captioning, heatmaps,
                                         maps as maps_lib, statistics)

KINDS = ('transformer', 'vit', 'rnn', 'captioner', 'asr')


def _pick(x, example: int, name: str, min_rank: int):
  if x is None:
    return None
  a = np.asarray(x)
  if a.ndim < min_rank:
    raise ValueError(f'{name} of shape {a.shape} must keep its batch axis (rank >= {min_rank}).')
  if not -a.shape[0] <= example < a.shape[0]:
    raise ValueError(f'example={example} is out of range for {name} of shape {a.shape} (batch {a.shape[0]}).')
  return a[example]


def _example_labels(labels, example: int):
  """Labels of one example; a batch of label lists (or a 2-D array) is indexed by example."""
  if labels is None:
    return None
  if hasattr(labels, 'shape') and np.ndim(labels) == 2:
    return [str(v) for v in np.asarray(labels)[example]]
  labels = list(labels)
  if labels and not isinstance(labels[0], str) and isinstance(labels[0], (list, tuple, np.ndarray)):
    return [str(v) for v in labels[example]]
  return [str(v) for v in labels]


def _crop(w, y_labels, x_labels, name):
  """Crops trailing padding so the weights match the labels; more labels than positions is an error."""
  T, S = w.shape[-2:]
  for labels, n, axis in ((y_labels, T, 'query (T)'), (x_labels, S, 'key (S)')):
    if labels is not None and len(labels) > n:
      raise ValueError(f'{len(labels)} labels for the {n} {axis} positions of {name} (shape {w.shape}).')
  t = len(y_labels) if y_labels is not None else T
  s = len(x_labels) if x_labels is not None else S
  return w[..., :t, :s]


def _query(query, T: int, default: int) -> int:
  q = default if query is None else int(query)
  if not -T <= q < T:
    raise ValueError(f'query={query} is out of range for {T} query positions.')
  return q % T


def _title(prefix: str, *parts) -> str | None:
  return ' · '.join(str(p) for p in (prefix.strip('_ -'),) + parts if p) or None


def _slug(name: str) -> str:
  return re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_') or 'attention'


def _group_labels(group, has_cross, T, S, tokens, source, target):
  """(query labels, key labels) of a group of maps, chosen by its name (see the module docstring)."""
  g = group.lower()
  if 'cross' in g:
    return target or tokens, source
  if 'enc' in g:
    labels = source or tokens
  elif 'dec' in g or has_cross:
    labels = target or tokens
  else:
    labels = tokens or source or target
  # Keys of a map whose queries and keys differ in length are another sequence: leave them unlabelled.
  return labels, (labels if T == S else None)


def _write_csv(rows, path: Path) -> Path:
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  return path


def _layer_maps(weights, example: int) -> dict[str, np.ndarray]:
  """{name: [N, T, S]} of one example; [B, T, S] maps count as single-head."""
  flat = maps_lib.flatten(weights)
  if not flat:
    raise ValueError('figures_for_run got no attention weights (every leaf was None).')
  out = {}
  for name, w in flat.items():
    w = _pick(w, example, f'weights {name!r}', 3)
    if w.ndim not in (2, 3):
      raise ValueError(f'weights {name!r} must be [B, N, T, S] or [B, T, S]; got shape {np.shape(flat[name])}.')
    out[name] = w[None] if w.ndim == 2 else w
  return out


def _transformer_figures(out: Path, maps, paths, *, prefix, tokens, source, target, query, max_heads,
                         max_layers, dpi, causal=()):
  groups = maps_lib.group_layers(maps)
  has_cross = any('cross' in g.lower() for g in groups)
  rows, bar_source = [], None
  for group, items in groups.items():
    T, S = items[0][2].shape[-2:]
    y_labels, x_labels = _group_labels(group, has_cross, T, S, tokens, source, target)
    layers = {name: _crop(w, y_labels, x_labels, name) for _, name, w in items}
    arrays = list(layers.values())
    names = [f'layer {layer}' if layer >= 0 else group for layer, _, _ in items]
    slug, cross = _slug(group), 'cross' in group.lower()
    if len({w.shape[-2:] for w in arrays}) == 1:
      path = paths[f'{slug}_heads'] = out / f'{prefix}{slug}_heads.png'
      heatmaps.attention_grid(arrays, x_labels=x_labels, y_labels=y_labels, layer_names=names,
                              max_heads=max_heads, max_layers=max_layers, title=_title(prefix, group), dpi=dpi,
                              path=path)
      if not cross and T == S and len(arrays) >= 2:
        path = paths[f'{slug}_rollout'] = out / f'{prefix}{slug}_rollout.png'
        heatmaps.heatmap(statistics.attention_rollout(arrays), x_labels=x_labels, y_labels=y_labels,
                         title=_title(prefix, group, f'rollout over {len(arrays)} layers'), xlabel='input tokens',
                         ylabel='output tokens', dpi=dpi, path=path)
    if cross:
      path = paths['alignment'] = out / f'{prefix}alignment.png'
      alignments.alignment(arrays[-1], x_labels if x_labels else [str(s) for s in range(arrays[-1].shape[-1])],
                           y_labels if y_labels else [str(t) for t in range(arrays[-1].shape[-2])],
                           title=_title(prefix, group, names[-1]), dpi=dpi, path=path)
    if bar_source is None or cross:
      bar_source = (group, names[-1], arrays[-1], x_labels)
    masks = {n: statistics.causal_mask(*w.shape[-2:]) for n, w in layers.items()} if group in causal else None
    rows += statistics.table_rows(layers, mask=masks)
  group, name, w, x_labels = bar_source
  a = w.mean(0)
  q = _query(query, a.shape[0], a.shape[0] - 1)
  path = paths['bars'] = out / f'{prefix}bars.png'
  bars.bar_chart(a[q], x_labels, dpi=dpi, path=path, title=_title(
      prefix, group, name, f'query {q}, mean over heads (sum = {a[q].sum():.3f})'))
  if rows:
    paths['attention_stats'] = _write_csv(rows, out / f'{prefix}attention_stats.csv')


def figures_for_run(out_dir, weights, *, kind: str = 'transformer', example: int = 0, prefix: str = '',
                    tokens=None, source_tokens=None, target_tokens=None, image=None, grid=None,
                    token_cells=None, cells=3, spectrogram=None, ctc_logits=None, token_ids=None, vocab=None,
                    blank_id: int = 0, causal=(), query: int | None = None, max_heads: int | None = 8,
                    max_layers: int | None = 6, dpi: int = 100) -> dict[str, Path]:
  """Writes the figures for one evaluation example of a run; see the module docstring for every argument.

  query: the query row of the bar chart (default: the last query; the class token 0 for kind='vit').
  Returns {figure name: path}. Raises ValueError for an unknown kind, inputs the kind needs but did not get,
  or shapes that do not fit together.
  """
  if kind not in KINDS:
    raise ValueError(f'unknown kind {kind!r}; known kinds: {KINDS}.')
  out = Path(os.fspath(out_dir))
  out.mkdir(parents=True, exist_ok=True)
  tokens, source, target = (_example_labels(x, example) for x in (tokens, source_tokens, target_tokens))
  title = _title(prefix)
  paths: dict[str, Path] = {}
  if kind == 'captioner' and image is None:
    raise ValueError("kind='captioner' needs image [B, H, W] or [B, H, W, C].")
  if kind == 'asr' and (spectrogram is None or token_ids is None):
    raise ValueError("kind='asr' needs spectrogram [B, frames, mels] and token_ids [B, T].")
  maps = _layer_maps(weights, example)
  if kind in ('rnn', 'captioner') and len(maps) != 1:
    raise ValueError(f'kind={kind!r} expects one array of weights; got maps {sorted(maps)}.')

  if kind == 'rnn':
    target = target or tokens
    w = _crop(next(iter(maps.values()))[0], target, source, 'the alignment')
    T, S = w.shape
    source = source or [str(s) for s in range(S)]
    target = target or [str(t) for t in range(T)]
    path = paths['alignment'] = out / f'{prefix}alignment.png'
    alignments.alignment(w, source, target, title=title, dpi=dpi, path=path)
    q = _query(query, T, 0)
    path = paths['bars'] = out / f'{prefix}bars.png'
    bars.bar_chart(w[q], source, dpi=dpi, path=path, title=_title(
        prefix, f'target word {q} ({target[q]}): weights over the source (sum = {w[q].sum():.3f})'))
    return paths

  if kind == 'captioner':
    alphas = next(iter(maps.values()))[0]
    words = tokens or target
    if words is not None:
      alphas = _crop(alphas, words, None, 'alphas')
    words = words or [str(t) for t in range(alphas.shape[0])]
    g = _checks.grid_shape(grid, alphas.shape[1])
    true = None
    if token_cells is not None:
      true = np.asarray(_pick(token_cells, example, 'token_cells', 2))[:alphas.shape[0]]
      named = int((true >= 0).sum())
      if named:
        score = captioning.peak_in_cell_score(alphas, true, g, cells=cells)
        title = _title(prefix, f"attention peak in the named digit's cell for {score:.0%} of {named} digit words")
    path = paths['captions'] = out / f'{prefix}captions.png'
    captioning.overlay_figure(_pick(image, example, 'image', 3), alphas, words, grid=g,
                              cells=cells if true is not None else None, true_cells=true, title=title, dpi=dpi,
                              path=path)
    path = paths['regions'] = out / f'{prefix}regions.png'
    heatmaps.heatmap(alphas, y_labels=words, title=_title(prefix, f'attention over {g[0]}x{g[1]} regions'),
                     xlabel='region (row-major)', ylabel='word', dpi=dpi, path=path)
    return paths

  if kind == 'asr':
    ids = np.asarray(_pick(token_ids, example, 'token_ids', 2))
    labels = tokens or target or [str(vocab[int(i)]) if vocab is not None else str(int(i)) for i in ids]
    ids = ids[:len(labels)]
    cross = [n for n in maps if 'cross' in n.lower()] or list(maps)
    name = max(cross, key=lambda n: maps_lib.split_layer(n)[1] or 0)
    att = _crop(maps[name], labels, None, name)
    path = paths['asr_alignment'] = out / f'{prefix}asr_alignment.png'
    asr_plots.asr_figure(_pick(spectrogram, example, 'spectrogram', 3), att, ids,
                         None if ctc_logits is None else _pick(ctc_logits, example, 'ctc_logits', 3),
                         vocab=vocab, blank_id=blank_id, title=_title(prefix, name), dpi=dpi, path=path)
    _transformer_figures(out, maps, paths, prefix=prefix, tokens=None, source=None, target=labels, query=query,
                         max_heads=max_heads, max_layers=max_layers, dpi=dpi, causal=causal)
    return paths

  if kind == 'vit' and query is None:
    query = 0  # the class token
  _transformer_figures(out, maps, paths, prefix=prefix, tokens=tokens, source=source, target=target,
                       query=query, max_heads=max_heads, max_layers=max_layers, dpi=dpi, causal=causal)
  if kind == 'vit' and image is not None:
    first_group = next(iter(maps_lib.group_layers(maps).values()))
    roll = statistics.attention_rollout([w for _, _, w in first_group])
    T = roll.shape[-1]
    if grid is None:
      has_cls = int(round(np.sqrt(T - 1))) ** 2 == T - 1
    else:
      has_cls = int(np.prod(_checks.grid_shape(grid))) == T - 1
    patches = roll[0, 1:] if has_cls else roll[0]
    path = paths['vit_rollout'] = out / f'{prefix}vit_rollout.png'
    captioning.overlay_figure(_pick(image, example, 'image', 3), patches[None],
                              ['class token rollout' if has_cls else 'token 0 rollout'], grid=grid, title=title,
                              dpi=dpi, path=path)
  return paths
