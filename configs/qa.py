r"""bAbI-style story QA: an end-to-end memory network (memnet.MemN2N) or a Transformer Encoder over the story.

  python -m experiments.train --config=configs/qa.py:task=3 --workdir=runs/qa3
  python -m experiments.compare --config=configs/qa.py:task=3 --sweep=hops=1,3 --seeds=3 --workdir=runs/qa3_hops
  python -m experiments.compare --config=configs/qa.py:model=transformer,task=1,num_train=40000 \
      --config.train.steps=20000 --variants=dot_product --seeds=3 --seed_mode=vmap --workdir=runs/qa1_transformer

Data: the built-in `story_qa` task with option `task` (bAbI ids 1, 2, 3, 6, 7, 8, 17, 19); its `test_ood` split
has longer stories with more distractors, and compare reports ood_* metrics beside the test split's.
Metrics: accuracy; for the memory network support_mass_hop<k>, the attention mass hop k puts on the supporting
facts (support_mass_last in the table); majority_accuracy and bow_accuracy are the baselines (majority answer;
logistic regression on bags of story and question words) on the same questions.

Options (after the colon, comma-separated):
  model=memnet|transformer   memnet: MemN2N (position and temporal encoding, adjacent tying), its compare row is
                             named 'memnet' (it has no attention variants; sweep hops instead); transformer:
                             Encoder over the question and the flattened story, a cls token classifies.
  task=<id>                  bAbI task id (default 1).
  hops=<n>                   memory hops of memnet (default 3).
  attention=<variant>        the transformer's attention variant (default dot_product).
  positional=rope|sinusoidal the transformer's positions (default rope).
  num_train=<n>              training stories (default: the builder's 4000; the Transformer needs 40000).
  smoke                      tiny data and model, a few steps: a run of seconds, for tests.

Measured (docs/text.md, 2 CPU cores shared with other jobs): memnet on task 3, 1500 steps of batch 32: 5-26 s
per run (about 5 s of it compilation), 96 s for `--sweep=hops=1,3 --seeds=3` (load average 7); test accuracy
0.94 ± 0.01 with 3 hops, 0.45 ± 0.01 with 1 hop. The transformer on task 1 (RoPE; each split padded to its own
longest): 1500 steps take about 1 minute for one seed (30 steps/s, load about 2) and reach 0.46, the bag of words'
level; with num_train=40000 and 20000 steps (52 minutes for 3 vmapped seeds beside the test suite) it reaches
0.997 ± 0.006 on test and 0.21 on test_ood.
"""

from attention_research.data.builders.story_qa import check_task
from attention_research.training.config_files import make_config, parse_arg

MODELS = ('memnet', 'transformer')


def get_config(arg=None):
  opts = parse_arg(arg, {'model': 'memnet', 'task': 1, 'hops': 3, 'attention': 'dot_product', 'positional': 'rope',
                         'num_train': 0, 'smoke': False})
  if opts['model'] not in MODELS:
    raise ValueError(f'unknown model {opts["model"]!r} for configs/qa.py; known: {list(MODELS)}.')
  task = check_task(opts['task'])
  train = dict(steps=1500, batch_size=32, log_every=100, eval_every=0, checkpoint_every=0)
  optim = dict(learning_rate=5e-3, warmup_steps=50, schedule='cosine', grad_clip_norm=40.0)
  data = dict(eval_batch_size=100, options={'task': task})
  if opts['num_train']:  # the builder's training stories (default 4000); its cache folder is named by the options
    data['options']['num_train'] = int(opts['num_train'])
  if opts['model'] == 'memnet':
    model = dict(name='memnet.MemN2N', vocab_size=None, num_classes=None, max_sentences=None, d_model=32,
                 hops=opts['hops'])
    objective, variant_fields = {'kind': 'story_qa', 'inputs': 'memory'}, ''
    compare = dict(variants='memnet', seeds=3, seed_mode='sequential')
  else:
    model = dict(name='transformer.Encoder', vocab_size=None, num_classes=None, max_length=None, d_model=64,
                 num_heads=4, num_encoder_layers=2, mlp_dim=128, dropout_rate=0.0, positional=opts['positional'],
                 pooling='cls', head='pool', attention=opts['attention'])
    # Training stories are at most a third as long as test_ood's: padding each split to its own longest makes a
    # training step about 3 times cheaper.
    data['pad_scope'] = 'split'
    objective, variant_fields = {'kind': 'story_qa', 'inputs': 'flat'}, 'model.attention'
    compare = dict(variants='dot_product,linear', seeds=3, seed_mode='sequential')
    optim.update(learning_rate=1e-3, grad_clip_norm=1.0)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=20)
    train.update(steps=6, batch_size=8, log_every=2, checkpoint_every=3)
    optim.update(warmup_steps=1)
    compare.update(seeds=2)
    for key, small in (('d_model', 16), ('num_heads', 2), ('mlp_dim', 32), ('num_encoder_layers', 1)):
      if key in model:
        model[key] = small
  return make_config(task='story_qa', name=f'qa{task}_{opts["model"]}', kind='story_qa', model=model, data=data,
                     train=train, optim=optim, objective=objective, compare=compare, variant_fields=variant_fields)
