r"""Translation of English number phrases into German, French, Turkish or Japanese (number_phrases), Transformer
or RNN baseline.

  python -m experiments.train --config=configs/translation.py --workdir=runs/translation
  python -m experiments.train --config=configs/translation.py:model=rnn,attention=luong --workdir=runs/rnn
  python -m experiments.compare --config=configs/translation.py --variants=dot_product,additive,linear --seeds=3
  python -m experiments.compare --config=configs/translation.py:model=rnn --variants=none,bahdanau --seed_mode=vmap

Options (after the colon, comma-separated):
  model=transformer|rnn   transformer.EncoderDecoder, or seq2seq_rnn.RNNSeq2Seq (GRU, input feeding).
  attention=<variant>     transformer: any causal variant in attention.VARIANTS (self- and cross-attention);
                          rnn: bahdanau, luong (luong_score via --config.model.luong_score=dot|general|concat)
                          or none (no attention: the encoder's final states are the decoder's only context).
  digits=<n>              number_phrases: numbers of up to n digits (default 6; the task goes up to 12, below 10^12).
  task=<name>             another seq2seq task: number_translation (English -> German numbers below a million,
                          which every variant learns perfectly), or wmt14_translate/de-en once prepared with tfds.
  smoke                   tiny data and model, a few steps: a run of seconds, for tests.
Evaluation decodes greedily (--config.objective.beam_size=4 for beam search) and reports exact match, BLEU and
chrF on the test split (sources of 1 to 3 phrases; training sees 1 or 2), and exact match and BLEU per
source-length bucket of 10 tokens; BLEU counts the target tokenizer's morphemes ('drei und zwanzig'), as German,
Turkish and Japanese numbers are single words (the result table notes sacrebleu's signature). compare writes
the per-bucket table and the length curve (length_curve.md, length_curve.png) beside the results.
Budget (the defaults): 3000 steps of batch 32, numbers of up to 6 digits, 3 seeds trained together (vmap).
Measured per variant (data to evaluation, 3 seeds) on 2 cores shared with another job (load 4 to 5): RNN none 7.3
minutes, RNN bahdanau 14.7, RNN luong (general) 17.5, Transformer dot_product 18.6; the Transformer alone on the
quiet machine (load 1.7 to 2.5): 10.5 minutes, the same metrics to the last digit. Test BLEU: none 51.7,
luong 66.0, Transformer 83.9, bahdanau 89.4 (docs/translation.md). A run of minutes: --config.train.steps=500
(BLEU 16 to 27, far from trained), or `smoke` (seconds).
"""

from attention_research.training.config_files import make_config, parse_arg


def get_config(arg=None):
  opts = parse_arg(arg, {'model': 'transformer', 'attention': '', 'task': 'number_phrases', 'digits': 6,
                         'smoke': False})
  if opts['model'] == 'transformer':
    model = dict(name='transformer.EncoderDecoder', vocab_size=None, target_vocab_size=None, max_length=None,
                 d_model=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, mlp_dim=128,
                 dropout_rate=0.1, positional='sinusoidal', attention=opts['attention'] or 'dot_product')
    variants = 'dot_product,additive,linear'
  elif opts['model'] == 'rnn':
    model = dict(name='seq2seq_rnn.RNNSeq2Seq', vocab_size=None, target_vocab_size=None, embed_size=32,
                 hidden_size=64, cell='gru', attention=opts['attention'] or 'bahdanau', dropout=0.1)
    variants = 'none,bahdanau,luong'
  else:
    raise ValueError(f"unknown model {opts['model']!r} for configs/translation.py; known: ['transformer', 'rnn'].")
  train = dict(steps=3000, batch_size=32, log_every=50, eval_every=0, checkpoint_every=0)
  optim = dict(learning_rate=3e-3, warmup_steps=100, weight_decay=0.01)
  data = dict(eval_batch_size=125, eval_examples=0,
              options=dict(max_digits=int(opts['digits'])) if opts['task'] == 'number_phrases' else {})
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
