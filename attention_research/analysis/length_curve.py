"""Quality against source length, one curve per variant (Bahdanau et al. 2015, Fig. 2), from result tables.

Evaluation of a task with length buckets (task info 'length_buckets') reports each metric per bucket of source
length as '<metric>_len_<low>_<high>' (see training.objectives.seq2seq.bucket_key); a result table keeps them
per seed. Here they become a per-bucket table (mean ± std over seeds) and the length curve:

  rows = length_curve.rows_of('runs/rnn/results.json', 'runs/transformer/results.json')
  length_curve.figure(rows, metric='bleu', path='length_curve.png', train_length=58)
  print(length_curve.markdown(rows, metric='bleu', train_length=58))

  python -m attention_research.analysis.length_curve runs/rnn/results.json runs/transformer/results.json \
      --out=docs/translation_length_curve.png --train_length=58 --labels='RNN, bahdanau;Transformer'
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Sequence

import numpy as np

from attention_research.analysis import _plot
from attention_research.training.results import mean_std

SEP = '_len_'


def _parse(key: str) -> tuple[str, int, int] | None:
  metric, sep, rest = key.partition(SEP)
  parts = rest.split('_')
  if not sep or len(parts) != 2 or not all(p.isdigit() for p in parts):
    return None
  return metric, int(parts[0]), int(parts[1])


def rows_of(*tables) -> list[dict]:
  """The rows ({'variant', 'metrics': {name: [per seed]}}) of result tables: results.json paths, their loaded
  dicts, or results.Table objects. Rows with an error are left out; repeated variant names get the table's title."""
  out, names = [], set()
  for t in tables:
    if isinstance(t, (str, os.PathLike)):
      with open(t) as f:
        t = json.load(f)
    elif not isinstance(t, dict):
      t = t.to_json()
    for r in t['rows']:
      if r.get('error') or not r.get('metrics'):
        continue
      name = r['variant'] + (f" ({r['sweep']})" if r.get('sweep') else '')
      name = f"{name} ({t.get('title', '')})" if name in names else name
      names.add(name)
      out.append({'variant': name, 'metrics': r['metrics']})
  return out


def relabel(rows: Sequence[dict], labels: Sequence[str] | None) -> list[dict]:
  """The rows with their variants renamed to labels, one per row in order (None: unchanged)."""
  if labels is None:
    return list(rows)
  if len(labels) != len(rows):
    raise ValueError(f'{len(labels)} labels {list(labels)} for {len(rows)} rows {[r["variant"] for r in rows]}.')
  return [{**r, 'variant': label} for r, label in zip(rows, labels)]


def buckets(rows: Sequence[dict], metric: str) -> list[tuple[int, int]]:
  """The (low, high) source-length buckets any row has `metric` for, by length."""
  found = {(lo, hi) for r in rows for k in r['metrics'] if (p := _parse(k)) and p[0] == metric for lo, hi in [p[1:]]}
  return sorted(found)


