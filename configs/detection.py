r"""Object detection on scene_detection (1 to 4 digits at free positions and sizes on 48x48): DETR or a grid baseline.

  python -m experiments.train --config=configs/detection.py --workdir=runs/detr
  python -m experiments.train --config=configs/detection.py:attention=linear --workdir=runs/detr_linear
  python -m experiments.train --config=configs/detection.py:model=grid --workdir=runs/grid
  python -m experiments.compare --config=configs/detection.py --variants=dot_product,linear --seeds=3

Options (after the colon, comma-separated):
  model=detr|grid       detr: conv backbone (6x6 features), Transformer encoder, 16 object queries, decoder with
                        cross-attention over the features, class (+ no-object) and box heads, Hungarian-matched
                        set loss with auxiliary decoding losses (Carion et al. 2020). grid: the baseline,
                        the same backbone and a per-cell conv head scoring two fixed square anchors per cell
                        (12 and 18 pixels); its boxes are the anchors, trained with the same loss.
  queries=selected|learned   selected (two-stage, Zhu et al. 2021; DINO): the encoder proposes a class and a box
                        per feature cell (trained with the same set loss) and the 16 best proposals start the
                        queries, their boxes refined by the decoder. learned: 16 learned queries, each with a
                        learned reference point, started from the features there.
  attention=<variant>   the encoder's self-attention and the decoder's cross-attention (any variant with a cross
                        form); the queries attend to each other with dot_product.
  smoke                 tiny data and model, a few steps: a run of seconds, for tests.
Metrics: COCO mAP (AP@[.5:.95]) and AP@.5 of every query's box, scored by its best real class (pycocotools);
proposal_map: the encoder's proposals alone.
Measured (docs/vision.md, "Object detection"; 3000 steps, seeds 0-2): a DETR seed alone takes 5 min 20 s on 2 CPU
cores (10.7 steps/s), a grid seed 1.5 min; mAP 0.565 +- 0.010 (dot_product), 0.571 +- 0.015 (linear), fixed grid
0.085 +- 0.005. For a run of a minute: --config.train.steps=700 (selected queries: mAP 0.061, seed 0).
"""

from attention_research.training.config_files import make_config, parse_arg

MODELS = ('detr', 'grid')
QUERIES = ('selected', 'learned')


def get_config(arg=None):
  opts = parse_arg(arg, {'model': 'detr', 'attention': 'dot_product', 'queries': 'selected', 'smoke': False})
  if opts['model'] not in MODELS:
    raise ValueError(f"unknown model {opts['model']!r} for configs/detection.py; known: {list(MODELS)}.")
  if opts['queries'] not in QUERIES:
    raise ValueError(f"unknown queries {opts['queries']!r} for configs/detection.py; known: {list(QUERIES)}.")
  if opts['model'] == 'detr':
    model = dict(name='detr.DETR', num_classes=None, image_size=None, channels=None, backbone_channels=(32, 64, 64),
                 d_model=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=3, mlp_dim=128, num_queries=16,
                 attention=opts['attention'], dropout_rate=0.0, aux_loss=True,
                 two_stage=opts['queries'] == 'selected')
    variant_fields = 'model.attention'
  else:
    model = dict(name='detr.GridDetector', num_classes=None, image_size=None, channels=None,
                 backbone_channels=(32, 64, 64), hidden=64, anchor_sizes=(12.0, 18.0))
    variant_fields = ''
  # Classes take longer to learn than boxes: at 700 steps neither detector names many digits (docs/vision.md).
  train = dict(steps=3000, batch_size=32, log_every=100, eval_every=0, checkpoint_every=1000)
  optim = dict(learning_rate=1e-3, warmup_steps=100, weight_decay=1e-4, schedule='cosine', grad_clip_norm=0.1)
  data = dict(eval_batch_size=100, eval_examples=500)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=16, eval_examples=16)
    train.update(steps=4, batch_size=8, log_every=2, eval_every=0, checkpoint_every=2)
    optim.update(warmup_steps=1)
    if opts['model'] == 'detr':
      model.update(backbone_channels=(8, 16, 16), d_model=16, num_heads=2, num_encoder_layers=1,
                   num_decoder_layers=2, mlp_dim=32, num_queries=4)
    else:
      model.update(backbone_channels=(8, 16, 16), hidden=16)
  compare = dict(variants='dot_product,linear' if variant_fields else 'dot_product', seeds=3)
  if opts['smoke']:
    compare.update(variants='dot_product', seeds=1)  # each DETR compilation costs seconds of the test suite
  return make_config(task='scene_detection', name=f"detection ({opts['model']})", kind='detection', model=model,
                     data=data, train=train, optim=optim, variant_fields=variant_fields, compare=compare)
