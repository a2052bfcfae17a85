r"""Image captioning on digit_scenes: Show, Attend and Tell (LSTM with soft attention) or a Transformer decoder.

  python -m experiments.train --config=configs/captioning.py --workdir=runs/sat
  python -m experiments.train --config=configs/captioning.py:decoder=transformer,attention=linear --workdir=runs/cap
  python -m experiments.compare --config=configs/captioning.py:decoder=transformer \
      --variants=dot_product,linear,performer --seeds=3

Options (after the colon, comma-separated):
  decoder=lstm|transformer   lstm: Xu et al.'s decoder with soft attention over the regions and gating scalar (no
                             variant to compare); transformer: causal self-attention and cross-attention over the
                             regions with any variant.
  attention=<variant>        the transformer decoder's cross-attention variant.
  smoke                      tiny data and model, a few steps: a run of seconds, for tests.
Metrics: BLEU and exact match of generated captions, and attention_hit: how often the word naming a digit
attends most to a region inside that digit's cell (attention_hit_before: the step before the word's).

Defaults (docs/vision.md, "Captioning attention"): local 8x8 regions (three stride-2 convolutions, a 15-px view
each), no doubly stochastic penalty, peak learning rate 2e-3, 6000 steps; the LSTM decoder is Anderson et al.'s
two-layer top-down one (lstm_query='top_down': an attention LSTM that has read the word scores the regions
bilinearly, lstm_score='general', and a language LSTM reads the glimpse in the same step). With one LSTM
(lstm_query='current', glimpse fed back) the decoder looks at each digit one step before naming it; with Xu et
al.'s additive score from the previous state its attention settles on blank regions. Measured with 3 vmapped seeds
(`experiments.compare --seeds=3 --seed_mode=vmap`) on 2 CPU cores beside other runs: two-layer LSTM 77 min, BLEU
97.3 +- 2.3, exact match 0.906 +- 0.061, attention_hit 0.842 +- 0.253 (chance 0.108); one-layer LSTM 35 min 56 s,
exact match 0.879 +- 0.079, attention_hit 0.020 +- 0.014, attention_hit_before 0.913 +- 0.150; transformer
49 min 43 s, BLEU 97.4 +- 1.0, exact match 0.893 +- 0.041, attention_hit 0.763 +- 0.017.
A run of minutes: --config.train.steps=2000 --config.model.lstm_query=current (one LSTM seed about 2.5 min; BLEU
63 +- 15 over 3 seeds); the two-layer LSTM needs the full budget (2000 steps: BLEU 42.5, seed 0).
"""

from attention_research.training.config_files import make_config, parse_arg


def get_config(arg=None):
  opts = parse_arg(arg, {'decoder': 'lstm', 'attention': 'dot_product', 'smoke': False})
  if opts['decoder'] not in ('lstm', 'transformer'):
    raise ValueError(f"unknown decoder {opts['decoder']!r}; known: ['lstm', 'transformer'].")
  model = dict(name='captioner.Captioner', vocab_size=None, image_size=None, channels=None, max_length=None,
               encoder='conv', grid=8, conv_layers=3, feature_size=64, embed_size=64, hidden_size=128,
               decoder=opts['decoder'], lstm_score='general', lstm_query='top_down', num_layers=2, num_heads=4,
               attention=opts['attention'], doubly_stochastic=0.0, dropout=0.1)
  train = dict(steps=6000, batch_size=32, log_every=100, eval_every=0, checkpoint_every=2000)
  optim = dict(learning_rate=2e-3, warmup_steps=200, weight_decay=0.0)
  data = dict(eval_batch_size=64, eval_examples=500)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=16, eval_examples=16)
    train.update(steps=6, batch_size=8, log_every=2, eval_every=0, checkpoint_every=3)
    optim.update(warmup_steps=1)
    model.update(grid=4, conv_layers=2, feature_size=16, embed_size=16, hidden_size=16, num_layers=1, num_heads=2,
                 dropout=0.0)
  # The LSTM decoder's attention is its own layer (lstm_score), not a registered variant: only the transformer
  # decoder has variants; the LSTM's single row is named after its score.
  variant_fields = 'model.attention' if opts['decoder'] == 'transformer' else ''
  return make_config(task='digit_scenes', name=f"captioning ({opts['decoder']})", kind='captioning', model=model,
                     data=data, train=train, optim=optim, objective=dict(beam_size=1),
                     variant_fields=variant_fields,
                     compare=dict(variants='dot_product,linear,performer' if variant_fields else model['lstm_score'],
                                  seeds=3))
