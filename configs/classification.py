r"""Classification with any attention variant: ListOps, MQAR recall, digits (ViT) and IMDB reviews.

  python -m experiments.train --config=configs/classification.py:task=listops --workdir=runs/listops
  python -m experiments.train --config=configs/classification.py:task=digits,attention=linear --workdir=runs/vit
  python -m experiments.compare --config=configs/classification.py:task=mqar \
      --variants=dot_product,linear,performer --seeds=3 --workdir=runs/mqar
  python -m experiments.compare --config=configs/classification.py:task=mqar \
      --variants=dot_product,gated_delta,gated_delta+dot_product --seeds=3 --workdir=runs/mqar_hybrid

Options (after the colon, comma-separated):
  task=listops|mqar|digits|imdb   listops: LRA ListOps, sequence -> 10 classes (Encoder, mean pooling);
                                  mqar: multi-query associative recall, a label per query token (tagging
                                  Encoder); digits: scikit-learn 8x8 digits (ViT, 2x2 patches);
                                  imdb: imdb_reviews sentiment (prepare it with tfds first).
  attention=<variant>             any name in attention.VARIANTS (default dot_product), or a per-layer hybrid:
                                  names joined by '+', one per layer (gated_delta+dot_product for the two
                                  encoder layers). '+' survives the comma-separated --variants flag, so a
                                  hybrid is one variant there too. Recurrent variants (retention, gla, ssd,
                                  delta, gated_delta) read the sequence left to right even in an encoder.
  smoke                           tiny data and model, a few steps: a run of seconds, for tests.
  suite                           the budget of the default suite (`python -m experiments.compare`).
"""

from attention_research.training.config_files import make_config, parse_arg

TASKS = ('listops', 'mqar', 'digits', 'imdb')


def _encoder(**overrides):
  model = dict(name='transformer.Encoder', vocab_size=None, num_classes=None, max_length=None, d_model=64,
               num_heads=4, num_encoder_layers=2, mlp_dim=128, dropout_rate=0.1, positional='sinusoidal',
               pooling='mean', head='pool')
  model.update(overrides)
  return model


def get_config(arg=None):
  opts = parse_arg(arg, {'task': 'listops', 'attention': 'dot_product', 'smoke': False, 'suite': False})
  task = opts['task']
  if task not in TASKS:
    raise ValueError(f'unknown task {task!r} for configs/classification.py; known: {list(TASKS)}.')
  train = dict(steps=5000, batch_size=32, log_every=100, eval_every=1000, checkpoint_every=1000)
  optim = dict(learning_rate=1e-3, warmup_steps=500, weight_decay=0.01, schedule='cosine')
  data = dict(eval_batch_size=64)
  compare = dict(variants='dot_product,linear,performer', seeds=3, seed_mode='sequential')

  if task == 'listops':
    data_task, model = 'listops', _encoder()
  elif task == 'mqar':
    data_task, model = 'mqar', _encoder(head='tagging', dropout_rate=0.0)
    train.update(steps=3000, batch_size=64)
  elif task == 'digits':
    data_task = 'digits'
    model = dict(name='vit.ViT', image_size=None, channels=None, num_classes=None, patch_size=2, d_model=64,
                 num_heads=4, num_layers=2, mlp_dim=128, dropout_rate=0.1, positional='learned', pooling='mean')
    train.update(steps=2000, batch_size=64, eval_every=500, checkpoint_every=500)
  else:
    data_task, model = 'imdb_reviews', _encoder(d_model=128, num_encoder_layers=4, mlp_dim=256)
    train.update(steps=10000, batch_size=32)
  model['attention'] = opts['attention']

  if opts['suite'] or opts['smoke']:
    # Dropout's random bits cost seconds of compilation on CPU; short runs do not need it.
    model['dropout_rate'] = 0.0
  if opts['suite']:
    # One row per variant with mean ± std over 2 seeds, in about 4 minutes per task on 2 CPU cores.
    compare.update(variants='dot_product,linear', seeds=2)
    train.update(log_every=100, eval_every=0, checkpoint_every=0)
    if task == 'mqar':
      # Small enough that softmax attention learns the recall circuit in budget: with RoPE it jumps from
      # guessing among the values in context (25%) to 100% around step 2000 (measured at lr 1e-3; 3e-3, or
      # sinusoidal positions, stayed at 25-30% after 1200-2000 steps).
      data['options'] = dict(seq_len=32, num_kv_pairs=4, num_queries=4, vocab_size=36)
      model['positional'] = 'rope'
      # 3000 steps left one seed of two midway through the jump (46%); 4500 let every seed finish it.
      train.update(steps=4500, batch_size=32)
      optim.update(learning_rate=1e-3, warmup_steps=100)
    elif task == 'digits':
      compare.update(variants='dot_product,linear,performer')
      train.update(steps=600, batch_size=32)
      optim.update(learning_rate=2e-3, warmup_steps=50)
    else:
      train.update(steps=1000)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=32, eval_examples=32)
    if task == 'imdb':
      data.update(options={'max_examples': 64})
    train.update(steps=6, batch_size=8, log_every=2, eval_every=0, checkpoint_every=3)
    optim.update(warmup_steps=1)
    compare.update(variants='dot_product,linear', seeds=2)
    for key, small in (('d_model', 16), ('num_heads', 2), ('mlp_dim', 32), ('num_encoder_layers', 1),
                       ('num_layers', 1)):
      if key in model:
        model[key] = small
  kind = 'token_classification' if task == 'mqar' else 'classification'
  return make_config(task=data_task, name=task, kind=kind, model=model, data=data, train=train, optim=optim,
                     compare=compare)
