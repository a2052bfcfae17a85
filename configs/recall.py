r"""The recall family: MQAR (Zoology) and its variants, selective copying and the MAD synthetic tasks.

  python -m experiments.compare --config=configs/recall.py:grid --workdir=runs/recall_grid
  python -m experiments.compare --config=configs/recall.py:grid,full --workdir=runs/recall_grid_full
  python -m experiments.compare --config=configs/recall.py:task=selective_copying \
      --variants=dot_product,gla,gated_delta --seeds=3 --workdir=runs/selective_copying

Options (after the colon, comma-separated):
  task=<name>       mqar (default), mqar_rebind (keys bound again later; the answer is the latest value),
                    mqar_compositional (keys of two tokens), selective_copying, fuzzy_recall, noisy_recall,
                    compression, memorization. Each is a built-in tfds builder (attention_research.data.builders).
  attention=<v>     any name in attention.VARIANTS (default dot_product).
  grid              the reduced grid: MQAR over model width (32, 64) and sequence length (64, 128; pairs and
                    queries grow with it, a sixteenth of the length as in Zoology), learning rates 5e-3, 1e-2
                    and 2e-2 and 3 seeds per cell, for dot_product, linear, gla, gated_delta and local (a
                    window of 16 keys each side). `python -m experiments.compare` runs it, draws recall against
                    state size and, rerun with the same workdir, resumes where a stopped run stopped. Each cell
                    trains its 9 (learning rate, seed) members in one vmapped step: on 2 CPU cores that was as
                    fast per member step as training them one by one, and compiles once, not 9 times.
  full              with grid: widths 32, 64, 128 and lengths 64, 128, 256 (hours on 2 CPU cores).
  smoke             tiny data and model, a few steps: a run of seconds, for tests.

The model is the tagging Encoder of configs/classification.py:task=mqar (2 layers, 4 heads, RoPE, a label per
token). The grid's budget differs so that softmax attention solves MQAR in a few hundred steps (docs/recall.md):
every variant gets a short causal convolution (kernel 4) on its query, key and value, as the mixers of Zoology
and MAD (H3, Based, Mamba, GLA, DeltaNet) carry one, which moves each key into the position of its value, so one
layer of one head can do the lookup (without it one layer cannot: a value's position holds nothing of its key);
400 steps of batch 32, 30 warmup steps, cosine decay. On the hardest cell (length 128, width 32, one seed, all
with the convolution) one layer of one head left the plateau at step 150-250 and reached 0.9995 test accuracy
at lr 1e-2 and 2e-2, while 2 layers (4 heads or 1) were at 0.03-0.26 after 300-400 steps at lr 3e-3 to 3e-2,
0.80 at best (lr 3e-2, 400 steps); one layer without RoPE stopped at 0.92 (in the bidirectional encoder a query also
matches the position after it, which only the relative position tells apart from its value's).
Measured (docs/recall.md): the whole grid took 87.9 minutes of CPU time (5272 s user + sys, in two parts, the
second resuming the first) on 2 CPU cores shared with other jobs (load average 2-10; 111 minutes of wall time),
about 44 minutes of a quiet 2-core machine; dot_product >= 0.999 in every cell. For a run of minutes, narrow it:
--grid='d_model+mlp_dim=32+64;seq_len+num_kv_pairs+num_queries=64+4+4' --variants=dot_product,linear (one
cell of the four, two variants of the five; the full first cell, five variants, took 1002 s of wall time at load 9).
"""

from attention_research.training.config_files import make_config, parse_arg

