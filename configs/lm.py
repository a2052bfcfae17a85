r"""Causal language modelling with any causal attention variant (transformer.DecoderLM).

  python -m experiments.train --config=configs/lm.py --workdir=runs/lm     # lm1b, prepared with tfds first
  python -m experiments.train --config=configs/lm.py:task=number_translation --workdir=runs/lm_numbers
  python -m experiments.compare --config=configs/lm.py:task=number_translation --variants=dot_product,linear,performer

Options (after the colon, comma-separated):
  task=<name>          lm1b (default; a public dataset), or any built-in task whose 'inputs' column is text,
                       e.g. number_translation (the English number words), trained as a language model.
  attention=<variant>  any causal variant in attention.VARIANTS.
  smoke                tiny data and model on number_translation, a few steps: a run of seconds, for tests.
"""

from attention_research.training.config_files import make_config, parse_arg


def get_config(arg=None):
  opts = parse_arg(arg, {'task': 'lm1b', 'attention': 'dot_product', 'smoke': False})
  task = 'number_translation' if opts['smoke'] else opts['task']
  model = dict(name='transformer.DecoderLM', vocab_size=None, max_length=None, d_model=128, num_heads=4,
               num_decoder_layers=4, mlp_dim=512, dropout_rate=0.1, positional='rope', attention=opts['attention'])
  train = dict(steps=20000, batch_size=32, log_every=100, eval_every=2000, checkpoint_every=2000)
  optim = dict(learning_rate=1e-3, warmup_steps=1000, weight_decay=0.01)
  data = dict(eval_batch_size=64, eval_examples=2000)
  if task == 'number_translation':
    model.update(d_model=64, num_decoder_layers=2, mlp_dim=128)
    train.update(steps=3000, batch_size=64, eval_every=1000, checkpoint_every=1000)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=16, eval_examples=16)
    train.update(steps=6, batch_size=8, log_every=2, eval_every=0, checkpoint_every=3)
    optim.update(warmup_steps=1)
    model.update(d_model=16, num_heads=2, mlp_dim=32, num_decoder_layers=1, dropout_rate=0.0)
  # 'kind' trains a task of another kind on its text column; lm tasks need no override.
  objective = {} if task == 'lm1b' else {'kind': 'lm'}
  return make_config(task=task, name=f'lm ({task})', kind='lm', model=model, data=data, train=train, optim=optim,
                     objective=objective, compare=dict(variants='dot_product,linear,performer', seeds=3))