def curve(row: dict, metric: str, bucket_list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(mean, sample std over seeds as in the result tables, examples) per bucket; NaN where the row has no value."""
  mean, std, count = [], [], []
  for lo, hi in bucket_list:
    values = row['metrics'].get(f'{metric}{SEP}{lo:03d}_{hi:03d}')
    n = row['metrics'].get(f'examples{SEP}{lo:03d}_{hi:03d}')
    m, sd = mean_std(values)
    mean.append(np.nan if m is None else m)
    std.append(np.nan if sd is None else sd)
    count.append(float(np.mean(n)) if n else np.nan)
  return np.asarray(mean), np.asarray(std), np.asarray(count)


def _check(rows, metric):
  bucket_list = buckets(rows, metric)
  if not bucket_list:
    raise ValueError(f'no row has per-length values of {metric!r} (keys like {metric}{SEP}001_010); the rows '
                     f'have {sorted({k for r in rows for k in r["metrics"]})[:8]}...')
  return bucket_list


def markdown(rows: Sequence[dict], metric: str = 'bleu', *, train_length: int | None = None,
             digits: int = 2) -> str:
  """A per-bucket table: one row per source-length bucket, one column per variant (mean ± std over seeds)."""
  bucket_list = _check(rows, metric)
  scale = 100.0 if metric == 'exact_match' else 1.0
  unit = ' (%)' if metric == 'exact_match' else ''
  curves = [curve(r, metric, bucket_list) for r in rows]
  lines = [f'| source tokens | examples | ' + ' | '.join(f"{r['variant']} {metric}{unit}" for r in rows) + ' |',
           '|---|---|' + '---|' * len(rows)]
  for b, (lo, hi) in enumerate(bucket_list):
    label = f'{lo}-{hi}' + (' *' if train_length is not None and lo > train_length else '')
    counts = [c[2][b] for c in curves if np.isfinite(c[2][b])]
    cells = [('–' if not np.isfinite(m[b]) else f'{scale * m[b]:.{digits}f} ± {scale * s[b]:.{digits}f}')
             for m, s, _ in curves]
    lines.append(f"| {label} | {int(counts[0]) if counts else '–'} | " + ' | '.join(cells) + ' |')
  if train_length is not None:
    lines.append(f'\n\\* longer than every training source ({train_length} tokens).')
  return '\n'.join(lines) + '\n'


def figure(rows: Sequence[dict], metric: str = 'bleu', *, train_length: int | None = None, title: str | None = None,
           path=None, figsize=(6.4, 4.0), dpi: int = 120):
  """BLEU (or `metric`) against source length, one line per variant with its seed spread (± std) shaded; a dotted
  line marks the longest training source. Returns the matplotlib Figure (saved as PNG at `path`)."""
  bucket_list = _check(rows, metric)
  x = np.asarray([(lo + hi) / 2 for lo, hi in bucket_list])
  fig = _plot.new_figure(figsize, dpi)
  ax = fig.add_subplot()
  scale = 100.0 if metric == 'exact_match' else 1.0
  for r in rows:
    mean, std, _ = curve(r, metric, bucket_list)
    ok = np.isfinite(mean)
    line, = ax.plot(x[ok], scale * mean[ok], marker='o', markersize=3, label=r['variant'])
    ax.fill_between(x[ok], scale * (mean - std)[ok], scale * (mean + std)[ok], color=line.get_color(), alpha=0.2)
  if train_length is not None:
    ax.axvline(train_length + 0.5, color='grey', linestyle=':', label='longest training source')
  ax.set_xlabel('source length (tokens, bucket centre)')
  ax.set_ylabel(f"{metric}{' (%)' if metric == 'exact_match' else ''}")
  ax.set_title(title or f'{metric} against source length (mean ± std over seeds)')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  _plot.save(fig, path)
  return fig


def write(rows: Sequence[dict], directory: str, *, train_length: int | None = None, title: str | None = None,
          metrics: Sequence[str] = ('bleu', 'exact_match')) -> dict[str, str]:
  """length_curve.md (a per-bucket table per metric) and length_curve.png (the first metric's curve) in
  directory; returns their paths. Metrics without per-length values are skipped."""
  present = [m for m in metrics if buckets(rows, m)]
  if not present:
    return {}
  os.makedirs(directory, exist_ok=True)
  paths = {'md': os.path.join(directory, 'length_curve.md'), 'png': os.path.join(directory, 'length_curve.png')}
  with open(paths['md'], 'w') as f:
    for m in present:
      f.write(f'### {m} per source length\n\n' + markdown(rows, m, train_length=train_length) + '\n')
  figure(rows, present[0], train_length=train_length, title=title, path=paths['png'])
  return paths


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('tables', nargs='+', help='results.json files of compare runs')
  parser.add_argument('--out', required=True, help='the PNG to write; the tables go to the same name with .md')
  parser.add_argument('--metric', default='bleu')
  parser.add_argument('--train_length', type=int, default=None)
  parser.add_argument('--title', default=None)
  parser.add_argument('--labels', default=None,
                      help="';'-separated names of the rows, in order (runs of one variant name told apart)")
  args = parser.parse_args(argv)
  rows = relabel(rows_of(*args.tables), args.labels.split(';') if args.labels else None)
  figure(rows, args.metric, train_length=args.train_length, title=args.title, path=args.out)
  text = ''.join(f'### {m} per source length\n\n' + markdown(rows, m, train_length=args.train_length) + '\n'
                 for m in dict.fromkeys([args.metric, 'exact_match']) if buckets(rows, m))
  with open(os.path.splitext(args.out)[0] + '.md', 'w') as f:
    f.write(text)
  print(text)


if __name__ == '__main__':
  main()
