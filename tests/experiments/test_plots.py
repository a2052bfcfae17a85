"""--plot on the absl runners, end to end: real PNG files of the first test example's attention."""

import json
import os
import subprocess
import sys

import pytest
from matplotlib import image as mpimg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, timeout=300):
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''), JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', *args], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


def _check_png(path):
  img = mpimg.imread(path)
  assert img.ndim == 3 and img.shape[2] in (3, 4), (path, img.shape)
  assert 150 <= img.shape[0] <= 3000 and 150 <= img.shape[1] <= 3000, (path, img.shape)
  assert img[..., :3].std() > 0.01, path  # not a blank canvas


@pytest.mark.parametrize('config, figures', [
    ('configs/classification.py:task=listops,smoke', {'self_heads.png', 'bars.png'}),
    ('configs/translation.py:smoke', {'alignment.png', 'cross_heads.png', 'encoder_heads.png', 'self_heads.png'}),
])
def test_train_with_plot_writes_attention_figures(tmp_path, config, figures):
  proc = run('experiments.train', f'--config={config}', f'--workdir={tmp_path}', '--config.train.steps=2', '--plot')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'plots of the first test example' in proc.stdout
  plots = tmp_path / 'plots'
  written = {p.name for p in plots.iterdir()}
  assert figures <= written, written
  for name in written:
    if name.endswith('.png'):
      _check_png(plots / name)
  summary = json.load(open(plots / 'attention_summary.json'))
  assert 0.0 < summary['attn_normalised_entropy'] <= 1.0


def test_compare_with_plot_writes_figures_per_variant_and_statistics_columns(tmp_path):
  proc = run('experiments.compare', '--config=configs/classification.py:task=mqar,smoke', '--variants=dot_product',
             '--seeds=1', f'--workdir={tmp_path}', '--config.train.steps=2', '--plot')
  assert proc.returncode == 0, proc.stderr[-3000:]
  _check_png(tmp_path / 'plots' / 'dot_product' / 'self_heads.png')
  md = open(tmp_path / 'results.md').read()
  row = next(line for line in md.splitlines() if line.startswith('| dot_product |'))
  assert '| attn entropy | attn distance |' in md and row.count('|') == md.splitlines()[4].count('|')
