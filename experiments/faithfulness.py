r"""Faithfulness numbers of a trained token tagger (an Encoder with a tagging head, e.g. MQAR recall).

  python -m experiments.faithfulness --config=configs/classification.py:task=mqar,suite,attention=linear \
      --workdir=runs/faithfulness/linear

Trains the config as experiments.train does (or resumes a finished run in the same workdir), then on the first
--examples test examples measures, at the labelled positions (targets != 0):
  accuracy              of the trained model
  tvd_permuted[_max]    output change (total variation) with every layer's rows permuted among their keys
  tvd_uniform           ... with every layer's rows uniform over their keys
  tau_rollout, tau_last Kendall's tau between gradient x input and attention rollout / the last layer's
                        head-averaged weights, over the input positions of each labelled output position
  head_drop_max/mean    accuracy drop when one head is zeroed (the largest and the mean over heads)
  first_mass, top_key_mass  attention-sink diagnostic, averaged over layers and heads
and writes them to <workdir>/faithfulness.json. See docs/interpretability.md.
"""

import json
import math
import os

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from attention_research import attention
from attention_research.analysis import ablation, faithfulness, sinks, statistics
from attention_research.layers import capture_attention
from attention_research.training import loop
from attention_research.training.config import ExperimentConfig

_CONFIG = config_flags.DEFINE_config_file('config', None, 'configs/classification.py:task=mqar,...',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir; faithfulness.json is written there.')
_EXAMPLES = flags.DEFINE_integer('examples', 64, 'Test examples measured.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the permutations.')
flags.mark_flags_as_required(['config', 'workdir'])


def measure(model, batch, variants, rng) -> dict[str, float]:
  tokens, targets = np.asarray(batch['inputs']), np.asarray(batch['targets'])
  where = targets != 0
  fn = lambda m: m(tokens)
  logits, maps = capture_attention(fn, model)
  accuracy = lambda out: float((np.asarray(out).argmax(-1) == targets)[where].mean())
  L = tokens.shape[1]
  valid = tokens != model.cfg.pad_id
  # Keys a query may see: the real tokens, and only the past for variants that read left to right.
  visible = valid[:, None, None, :]
  if any(not attention.get(v).bidirectional for v in variants):
    visible = visible & np.tril(np.ones((L, L), bool))
  numbers = {'accuracy': accuracy(logits)}
  numbers.update(ablation.counterfactual_change(fn, model, rng=rng, where=where, visible=visible))
  x = np.asarray(model.embed(tokens)) * math.sqrt(model.cfg.d_model)
  importance = ablation.gradient_importance(lambda x: model.classifier(model.encode_embeddings(x, valid)), x,
                                            where)
  rollout = statistics.attention_rollout(maps['self'])
  last = np.clip(np.asarray(maps['self'][-1]), 0, None).mean(1)
  for name, att in (('tau_rollout', rollout), ('tau_last', last)):
    numbers[name] = float(np.nanmean(faithfulness.rank_correlation(att[where], importance[where])))
  rows = ablation.head_importance(accuracy, fn, model)
  drops = [r['drop'] for r in rows]
  numbers.update(head_drop_max=float(max(drops)), head_drop_mean=float(np.mean(drops)))
  sink = sinks.sink_rows(maps)
  numbers.update({k: float(np.mean([r[k] for r in sink])) for k in ('first_mass', 'top_key_mass')})
  return numbers


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  result = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  cfg = ExperimentConfig.from_config_dict(_CONFIG.value)
  task = loop.load_task(cfg)
  n = _EXAMPLES.value
  batch = next(loop.eval_batches(task, cfg.data.test_split, n, n))
  model = result.model(0)
  variants = model.cfg.attention if isinstance(model.cfg.attention, tuple) else (model.cfg.attention,)
  numbers = measure(model, batch, variants, np.random.default_rng(_SEED.value))
  numbers.update(variant='+'.join(variants), test_accuracy=result.final_metrics[0].get('accuracy'),
                 examples=len(batch['inputs']))
  with open(os.path.join(_WORKDIR.value, 'faithfulness.json'), 'w') as f:
    json.dump(numbers, f, indent=1)
  print(json.dumps(numbers))


if __name__ == '__main__':
  app.run(main)
