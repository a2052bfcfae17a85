r"""Visual question answering on scene_vqa: a question encoder with stacked cross-attention over image regions.

  python -m experiments.train --config=configs/vqa.py --workdir=runs/vqa --plot
  python -m experiments.compare --config=configs/vqa.py --variants=dot_product,linear --seeds=3 --workdir=runs/vqa
  python -m experiments.compare --config=configs/vqa.py:image=false --seeds=3 --workdir=runs/vqa_question_only

Data: the built-in `scene_vqa` task (questions of five types about scenes of 2 to 4 handwritten digits on a 3x3
grid; types balanced, answers balanced within each type). Model: vqa.VQA (a 2-layer Transformer encoder over the
question, a cls token as the question vector, 2 hops of cross-attention from it over 8x8 image regions).

Options (after the colon, comma-separated):
  attention=<variant>   the hops' cross-attention variant (default dot_product).
  image=true|false      false: the question-only baseline (same model without the image), compare row
                        'question_only'.
  smoke                 tiny data and model, a few steps: a run of seconds, for tests.
Metrics: accuracy overall and per question type (accuracy_exists, ...), attention_hit (share of questions whose
attention peak lies in a cell the question refers to) beside attention_hit_chance (a uniformly drawn peak's).

Measured (docs/vision.md, "Visual question answering"; 2 CPU cores beside one other run): 4000 steps, 3 seeds
in sequence, about 5.8 min per dot_product seed (11.8 steps/s): test accuracy 0.692 +- 0.029 (identity 0.94),
question only 0.219 +- 0.007 (2 min 14 s for 3 seeds), chance within the types 0.21. For a run of minutes:
--config.train.steps=1000 (accuracy 0.335 +- 0.009; the digits are not yet read). The smoke run costs about 17 s
of CPU, mostly compilation.
"""

from attention_research.training.config_files import make_config, parse_arg


def get_config(arg=None):
  opts = parse_arg(arg, {'attention': 'dot_product', 'image': True, 'smoke': False})
  model = dict(name='vqa.VQA', vocab_size=None, num_classes=None, max_length=None, image_size=None, channels=None,
               image=opts['image'], grid=8, conv_features=16, d_model=64, num_heads=4, num_layers=2, hops=2,
               attention=opts['attention'], dropout=0.0)
  train = dict(steps=4000, batch_size=64, log_every=100, eval_every=0, checkpoint_every=0)
  optim = dict(learning_rate=2e-3, warmup_steps=100, schedule='cosine', grad_clip_norm=1.0)
  data = dict(eval_batch_size=200)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=25)
    train.update(steps=4, batch_size=8, log_every=2, checkpoint_every=0)
    optim.update(warmup_steps=1)
    model.update(conv_features=4, d_model=16, num_heads=2, num_layers=1, grid=4)
  if opts['image']:
    compare, variant_fields, name = dict(variants='dot_product,linear', seeds=3), 'model.attention', 'vqa'
  else:
    compare, variant_fields, name = dict(variants='question_only', seeds=3), '', 'vqa (question only)'
  compare['seed_mode'] = 'sequential'  # vmap-ed seeds ran 2.5 times slower per seed here (batched convolutions)
  return make_config(task='scene_vqa', name=name, kind='vqa', model=model, data=data, train=train, optim=optim,
                     objective={'kind': 'vqa'}, compare=compare, variant_fields=variant_fields)
