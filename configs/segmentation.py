r"""Semantic segmentation of digit scenes (scene_segmentation) with a Segmenter over any attention variant.

  python -m experiments.train --config=configs/segmentation.py --workdir=runs/seg
  python -m experiments.train --config=configs/segmentation.py:attention=linear --workdir=runs/seg_linear
  python -m experiments.compare --config=configs/segmentation.py \
      --variants=dot_product,linear --seeds=3 --workdir=runs/seg_compare
  python -m experiments.segmentation_figure --config=configs/segmentation.py --workdir=runs/seg \
      --out=docs/segmentation_masks.png

Options (after the colon, comma-separated):
  attention=<variant>   the encoder's self-attention: any name in attention.VARIANTS (default dot_product) or a
                        per-layer hybrid joined by '+'. The class tokens' decoder uses the same variant where it
                        has a cross-attention form, dot_product otherwise.
  smoke                 tiny data and model, a few steps: a run of seconds, for tests.
Metrics: mean IoU over the 11 classes (background and the digits), per-class IoU (iou_background, iou_0, ...),
pixel accuracy. Predicting background everywhere scores a mean IoU of 0.081 on the test split (background IoU
0.893, every digit 0).

Measured (the compare command above, 5000 steps of batch 32, 3 vmapped seeds, test split, mean ± std over seeds):
  dot_product  mean IoU 0.430 ± 0.023, pixel accuracy 0.924
  linear       mean IoU 0.439 ± 0.013, pixel accuracy 0.925
Wall time of the comparison (data, compilation, both variants, evaluation): 44 min 37 s on 2 CPU cores beside two
other jobs. A run of minutes: --config.train.steps=1200 (mean IoU 0.307 and 0.283, docs/vision.md).
"""

from attention_research.training.config_files import make_config, parse_arg


def get_config(arg=None):
  opts = parse_arg(arg, {'attention': 'dot_product', 'smoke': False})
  # 6x6 patches (an 8x8 grid) keep a run to minutes on 2 CPU cores; digits of 10-20 pixels span 2-4 patches.
  model = dict(name='segmenter.Segmenter', image_size=None, channels=None, num_classes=None, patch_size=6,
               d_model=64, num_heads=4, num_layers=2, decoder_layers=1, mlp_dim=128, dropout_rate=0.0,
               positional='learned', attention=opts['attention'])
  train = dict(steps=5000, batch_size=32, log_every=200, eval_every=0, checkpoint_every=0)
  optim = dict(learning_rate=2e-3, warmup_steps=100, weight_decay=0.01, schedule='cosine')
  data = dict(eval_batch_size=64)
  compare = dict(variants='dot_product,linear', seeds=3, seed_mode='vmap')
  # Background is about 90% of the pixels; halving its weight makes the digits' pixels count sooner.
  objective = dict(background_weight=0.5)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=16, eval_examples=16)
    train.update(steps=4, batch_size=8, log_every=2, eval_every=0, checkpoint_every=2)
    optim.update(warmup_steps=1)
    compare.update(seeds=2)
    model.update(patch_size=8, d_model=16, num_heads=2, num_layers=1, mlp_dim=32)
  return make_config(task='scene_segmentation', name='segmentation', kind='segmentation', model=model, data=data,
                     train=train, optim=optim, objective=objective, compare=compare)
