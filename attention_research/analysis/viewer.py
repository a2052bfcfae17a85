"""A self-contained HTML page to explore one example's attention: no network, no server, scripts inline.

    from attention_research.analysis import viewer
    path = viewer.write_viewer('runs/x/plots/viewer.html', weights, kind='transformer',
                               source_tokens=src, target_tokens=tgt)

`weights` and the labels take the same forms as `figures.figures_for_run` (the batch axis kept, `example`
picks the row). The page has a map (layer) selector and a head selector (or the mean over heads), and shows:
  * a heatmap of the chosen map (queries x keys; darker = more weight, scaled to the map's maximum);
  * for text, token-to-token lines: hover a query token for the keys it reads, or a key token for the queries
    that read it (both directions of an encoder-decoder's cross-attention);
  * for a ViT or a captioner with its image, the chosen query's weights over the image patches / regions;
  * for speech with its spectrogram, the chosen output token's cross-attention over the frames.
`--plot` on the runners writes it beside the PNG figures (`training.plots.write_figures`).
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np

from attention_research.analysis import _checks, figures, maps as maps_lib
from attention_research.analysis._viewer_page import PAGE

MAX_VALUES = 2_000_000  # weights written into one page; beyond this the page gets too slow to open


def _png_data_url(image: np.ndarray, cmap: str | None = None) -> str:
  from matplotlib import image as mpimg  # matplotlib only when an image is embedded
  a = np.asarray(image, np.float32)
  if a.ndim == 3 and a.shape[-1] == 1:
    a = a[..., 0]
  lo, hi = float(np.min(a)), float(np.max(a))
  a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
  buf = io.BytesIO()
  mpimg.imsave(buf, a, cmap=cmap or ('gray' if a.ndim == 2 else None), format='png', vmin=0.0, vmax=1.0)
  return 'data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode('ascii')


def _labels_of(group, has_cross, w, tokens, source, target):
  T, S = w.shape[-2:]
  y, x = figures._group_labels(group, has_cross, T, S, tokens, source, target)
  w = figures._crop(w, y, x, group)
  T, S = w.shape[-2:]
  return w, list(y or map(str, range(T))), list(x or map(str, range(S)))


def page_data(weights, *, kind: str = 'transformer', example: int = 0, title: str = '', tokens=None,
              source_tokens=None, target_tokens=None, image=None, grid=None, spectrogram=None, token_ids=None,
              vocab=None) -> dict:
  """The JSON the page embeds: {'title', 'kind', 'maps': [{name, group, layer, queries, keys, heads}], ...}.

  heads is [N][T][S] (rounded to 5 decimals) of the example, cropped to its labels; raises ValueError for an
  unknown kind, shapes that do not fit, or more than MAX_VALUES weights.
  """
  if kind not in figures.KINDS:
    raise ValueError(f'unknown kind {kind!r}; known kinds: {figures.KINDS}.')
  tokens, source, target = (figures._example_labels(x, example) for x in (tokens, source_tokens, target_tokens))
  if kind == 'asr':  # tokens label the output (decoder) side; encoder frames stay numbered
    target, tokens = target or tokens, None
    if target is None and token_ids is not None:
      ids = np.asarray(figures._pick(token_ids, example, 'token_ids', 2))
      target = [str(vocab[int(i)]) if vocab is not None else str(int(i)) for i in ids]
  if kind in ('rnn', 'captioner'):
    target = target or tokens
  layer_maps = figures._layer_maps(weights, example)
  groups = maps_lib.group_layers(layer_maps)
  has_cross = kind in ('rnn', 'captioner', 'asr') or any('cross' in g.lower() for g in groups)
  out_maps, total = [], 0
  for group, items in groups.items():
    for layer, name, w in items:
      if kind in ('rnn', 'captioner'):  # one map: target words over source words / image regions
        w = figures._crop(w, target, source, name)
        queries = list(target or map(str, range(w.shape[-2])))
        keys = list(source or map(str, range(w.shape[-1])))
      elif kind == 'asr' and 'cross' in group.lower():
        w = figures._crop(w, target, None, name)
        queries, keys = list(target or map(str, range(w.shape[-2]))), [str(f) for f in range(w.shape[-1])]
      else:
        w, queries, keys = _labels_of(group, has_cross, w, tokens, source, target)
      total += w.size
      out_maps.append(dict(name=name, group=group, layer=layer, cross=has_cross and (
          'cross' in group.lower() or kind in ('rnn', 'captioner')), queries=queries, keys=keys,
          heads=np.round(np.asarray(w, np.float64), 5).tolist()))
  if total > MAX_VALUES:
    raise ValueError(f'{total} attention weights are too many for one page (at most {MAX_VALUES}); pass fewer '
                     'layers or a shorter example.')
  data = dict(title=title, kind=kind, maps=out_maps, image=None, grid=None, spectrogram=None)
  if image is not None and kind in ('vit', 'captioner'):
    data['image'] = _png_data_url(figures._pick(image, example, 'image', 3))
    if grid is not None:
      data['grid'] = list(_checks.grid_shape(grid))
  if spectrogram is not None and kind == 'asr':
    spec = np.asarray(figures._pick(spectrogram, example, 'spectrogram', 3), np.float32)
    data['spectrogram'] = _png_data_url(spec.T[::-1], cmap='magma')  # mels upwards, time to the right
  return data


def render(data: dict) -> str:
  """The page for page_data's dict: JSON inside a non-executed script tag, '</' escaped so it cannot close it."""
  payload = json.dumps(data, separators=(',', ':')).replace('</', '<\\/')
  title = str(data.get('title') or 'attention').replace('&', '&amp;').replace('<', '&lt;')
  return PAGE.replace('__TITLE__', title).replace('__DATA__', payload)


def write_viewer(path, weights, **kwargs) -> Path:
  """Writes the page for one example (page_data's keyword arguments) to path; returns the path."""
  path = Path(os.fspath(path))
  path.parent.mkdir(parents=True, exist_ok=True)
  html = render(page_data(weights, **kwargs))
  tmp = path.with_name(path.name + '.tmp')
  tmp.write_text(html, encoding='utf-8')
  os.replace(tmp, path)  # a killed run leaves the old page or none, never half a page
  return path
