r"""Compare attention variants on one config, or run the default suite when no --config is given.

  python -m experiments.compare            # default suite: text (mqar), vision (digits), speech (spoken_digits)
  python -m experiments.compare --config=configs/translation.py --variants=dot_product,additive,linear --seeds=3
  python -m experiments.compare --config=configs/classification.py:task=listops --seed_mode=vmap \
      --sweep=learning_rate=1e-3,3e-4 --workdir=runs/listops_lr
  python -m experiments.compare --config=configs/recall.py:grid --workdir=runs/recall_grid   # a grid run

A config with a grid (config.compare.grid, or --grid) runs one comparison per grid cell (training.grid) and
scores each cell by its best sweep value; it writes the grid's results.md, results.csv, grid.json and the
figure of recall against state size (recall_vs_state_size.png) in --workdir, each cell's tables in
<workdir>/cells/<cell>/.

Writes results.md, results.csv and results.json in --workdir and prints the tables; with --plot also the
attention of the first test example for each variant's first seed in <workdir>/plots/<variant>/ (the suite:
<workdir>/<task>/plots/<variant>/).
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from attention_research.training import compare, grid

_CONFIG = config_flags.DEFINE_config_file('config', None, 'configs/<task>.py[:options]; none: the default suite.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory (default runs/compare or runs/default_suite).')
_VARIANTS = flags.DEFINE_list('variants', None, 'Attention variants (default: the config\'s compare.variants); '
                              'a per-layer hybrid joins one name per layer with +, e.g. gated_delta+dot_product.')
_SEEDS = flags.DEFINE_integer('seeds', None, 'Seeds per variant: 0..N-1 (default: the config\'s compare.seeds).',
                              lower_bound=1)
_SEED_MODE = flags.DEFINE_enum('seed_mode', None, ['vmap', 'sequential'],
                               'vmap: all seeds of a variant in one jax.vmap-ed step; sequential: one by one.')
_SWEEP = flags.DEFINE_string('sweep', None, "One hyperparameter's values, one row each: 'learning_rate=1e-3,3e-4'.")
_GRID = flags.DEFINE_string('grid', None, "Axes of a grid run, ';' between axes: 'seq_len=64,128;d_model=32,64' "
                            "(default: the config's compare.grid; '' turns a config's grid off).")
_PLOT = flags.DEFINE_bool('plot', False, "Also draw each variant's attention on the first test example (first seed) "
                          'into <workdir>/plots/<variant>/.')

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO; progress goes to stdout
  if _CONFIG.value is None:
    if _VARIANTS.value or _SEEDS.value or _SEED_MODE.value or _SWEEP.value or _GRID.value:
      raise app.UsageError('--variants/--seeds/--seed_mode/--sweep/--grid need --config (the default suite fixes '
                           'its own).')
    workdir = _WORKDIR.value or 'runs/default_suite'
    tables = compare.run_suite(workdir, root=_ROOT, plot=_PLOT.value)
  elif (_GRID.value if _GRID.value is not None else _CONFIG.value.compare.grid):
    workdir = _WORKDIR.value or 'runs/grid'
    _run_grid(workdir)
    print(f'written to {os.path.abspath(workdir)}/')
    return
  else:
    workdir = _WORKDIR.value or 'runs/compare'
    tables = [compare.compare(_CONFIG.value, workdir, variants=_VARIANTS.value, seeds=_SEEDS.value,
                              seed_mode=_SEED_MODE.value, sweep=_SWEEP.value, plot=_PLOT.value)]
  for table in tables:
    print('\n' + table.markdown())
  print(f'written to {os.path.abspath(workdir)}/')


def _run_grid(workdir: str):
  from attention_research.analysis import recall  # pylint: disable=g-import-not-at-top
  records = grid.run_grid(_CONFIG.value, workdir, grid=_GRID.value, variants=_VARIANTS.value, seeds=_SEEDS.value,
                          seed_mode=_SEED_MODE.value, sweep=_SWEEP.value)
  figure = os.path.join(workdir, 'recall_vs_state_size.png')
  try:
    recall.recall_vs_state_size(records, title=f'{_CONFIG.value.name}: best learning rate per cell', path=figure)
  except ValueError as e:  # no cell has a state size (a task without one): the tables still stand
    print(f'no figure: {e}')
  with open(os.path.join(workdir, 'results.md')) as f:
    print('\n' + f.read())


if __name__ == '__main__':
  app.run(main)