TASKS = {  # option -> (builder, builder options)
    'mqar': ('mqar', {}),
    'mqar_rebind': ('mqar', {'rebind': 4}),
    'mqar_compositional': ('mqar', {'compositional': True}),
    'selective_copying': ('selective_copying', {}),
    'fuzzy_recall': ('fuzzy_recall', {}),
    'noisy_recall': ('noisy_recall', {}),
    'compression': ('compression', {}),
    'memorization': ('memorization', {}),
}
GRID_VARIANTS = 'dot_product,linear,gla,gated_delta,local'
# Pairs (and queries) grow with the length, as in Zoology, so a longer sequence asks a fixed state to hold more.
# The width is the outer axis: the narrowest model, where the finding shows first, runs at every length first.
GRID = 'd_model+mlp_dim=32+64,64+128;seq_len+num_kv_pairs+num_queries=64+4+4,128+8+8'
FULL_GRID = 'd_model+mlp_dim=32+64,64+128,128+256;seq_len+num_kv_pairs+num_queries=64+4+4,128+8+8,256+16+16'
LEARNING_RATES = 'learning_rate=5e-3,1e-2,2e-2'
SHORT_CONV = 4  # kernel of the causal convolution on q, k and v of every grid variant (layers.short_conv)
# local's own option: a window of 16 keys on each side, whose cache at width 32 (1088 floats) is the size of
# linear attention's state (1024), fixed in the length like the recurrent states.
LOCAL_WINDOW = 16


def get_config(arg=None):
  opts = parse_arg(arg, {'task': 'mqar', 'attention': 'dot_product', 'smoke': False, 'grid': False,
                         'full': False})
  if opts['task'] not in TASKS:
    raise ValueError(f'unknown task {opts["task"]!r} for configs/recall.py; known: {sorted(TASKS)}.')
  if opts['full'] and not opts['grid']:
    raise ValueError('configs/recall.py: full is an option of grid (grid,full).')
  if opts['grid'] and opts['task'] != 'mqar':
    raise ValueError(f'configs/recall.py: the grid is defined for task=mqar, got task={opts["task"]}.')
  builder, options = TASKS[opts['task']]
  options = dict(options)
  if builder == 'mqar':
    # A small vocabulary (32 keys, 32 values): its embeddings are learnt in a CPU budget, Zoology's 8192 are not.
    options.update(vocab_size=68, seq_len=64, num_kv_pairs=4, num_queries=4, num_train=20_000)
  model = dict(name='transformer.Encoder', vocab_size=None, num_classes=None, max_length=None, d_model=64,
               num_heads=4, num_encoder_layers=2, mlp_dim=128, dropout_rate=0.0, positional='rope', pooling='mean',
               head='tagging', attention=opts['attention'])
  # A short budget for the single tasks: with this model (no convolution), softmax attention stays on MQAR's
  # guessing plateau in it (docs/recall.md); raise it with --config.train.steps=... where time allows.
  train = dict(steps=1200, batch_size=16, log_every=200, eval_every=0, checkpoint_every=0)
  optim = dict(learning_rate=1e-3, warmup_steps=60, weight_decay=0.01, schedule='cosine')
  data = dict(eval_batch_size=250, eval_examples=500, options=options)
  compare = dict(variants='dot_product,linear,gla,gated_delta', seeds=3, seed_mode='vmap',
                 variant_options=dict(local=dict(window=LOCAL_WINDOW)))
  if opts['grid']:
    compare.update(variants=GRID_VARIANTS, seeds=3, seed_mode='vmap', sweep=LEARNING_RATES,
                   grid=FULL_GRID if opts['full'] else GRID)
    model.update(num_heads=1, num_encoder_layers=1, attention_options=dict(short_conv=SHORT_CONV))
    train.update(steps=400, batch_size=32, log_every=100)
    optim.update(warmup_steps=30)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=32, eval_examples=32, options=dict(TASKS[opts['task']][1]))
    train.update(steps=6, batch_size=8, log_every=2)
    optim.update(warmup_steps=1)
    model.update(d_model=16, num_heads=2, mlp_dim=32, num_encoder_layers=1)
    compare.update(variants='dot_product,linear', seeds=2)
    if opts['grid']:
      compare.update(grid='d_model+mlp_dim=16+32,32+64', sweep='learning_rate=1e-3,3e-3')
  return make_config(task=builder, name=f'recall_{opts["task"]}', kind='token_classification', model=model,
                     data=data, train=train, optim=optim, compare=compare)
