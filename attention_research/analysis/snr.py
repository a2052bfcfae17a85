"""WER against signal-to-noise ratio: a table and a curve from a comparison's results.json.

The ASR objective with objective.snr_db (configs/asr.py:snr) reports wer_snr<db> beside the clean `wer`;

  python -m attention_research.analysis.snr runs/asr_snr/results.json --out=runs/asr_snr/wer_vs_snr.png

prints the markdown table (mean ± std over seeds, per variant) and writes the figure. Several comparisons (the
same checkpoints scored on seen and on held-out voices, configs/asr.py:voices=seen|unseen) go into one table and
figure with a label each:

  python -m attention_research.analysis.snr runs/seen/results.json runs/unseen/results.json \
      --labels='seen voices;unseen voices' --out=wer_vs_snr.png
"""

from __future__ import annotations

import argparse
import json
import math
import re

import numpy as np

from attention_research.analysis import _plot
from attention_research.training.results import mean_std

_SNR = re.compile(r'^wer_snr(-?[0-9.]+)$')


def wer_vs_snr(results: dict) -> dict[str, list[tuple[float, float, float]]]:
  """{variant: [(snr dB, mean WER, std WER), ...]} from a results.json dict, clean (snr = inf) first, then
  decreasing SNR. Rows without SNR metrics are left out."""
  out = {}
  for row in results['rows']:
    metrics = row.get('metrics') or {}
    points = [(float(m.group(1)), values) for k, values in metrics.items() if (m := _SNR.match(k))]
    if not points or 'wer' not in metrics:
      continue
    points = [(math.inf, metrics['wer'])] + sorted(points, key=lambda p: -p[0])
    out[row['variant']] = [(snr, *mean_std(v)) for snr, v in points]  # sample std, as in the result tables
  if not out:
    raise ValueError('no row has wer_snr<db> metrics; run the comparison with objective.snr_db set.')
  return out


def _label(snr: float) -> str:
  return 'clean' if math.isinf(snr) else f'{snr:g} dB'


def markdown(curves: dict[str, list[tuple[float, float, float]]]) -> str:
  snrs = [s for s, _, _ in next(iter(curves.values()))]
  lines = ['| variant | ' + ' | '.join(_label(s) for s in snrs) + ' |', '|---' * (len(snrs) + 1) + '|']
  for variant, points in curves.items():
    lines.append(f'| {variant} | ' + ' | '.join(f'{m:.3f} ± {s:.3f}' for _, m, s in points) + ' |')
  return '\n'.join(lines) + '\n'


def plot(curves: dict[str, list[tuple[float, float, float]]], *, path=None, title: str = 'WER against SNR',
         figsize=(5.0, 3.5), dpi: int = 100):
  """WER (mean ± std over seeds) against SNR; clean speech is drawn right of the highest SNR."""
  fig = _plot.new_figure(figsize, dpi)
  ax = fig.add_subplot()
  finite = sorted({s for pts in curves.values() for s, _, _ in pts if not math.isinf(s)})
  clean_x = (finite[-1] + max(5.0, (finite[-1] - finite[0]) / 4)) if finite else 0.0
  for variant, points in curves.items():
    x = np.array([clean_x if math.isinf(s) else s for s, _, _ in points])
    order = np.argsort(x)
    mean, std = np.array([m for _, m, _ in points])[order], np.array([s for _, _, s in points])[order]
    ax.errorbar(x[order], mean, yerr=std, marker='o', capsize=3, label=variant)
  ax.set_xticks(finite + [clean_x], [f'{s:g}' for s in finite] + ['clean'])
  ax.set_xlabel('SNR (dB), white noise')
  ax.set_ylabel('WER')
  ax.set_ylim(bottom=0.0)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  _plot.save(fig, path)
  return fig


def merged(results: list[dict], labels: list[str] | None = None) -> dict[str, list[tuple[float, float, float]]]:
  """The curves of several results.json dicts in one dict; with labels (one per results), each variant's name
  is prefixed by its results' label ('unseen voices: dot_product'), or replaced by it when it has one variant."""
  if labels is not None and len(labels) != len(results):
    raise ValueError(f'{len(labels)} labels {labels} for {len(results)} results.')
  out = {}
  for i, r in enumerate(results):
    curves = wer_vs_snr(r)
    for variant, points in curves.items():
      name = variant if labels is None else labels[i] if len(curves) == 1 else f'{labels[i]}: {variant}'
      if name in out:
        raise ValueError(f'two curves are named {name!r}; give each results a label with --labels.')
      out[name] = points
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('results', nargs='+', help='comparison results.json files')
  parser.add_argument('--labels', default=None, help="';'-separated, one per results file")
  parser.add_argument('--out', default=None, help='PNG path of the curve')
  parser.add_argument('--title', default='WER against SNR')
  args = parser.parse_args(argv)
  loaded = []
  for path in args.results:
    with open(path) as f:
      loaded.append(json.load(f))
  curves = merged(loaded, args.labels.split(';') if args.labels else None)
  print(markdown(curves), end='')
  if args.out:
    plot(curves, path=args.out, title=args.title)
    print(f'written to {args.out}')


if __name__ == '__main__':
  main()
