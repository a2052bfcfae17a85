r"""Summarization of football match reports (reports) with the Transformer EncoderDecoder and beam search.

  python -m experiments.train --config=configs/summarization.py --workdir=runs/summarization
  python -m experiments.compare --config=configs/summarization.py --variants=dot_product,linear --seeds=3 \
      --seed_mode=vmap --workdir=runs/summarization

Data: the built-in `reports` task (three-paragraph match reports with distractor sentences; the summary is the
result and the scorers in order); its `test_ood` split has longer reports with more distractors, and compare
reports ood_* metrics beside the test split's. Evaluation decodes with beam search (beam 4) and reports
ROUGE-1/2/L F-measures x100 (rouge-score) and exact match.

Options (after the colon, comma-separated):
  attention=<variant>   any causal variant in attention.VARIANTS (self- and cross-attention; default dot_product).
  beam=<n>              beam size of evaluation decoding (default 4; 1 = greedy).
  smoke                 tiny data and model, a few steps: a run of seconds, for tests.

Measured (docs/text_sentiment_summaries.md): dot_product shortened to 400 steps (--config.train.steps=400
--config.optim.learning_rate=2e-3 --config.data.eval_examples=100): 976 s for compare with test_ood (load average
17-24) and 525 s / 136 s for train (load average 9-16 / 4-8) on 2 shared CPU cores, 0.6-4.2 steps/s; ROUGE-L
70.0 ± 2.3 over seeds 0-2 (sample std).
The default 1500 steps were not timed.
"""

from attention_research.training.config_files import make_config, parse_arg


def get_config(arg=None):
  opts = parse_arg(arg, {'attention': 'dot_product', 'beam': 4, 'smoke': False})
  if opts['beam'] < 1:
    raise ValueError(f"beam must be >= 1, got {opts['beam']}.")
  model = dict(name='transformer.EncoderDecoder', vocab_size=None, max_length=None, d_model=64, num_heads=4,
               num_encoder_layers=2, num_decoder_layers=2, mlp_dim=128, dropout_rate=0.0, positional='sinusoidal',
               attention=opts['attention'])
  train = dict(steps=1500, batch_size=32, log_every=100, eval_every=0, checkpoint_every=0)
  optim = dict(learning_rate=1e-3, warmup_steps=100, weight_decay=0.01, schedule='cosine', grad_clip_norm=1.0)
  data = dict(eval_batch_size=100)
  objective = dict(kind='summarization', beam_size=opts['beam'])
  compare = dict(variants='dot_product,linear', seeds=3, seed_mode='sequential')
  if opts['smoke']:
    data.update(size='small', eval_batch_size=10)
    train.update(steps=6, batch_size=8, log_every=2, checkpoint_every=3)
    optim.update(warmup_steps=1)
    compare.update(seeds=2)
    objective.update(beam_size=2)
    model.update(d_model=16, num_heads=2, mlp_dim=32, num_encoder_layers=1, num_decoder_layers=1)
  return make_config(task='reports', name='summarization', kind='summarization', model=model, data=data,
                     train=train, optim=optim, objective=objective, compare=compare)
