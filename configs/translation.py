r"""Translation of English number words into German (number_translation), Transformer or RNN baseline.

  python -m experiments.train --config=configs/translation.py --workdir=runs/translation
  python -m experiments.train --config=configs/translation.py:model=rnn,attention=luong --workdir=runs/rnn
  python -m experiments.compare --config=configs/translation.py --variants=dot_product,additive,linear --seeds=3

Options (after the colon, comma-separated):
  model=transformer|rnn   transformer.EncoderDecoder, or seq2seq_rnn.RNNSeq2Seq (GRU, input feeding).
  attention=<variant>     transformer: any causal variant in attention.VARIANTS (self- and cross-attention);
                          rnn: bahdanau or luong (the RNN's own attention; luong_score via
                          --config.model.luong_score=dot|general|concat).
  task=<name>             another seq2seq task, e.g. wmt14_translate/de-en once prepared with tfds.
  smoke                   tiny data and model, a few steps: a run of seconds, for tests.
Evaluation decodes greedily (--config.objective.beam_size=4 for beam search) and reports exact match,
BLEU and chrF on the test split; number_translation's BLEU counts German morphemes ('drei und zwanzig'), as
German numbers are single words (the result table notes sacrebleu's signature).
"""

from attention_research.training.config_files import make_config, parse_arg


def get_config(arg=None):
  opts = parse_arg(arg, {'model': 'transformer', 'attention': '', 'task': 'number_translation', 'smoke': False})
  if opts['model'] == 'transformer':
    model = dict(name='transformer.EncoderDecoder', vocab_size=None, target_vocab_size=None, max_length=None,
                 d_model=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, mlp_dim=128,
                 dropout_rate=0.1, positional='sinusoidal', attention=opts['attention'] or 'dot_product')
    variants = 'dot_product,additive,linear'
  elif opts['model'] == 'rnn':
    model = dict(name='seq2seq_rnn.RNNSeq2Seq', vocab_size=None, target_vocab_size=None, embed_size=64,
                 hidden_size=128, cell='gru', attention=opts['attention'] or 'bahdanau', dropout=0.1)
    variants = 'bahdanau,luong'
  else:
    raise ValueError(f"unknown model {opts['model']!r} for configs/translation.py; known: ['transformer', 'rnn'].")
  train = dict(steps=4000, batch_size=64, log_every=100, eval_every=1000, checkpoint_every=1000)
  optim = dict(learning_rate=1e-3, warmup_steps=400, weight_decay=0.01)
  data = dict(eval_batch_size=128, eval_examples=500)
  objective = dict(label_smoothing=0.1, beam_size=1)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=16, eval_examples=16)
    train.update(steps=6, batch_size=8, log_every=2, eval_every=0, checkpoint_every=3)
    optim.update(warmup_steps=1)
    small = dict(d_model=16, num_heads=2, mlp_dim=32, num_encoder_layers=1, num_decoder_layers=1, embed_size=16,
                 hidden_size=16, dropout_rate=0.0, dropout=0.0)
    model.update({k: v for k, v in small.items() if k in model})
  return make_config(task=opts['task'], name=f"translation ({opts['model']})", kind='seq2seq', model=model,
                     data=data, train=train, optim=optim, objective=objective,
                     compare=dict(variants=variants, seeds=3))
