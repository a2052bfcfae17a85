r"""Spatial transformer networks on distorted digits (Jaderberg et al. 2015), with a CNN or a ViT backbone.

  python -m experiments.compare --config=configs/stn.py:stn=true --variants=dot_product --seeds=3 --workdir=runs/stn_cnn
  python -m experiments.compare --config=configs/stn.py:stn=false --variants=dot_product --seeds=3 \
      --workdir=runs/cnn
  python -m experiments.compare --config=configs/stn.py:backbone=vit,stn=true --variants=dot_product,linear \
      --seeds=3 --workdir=runs/stn_vit
  python -m experiments.compare --config=configs/stn.py:backbone=vit,stn=false --variants=dot_product,linear \
      --seeds=3 --workdir=runs/vit
  python -m experiments.train --config=configs/stn.py:backbone=vit,attention=linear --workdir=runs/stn_vit_linear

Options (after the colon, comma-separated):
  stn=true|false         a spatial transformer in front of the backbone (default true), or the backbone alone
                         on the canvas resampled to the same 20x20 grid through the identity.
  backbone=cnn|vit       cnn: two conv + max-pool stages and a hidden layer; vit: a 2-layer ViT on 4x4 patches
                         of the 20x20 input.
  attention=<variant>    the ViT's attention, any name in attention.VARIANTS (default dot_product); the CNN
                         has none, so the variant only names its row.
  smoke                  tiny data and model, a few steps: a run of seconds, for tests.

The task is `distorted_digits` (40x40 canvases, digits rotated by up to 45 degrees, scaled 0.8-1.2, moved, and 4
fragments of clutter); the metric is test accuracy. Measured (seeds 0-2 vmapped, 4000 steps; wall time of the whole
comparison on 2 CPU cores beside other jobs; docs/vision.md has the table):
  cnn             0.743 +- 0.012    9 min 42 s for 3 seeds
  stn=true (cnn)  0.931 +- 0.014   14 min 43 s for 3 seeds
  vit             dot_product 0.644 +- 0.023, linear 0.646 +- 0.006   26 min 39 s for both
  stn=true (vit)  dot_product 0.724 +- 0.022, linear 0.720 +- 0.027   32 min 54 s for both
Every run bounds the transform (model.localisation_bounded): unbounded, one ViT seed in three lost it off the canvas,
and so did the CNN's seed 0 when its seeds were vmapped. A run of minutes: --config.train.steps=1500 (cnn 0.504,
stn=true 0.633 unbounded, each seed trained alone; docs/vision.md).
"""

from attention_research.training.config_files import make_config, parse_arg

BACKBONES = ('cnn', 'vit')


def get_config(arg=None):
  opts = parse_arg(arg, {'stn': True, 'backbone': 'cnn', 'attention': 'dot_product', 'smoke': False})
  if opts['backbone'] not in BACKBONES:
    raise ValueError(f"unknown backbone {opts['backbone']!r} for configs/stn.py; known: {list(BACKBONES)}.")
  model = dict(name='stn.STNClassifier', image_size=None, channels=None, num_classes=None,
               backbone=opts['backbone'], stn=opts['stn'], attention=opts['attention'], backbone_size=20,
               # At 0.1 (a tenth of the step for the transform) theta stayed at the identity for 1500 steps. Unbounded,
               # the first steps can throw theta off the canvas for good: one ViT seed in 3 (at scale 1 and 0.3), and
               # the CNN's seed 0 when its seeds were vmapped (the same seed trained alone did not).
               localisation_scale=1.0, localisation_pool=2, localisation_bounded=True,
               cnn_features=(16, 32), cnn_hidden=64, patch_size=4, d_model=64, num_heads=4, num_layers=2, mlp_dim=128,
               dropout_rate=0.0, positional='learned', pooling='mean')
  train = dict(steps=4000, batch_size=64, log_every=250, eval_every=0, checkpoint_every=0)
  optim = dict(learning_rate=3e-3, warmup_steps=100, weight_decay=0.01, schedule='cosine')
  data = dict(eval_batch_size=200)
  compare = dict(variants='dot_product,linear' if opts['backbone'] == 'vit' else 'dot_product', seeds=3,
                 seed_mode='vmap')
  if opts['smoke']:
    data.update(size='small', eval_batch_size=32, eval_examples=32)
    train.update(steps=4, batch_size=8, log_every=2, checkpoint_every=2)
    optim.update(warmup_steps=1)
    compare.update(seeds=2)
    model.update(cnn_features=(4, 8), cnn_hidden=16, d_model=16, num_heads=2, num_layers=1, mlp_dim=32,
                 localisation_features=4, localisation_hidden=8)
  name = f"{'stn+' if opts['stn'] else ''}{opts['backbone']}"
  return make_config(task='distorted_digits', name=name, kind='classification', model=model, data=data, train=train,
                     optim=optim, compare=compare)
