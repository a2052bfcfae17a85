r"""Train and evaluate one config; a rerun with the same --workdir resumes from its last checkpoint.

  python -m experiments.train --config=configs/asr.py:attention=linear --workdir=runs/asr_linear
  python -m experiments.train --config=configs/translation.py:smoke --workdir=/tmp/t --config.train.steps=50
  python -m experiments.train --config=configs/translation.py --workdir=runs/translation --plot   # + <workdir>/plots

A rerun refuses a config that differs from the workdir's config.json (listing the fields); training further
(--config.train.steps), logging, evaluation and checkpoint frequencies may differ. --config.train.restart=True
starts the workdir over; --config.train.allow_changes=optim.learning_rate resumes with a changed optimiser field
(e.g. after a non-finite loss). A damaged checkpoint is named, set aside, and the newest intact one resumed.

Multi-host: add --coordinator_address=host:port --num_processes=N --process_id=i on every host.
"""

import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from attention_research.training import checkpoint, loop, plots, sharding
from attention_research.training.config import ExperimentConfig

_CONFIG = config_flags.DEFINE_config_file('config', None, 'configs/<task>.py[:options]', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints, metrics.jsonl, TensorBoard events, result.json.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'Multi-host: address of process 0 (host:port).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Multi-host: number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Multi-host: index of this process.')
_PLOT = flags.DEFINE_bool('plot', False, 'After training, draw the attention of the first test example into '
                          '<workdir>/plots (heatmaps per layer and head, alignments, overlays).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO; progress goes to stdout
  sharding.maybe_initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    result = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (loop.WorkdirError, loop.NonFiniteLossError, checkpoint.CheckpointError) as e:
    sys.exit(f'error: {e}')  # the message says what to do; a traceback would only bury it
  print(f'final metrics: {result.final_metrics[0]}')
  if _PLOT.value and jax.process_index() == 0:  # one writer of the shared workdir
    split = ExperimentConfig.from_config_dict(_CONFIG.value).data.test_split
    out = os.path.join(_WORKDIR.value, 'plots')
    paths = plots.plot_run(result, split, out)
    print(f'plots of the first {split} example: {len(paths)} files in {os.path.abspath(out)}/')


if __name__ == '__main__':
  app.run(main)
