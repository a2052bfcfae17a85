r"""Where the cross-attention of a trained translation model points, against the task's gold word alignment.

  python -m experiments.alignment_probe --examples=100 \
      --workdirs=runs/translation/dot_product/seed=0,runs/translation/additive/seed=0

Restores each finished run (the newest checkpoint of a workdir written by experiments.train or
experiments.compare; nothing is trained) and, teacher-forced on the first --examples test examples, prints one
JSON line per workdir with corpus AER (argmax links, as evaluation's 'aer', objectives.alignment):
  aer[layer][head]          per decoder layer and head, and 'mean' (heads averaged, what evaluation reports)
  aer_row_shift             last layer, heads averaged, with target t read from decoder row t + shift (-1, +1):
                            row t is the state that predicts target t (its input is target t - 1)
  aer_without_tag           last layer, heads averaged, with the language tag (source 0) left out of the argmax
  landing                   where those argmax links land (EOS column included), as shares of the target pieces,
                            in this order: tag, eos, gold, gold_source_pm1 (a source neighbour of a gold link),
                            gold_of_previous / gold_of_next (a gold link of target t -+ 1), function ('-', ',',
                            ';', 'and'), other
  gold_mass, uniform_mass   attention on the gold source pieces of a linked target piece, and what uniform
                            attention over the source (with EOS) would give
See docs/interpretability.md, "In evaluation and result tables".
"""

import json
import os

import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from flax import nnx

from attention_research.analysis import alignment_error
from attention_research.layers import capture_attention
from attention_research.training import loop, optim, step as step_lib
from attention_research.training.checkpoint import Checkpointer
from attention_research.training.config import ExperimentConfig
from attention_research.training.objectives import alignment, base
from attention_research.training.objectives.seq2seq import shift_right

_WORKDIRS = flags.DEFINE_list('workdirs', None, 'Finished translation runs (each with config.json, checkpoints).')
_EXAMPLES = flags.DEFINE_integer('examples', 100, 'First test examples measured.')
flags.mark_flags_as_required(['workdirs'])

FUNCTION_PIECES = ('-', ',', ';', 'and')


def restore(workdir: str):
  """(task, objective, model) of a finished run: its config and the newest intact checkpoint, nothing trained."""
  with open(os.path.join(workdir, 'config.json')) as f:
    cfg = ExperimentConfig.from_config_dict(json.load(f)['config'])
  task = loop.load_task(cfg)
  objective = loop._objective(task, cfg.objective)  # pylint: disable=protected-access
  graphdef, rng_state, state = step_lib.init_state(objective.init_model(cfg.model, cfg.seed),
                                                   optim.make_optimizer(cfg.optim, cfg.train.steps), cfg.seed)
  ckpt = Checkpointer(os.path.join(workdir, 'checkpoints'), keep=cfg.train.keep_checkpoints)
  try:
    restored = ckpt.restore_latest(state)
  finally:
    ckpt.close()
  if restored is None:
    raise ValueError(f'{workdir} holds no checkpoint to restore.')
  return cfg, task, objective, step_lib.merge_model(graphdef, restored[1].params, rng_state, restored[1].rest)


def argmax_links(w_TS, T: int, first: int, end: int, shift: int = 0) -> frozenset:
  """{(t, argmax over source first..end-1 of row t + shift)} for t < T whose row exists."""
  return frozenset((t, first + int(w_TS[t + shift, first:end].argmax())) for t in range(T)
                   if 0 <= t + shift < w_TS.shape[0])


def landing(w_TS, T: int, S: int, gold: frozenset, function: list[bool]) -> tuple[dict, float, float, int]:
  """(counts per landing category, gold mass, uniform mass, linked targets) of one example's argmax links."""
  by_t: dict[int, set] = {}
  for t, s in gold:
    by_t.setdefault(t, set()).add(s)
  counts = dict.fromkeys(('tag', 'eos', 'gold', 'gold_source_pm1', 'gold_of_previous', 'gold_of_next', 'function',
                          'other'), 0)
  gold_mass = uniform_mass = 0.0
  for t in range(T):
    row = w_TS[t, :S + 1]  # the EOS column included
    a, g = int(row.argmax()), by_t.get(t, set())
    if g:
      gold_mass += float(row[sorted(g)].sum())
      uniform_mass += len(g) / (S + 1)
    key = ('tag' if a == 0 else 'eos' if a == S else 'gold' if a in g else
           'gold_source_pm1' if g & {a - 1, a + 1} else 'gold_of_previous' if a in by_t.get(t - 1, ()) else
           'gold_of_next' if a in by_t.get(t + 1, ()) else 'function' if function[a] else 'other')
    counts[key] += 1
  return counts, gold_mass, uniform_mass, sum(1 for t in by_t if t < T)


def probe(workdir: str, examples: int) -> dict:
  cfg, task, objective, model = restore(workdir)
  info = objective.info
  pad, eos, bos = info.get('pad_id', 0), info.get('eos_id', 2), info.get('bos_id', 1)
  batch = next(loop.eval_batches(task, cfg.data.test_split, examples, examples))
  call = lambda m: m(jnp.asarray(batch['inputs']), shift_right(jnp.asarray(batch['targets']), bos),
                     deterministic=True)
  _, maps = nnx.jit(lambda m: capture_attention(call, m))(model)
  cross_BLNTS = np.stack([np.asarray(w, np.float32) for w in maps['cross']], 1)
  src, n_layers, n_heads = np.asarray(batch['inputs']), cross_BLNTS.shape[1], cross_BLNTS.shape[2]
  S_B = ((src != pad) & (src != eos)).sum(-1)
  T_B = alignment.target_lengths(batch['targets'], pad_id=pad, eos_id=eos)
  gold = [alignment.gold_links(g) for g in np.asarray(batch[alignment.ALIGNMENT_KEY])]
  labels = task.tokenizers['inputs']
  rows = range(len(src))

  def aer(weights, first=0, shift=0):
    predicted = [argmax_links(weights(i), T_B[i], first, S_B[i], shift) for i in rows]
    return round(alignment_error.corpus_alignment_error_rate(predicted, gold), 4)

  last = lambda i: cross_BLNTS[i, -1].mean(0)
  out = {'workdir': workdir, 'examples': len(src), 'aer': [
      {'mean': aer(lambda i, l=l: cross_BLNTS[i, l].mean(0)),
       **{h: aer(lambda i, l=l, h=h: cross_BLNTS[i, l, h]) for h in range(n_heads)}} for l in range(n_layers)]}
  out['aer_row_shift'] = {shift: aer(last, shift=shift) for shift in (-1, 1)}
  out['aer_without_tag'] = aer(last, first=1)
  totals, gold_mass, uniform_mass, linked = {}, 0.0, 0.0, 0
  for i in rows:
    function = [p.strip() in FUNCTION_PIECES for p in base.token_labels(labels, src[i])]
    counts, g, u, k = landing(last(i), T_B[i], S_B[i], gold[i], function)
    totals = {key: totals.get(key, 0) + v for key, v in counts.items()}
    gold_mass, uniform_mass, linked = gold_mass + g, uniform_mass + u, linked + k
  out['landing'] = {key: round(v / sum(totals.values()), 3) for key, v in totals.items()}
  out.update(gold_mass=round(gold_mass / linked, 3), uniform_mass=round(uniform_mass / linked, 3))
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  for workdir in _WORKDIRS.value:
    print(json.dumps(probe(workdir, _EXAMPLES.value)), flush=True)


if __name__ == '__main__':
  app.run(main)
