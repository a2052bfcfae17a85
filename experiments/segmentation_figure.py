r"""Predicted masks beside the attention of the mask tokens, for a trained Segmenter.

  python -m experiments.segmentation_figure --config=configs/segmentation.py --workdir=runs/seg \
      --out=docs/segmentation_masks.png

Trains the config as experiments.train does (or resumes a finished run in the same workdir), then draws the first
--examples test scenes: image, true and predicted classes, and the attention over the patches of the background's
and each present digit's mask token (last decoder layer, mean over heads). Prints the test metrics and
attention_on_class: the share of a digit token's attention that lands on patches holding that digit.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from attention_research.analysis import segmentation
from attention_research.training import loop

_CONFIG = config_flags.DEFINE_config_file('config', None, 'configs/segmentation.py[:options]', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir (a finished run is resumed, not retrained).')
_OUT = flags.DEFINE_string('out', 'segmentation_masks.png', 'Path of the PNG.')
_EXAMPLES = flags.DEFINE_integer('examples', 4, 'Test scenes drawn (one row each).', lower_bound=1)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  result = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value, quiet=True)
  objective, task = result.objective, result.objective.task
  batch = next(iter(loop.eval_batches(task, 'test', _EXAMPLES.value, _EXAMPLES.value)))
  view = objective.mask_view(result.model(0), batch)
  share = segmentation.attention_on_class(view['token_attention'], view['mask'])
  segmentation.masks_figure(view['image'], view['mask'], view['pred'], view['token_attention'],
                            task.info.get('class_names'), path=_OUT.value,
                            title=f"{_CONFIG.value.model.attention}: test mean IoU "
                                  f"{result.final_metrics[0]['mean_iou']:.3f}")
  print(f"test metrics: {result.final_metrics[0]}\nattention_on_class (these {_EXAMPLES.value} scenes): {share:.3f}"
        f'\nwritten to {_OUT.value}')


if __name__ == '__main__':
  app.run(main)
