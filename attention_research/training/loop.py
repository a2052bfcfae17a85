"""train_and_evaluate: one run of one config, for one member or a vmapped group of members.

    result = train_and_evaluate(config, workdir)                      # experiments/train.py
    result = train_and_evaluate(config, workdir, members=ms, vmap=True)  # seeds / sweep in one step

A rerun with the same workdir resumes from the newest intact checkpoint (model, optimiser, RNG, data
position) and ends with the same metrics as an uninterrupted run. Before anything in the workdir is touched,
its config.json is compared with the config: a difference outside RESUMABLE_FIELDS is refused, listing the
fields (config.train.restart=True starts over on purpose; config.train.allow_changes resumes with named
optimiser fields changed). A periodic checkpoint is committed only once the next step's loss, computed from
its parameters, is finite and under DIVERGED_LOSS_FACTOR times the first step's (finite parameters of 1e10 are
no better than NaN), so the checkpoint a NonFiniteLossError names resumes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from attention_research.training import objectives, optim, seeds, step as step_lib, writers
from attention_research.training.checkpoint import Checkpointer, NonFiniteStateError
from attention_research.training.config import CompareDefaults, DataConfig, ExperimentConfig, OptimConfig, TrainConfig
from attention_research.training.seeds import Member
from attention_research.training.sharding import DataParallel


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


class WorkdirError(ValueError):
  """The workdir holds a run that this config cannot resume (another config, other members, more steps)."""


# Fields that may differ between a run and the workdir it resumes: how long to train on (the learning-rate
# schedule is then laid over the new number of steps), how often to log / evaluate / save, and what and where
# to evaluate (data options named test_* change only a builder's test split, e.g. spoken_digits' test_voices).
# Every other field changes what the checkpoints mean and is refused.
RESUMABLE_FIELDS = ('name', 'compare.', 'train.steps', 'train.log_every', 'train.eval_every', 'train.fsdp',
                    'train.sequence', 'train.checkpoint_every', 'train.keep_checkpoints', 'train.restart',
                    'train.allow_changes', 'data.data_dir', 'data.eval_split', 'data.test_split',
                    'data.eval_batch_size', 'data.eval_examples', 'data.options.test_',
                    'data.pad_scope')  # padding is masked: it changes the cost of a step, not what is learned
# A checkpoint whose parameters give a loss this many times the loss of the untrained model (the run's first
# step) has diverged, though finite: it is discarded rather than committed, so that it is never resumed.
DIVERGED_LOSS_FACTOR = 10.0
WORKDIR_OUTPUTS = ('checkpoints', 'metrics.jsonl', 'tb', 'result.json', 'config.json')


def _flat(d: dict, prefix: str = '') -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict) and v:
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _section_defaults() -> dict:
  """Flat defaults of the config sections that are dataclasses: {'data.pad_scope': 'task', ...}."""
  sections = {'data': DataConfig(), 'train': TrainConfig(), 'optim': OptimConfig(), 'compare': CompareDefaults()}
  return {k: v for name, section in sections.items()  # mappings (data.options) have no default keys to fill
          for k, v in _flat(json.loads(json.dumps(dataclasses.asdict(section), default=str)), f'{name}.').items()
          if not isinstance(v, dict)}


def _has_checkpoints(workdir: str) -> bool:
  directory = os.path.join(workdir, 'checkpoints')
  return os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))


def _refuse_comparison_workdir(workdir: str):
  """A comparison's or grid's workdir holds one run per subdirectory and tables at the top; a run started there
  would train from scratch beside them instead of resuming the run that was meant."""
  if not any(os.path.exists(os.path.join(workdir, n)) for n in ('results.json', 'grid.json')):
    return
  runs = sorted(n for n in os.listdir(workdir) if os.path.exists(os.path.join(workdir, n, 'config.json')))
  if runs:
    raise WorkdirError(f'{workdir} holds a comparison (its results table and the runs {runs}), not a run of its '
                       f'own; resume or evaluate one of them with --workdir={os.path.join(workdir, runs[0])}, or '
                       'use another --workdir for a new run.')


def check_workdir(workdir: str, cfg: ExperimentConfig, labels: list[str], vmap: bool) -> list[str]:
  """Refuses to resume a workdir whose config.json differs outside RESUMABLE_FIELDS; reads, writes nothing.

  Returns the resumable fields that differ, as 'field: old -> new' lines.
  """
  path = os.path.join(workdir, 'config.json')
  if not _has_checkpoints(workdir):
    _refuse_comparison_workdir(workdir)
    return []
  if not os.path.exists(path):
    return []
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise WorkdirError(f'{path} is unreadable ({type(e).__name__}: {e}), so {workdir} cannot be resumed safely; '
                     'start over with --config.train.restart=True or use another --workdir.') from e
  if saved.get('members') != labels:
    raise WorkdirError(f'{workdir} holds a run of members {saved.get("members")}, not {labels}; '
                     'use another --workdir.')
  old = _flat(saved.get('config', {}))
  new = _flat(json.loads(json.dumps(cfg.model_dump(), default=str)))
  old['vmap'], new['vmap'] = saved.get('vmap'), vmap
  # A field added to the config after the run was saved reads as its default there (the run used that behaviour).
  for k, v in _section_defaults().items():
    old.setdefault(k, v)
  differ = sorted(k for k in old.keys() | new.keys() if old.get(k, '<absent>') != new.get(k, '<absent>'))
  lines = {k: f'config.{k}: {old.get(k, "<absent>")!r} in {path}, {new.get(k, "<absent>")!r} now' for k in differ}
  allowed = set(cfg.train.allowed_changes)
  refused = [k for k in differ if not k.startswith(RESUMABLE_FIELDS) and k not in allowed]
  if refused:
    raise WorkdirError(f'{workdir} holds a run of another config, so it cannot be resumed; these fields differ:\n  ' +
                     '\n  '.join(lines[k] for k in refused) +
                     '\nUse another --workdir, start over with --config.train.restart=True, or resume with '
                     'optimiser fields changed on purpose with --config.train.allow_changes=optim.<field>,...')
  return [lines[k] for k in differ]


def _with_hyperparams(opt_state, fresh, names: Sequence[str]):
  """The restored optimiser state with the named injected hyperparameters taken from the config's fresh state.

  inject_hyperparams keeps them in the state, so a changed learning rate would otherwise be overwritten by the
  checkpoint's on resume.
  """
  if not names or not hasattr(opt_state, 'hyperparams'):
    return opt_state
  return opt_state._replace(hyperparams={**opt_state.hyperparams, **{k: fresh.hyperparams[k] for k in names}})


def clear_workdir(workdir: str):
  """Deletes what a run writes into its workdir (config.train.restart)."""
  for name in WORKDIR_OUTPUTS:
    path = os.path.join(workdir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)


@dataclasses.dataclass
class RunResult:
  members: list[Member]
  final_metrics: list[dict[str, float]]  # per member, on config.data.test_split
  num_params: int
  steps: int
  steps_per_second: float
  compile_seconds: float
  peak_memory_bytes: int  # XLA memory analysis of the compiled train step (arguments + outputs + temporaries)
  workdir: str
  resumed_from: int | None = None
  stopped_early: bool = False
  wall_seconds: float = 0.0
  # The trained models and their objective, for --plot and attention statistics; not written to result.json.
  objective: Any = dataclasses.field(default=None, repr=False, compare=False, metadata={'json': False})
  model_of: Callable[[int], Any] | None = dataclasses.field(default=None, repr=False, compare=False,
                                                             metadata={'json': False})

  def to_json(self) -> dict:
    # Field by field, not dataclasses.asdict, which would deep-copy the models and the task's data.
    d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get('json', True)}
    d['members'] = [m.label for m in self.members]
    return d

  def model(self, member: int = 0):
    """The trained model of one member (its index in `members`)."""
    if self.model_of is None:
      raise ValueError('this RunResult holds no trained models.')
    if not 0 <= member < len(self.members):
      raise ValueError(f'member {member} is out of range for {len(self.members)} members.')
    return self.model_of(member)


def _training_speed(workdir: str) -> dict:
  """steps/s, compile seconds and peak memory of the run that trained `workdir`, from its result.json; empty where
  there is none or it is unreadable (then the re-evaluation reports them as unmeasured)."""
  try:
    with open(os.path.join(workdir, 'result.json')) as f:
      old = json.load(f)
  except (OSError, ValueError):
    return {}
  keep = {}
  for k in ('steps_per_second', 'compile_seconds', 'peak_memory_bytes'):
    v = old.get(k) if isinstance(old, dict) else None
    if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
      keep[k] = v
  return keep


def load_task(cfg: ExperimentConfig):
  from attention_research import data  # pylint: disable=g-import-not-at-top  (the runner's view of data)
  return data.load_task(cfg.task, size=cfg.data.size, data_dir=cfg.data.data_dir, **cfg.data.options)


def eval_batches(task, split: str, batch_size: int, examples: int, pad_scope: str = 'task'):
  """The first `examples` rows (all if 0) of a split, in order, in batches."""
  seen = 0
  for batch in task.batches(split, batch_size=batch_size, seed=0, shuffle=False, repeat=False,
                            drop_remainder=False, pad_scope=pad_scope):
    n = len(next(iter(batch.values())))
    if examples and seen + n > examples:
      batch = {k: v[:examples - seen] for k, v in batch.items()}
      n = examples - seen
    if n <= 0:
      return
    yield batch
    seen += n
    if examples and seen >= examples:
      return


def _check_split(task, split: str, field: str):
  splits = list(getattr(task, 'splits', ()) or ())
  if splits and split not in splits:
    raise ValueError(f'config.{field}={split!r} is not a split of task {getattr(task, "name", "")!r}; '
                     f'splits: {splits}.')


def _per_member(metrics: dict, n: int, vmap: bool) -> list[dict[str, float]]:
  if not vmap:
    return [{k: float(v) for k, v in metrics.items()}]
  return [{k: float(np.asarray(v)[i]) for k, v in metrics.items()} for i in range(n)]


def _mean(dicts: Sequence[dict[str, float]]) -> dict[str, float]:
  return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]} if dicts else {}


# Compiled programs outlive a run: the seeds of a sequential comparison share one compiled step and
# one set of compiled evaluation functions. Keys hold the task object itself so its id is not reused.
_OBJECTIVES: dict = {}
_STEPS: dict = {}


def _objective(task, options: dict):
  key = (id(task), json.dumps(options, sort_keys=True, default=str))
  if key not in _OBJECTIVES:
    _OBJECTIVES[key] = (task, objectives.make(task, options))
  return _OBJECTIVES[key][1]


def _step_key(objective, graphdef, cfg: ExperimentConfig, vmap: bool, dp: DataParallel):
  static_optim = {k: v for k, v in dataclasses.asdict(cfg.optim).items() if k not in optim.SWEEPABLE}
  return (id(objective), graphdef, json.dumps(static_optim, sort_keys=True), cfg.optim.grad_clip_norm > 0,
          cfg.train.steps, vmap, tuple(dp.mesh.devices.flat), dp.fsdp, dp.sequence)


def train_and_evaluate(config, workdir: str, *, members: Sequence[Member] | None = None, vmap: bool = False,
                       task=None, stop_after_steps: int | None = None, devices=None, quiet: bool = False,
                       tensorboard: bool = True) -> RunResult:
  """Trains config's model on its task in workdir, resuming if a checkpoint exists; evaluates at the end.

  stop_after_steps: stop like a killed process after that many steps of this call (no final save or
  evaluation); for tests and for splitting a long run into chunks.
  """
  t_start = time.perf_counter()
  cfg = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_config_dict(config)
  members = list(members or [Member(cfg.seed)])
  if len(members) > 1 and not vmap:
    raise ValueError('several members train together only with vmap=True; otherwise run them one by one.')
  if vmap:
    seeds.check_vmappable(members, cfg)
  member_cfgs = [m.config(cfg) for m in members]
  labels = [m.label for m in members]
  total = cfg.train.steps

  # Everything that can be wrong with the config fails here, before any model is built or compiled.
  task = task if task is not None else load_task(cfg)
  objective = _objective(task, cfg.objective)
  for mc in member_cfgs:
    objectives.build_model_config(mc.model, objective.model_defaults())
  _check_split(task, 'train', 'task (train split)')
  _check_split(task, cfg.data.eval_split, 'data.eval_split')
  _check_split(task, cfg.data.test_split, 'data.test_split')
  dp = DataParallel(devices, fsdp=cfg.train.fsdp, sequence=cfg.train.sequence)
  dp.check_batch_size(cfg.train.batch_size)
  eval_bs = -(-cfg.data.eval_batch_size // dp.num_devices) * dp.num_devices
  # Across hosts, evaluation outputs split over other processes' devices could not be read back here: every
  # process evaluates the whole batch instead (evaluation is a small share of the time).
  objective.put = (lambda b: dp.put_batch(b, 0)) if jax.process_count() == 1 else dp.put_replicated

  # The workdir is compared with the config before anything in it is written.
  if cfg.train.restart:
    if os.path.isdir(workdir):
      writers.log(f'config.train.restart: deleting the checkpoints and metrics in {workdir}', quiet)
      clear_workdir(workdir)
  else:
    for line in check_workdir(workdir, cfg, labels, vmap):
      writers.log(f'resuming with {line}', quiet)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:  # one writer of a workdir that several hosts share
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      json.dump({'config': cfg.model_dump(), 'members': labels, 'vmap': vmap}, f, indent=1, default=str)

  # Model, optimiser and train state of every member.
  states, graphdef, rng_state, tx = [], None, None, None
  for m, mc in zip(members, member_cfgs):
    model = objective.init_model(mc.model, m.seed)
    m_tx = optim.make_optimizer(mc.optim, total)
    m_graphdef, m_rng_state, state = step_lib.init_state(model, m_tx, m.seed)
    if graphdef is None:
      graphdef, rng_state, tx = m_graphdef, m_rng_state, m_tx
    elif m_graphdef != graphdef:
      raise ValueError('vmapped members must have identical model structure.')
    states.append(state)
  num_params = step_lib.num_params(states[0].params)
  state = dp.put_state(seeds.stack(states) if vmap else states[0])
  del states

  # The step closes over rng_state only for its structure: every step reseeds all RNG streams.
  key = _step_key(objective, graphdef, cfg, vmap, dp)
  if key not in _STEPS:
    step_fn = step_lib.make_train_step(objective.loss, graphdef, rng_state, tx)
    if vmap:
      step_fn = jax.vmap(step_fn)
    _STEPS[key] = step_lib.CompiledStep(step_fn, out_shardings=(dp.state_shardings(state), dp.replicated))
  train_step = _STEPS[key]

  iters = [task.batches('train', batch_size=cfg.train.batch_size, seed=m.seed, shuffle=True, repeat=True,
                        drop_remainder=True, pad_scope=cfg.data.pad_scope) for m in members]
  writer = writers.MetricWriter(workdir, labels, tensorboard=tensorboard)
  ckpt = Checkpointer(os.path.join(workdir, 'checkpoints'), keep=cfg.train.keep_checkpoints)
  try:
    restored = ckpt.restore_latest(state)
  except Exception:
    ckpt.close()
    writer.close()
    raise
  start = resumed_from = restored[0] if restored else None
  if restored is not None:
    fresh_opt_state = state.opt_state
    _, state, data_states, meta = restored
    changed = [f.split('.', 1)[1] for f in cfg.train.allowed_changes if f.split('.', 1)[1] in optim.SWEEPABLE]
    state = state.replace(opt_state=_with_hyperparams(state.opt_state, fresh_opt_state, changed))
    if start > total:
      ckpt.close()
      raise WorkdirError(f'{workdir} holds a checkpoint at step {start}, beyond config.train.steps={total}; '
                       'use another --workdir or --config.train.restart=True.')
    if meta.get('members') != labels:
      ckpt.close()
      raise WorkdirError(f'{workdir} holds a run of members {meta.get("members")}, not {labels}; '
                       'use another --workdir.')
    for it, s in zip(iters, data_states):
      it.set_state(s)
    writers.log(f'resumed from step {start} in {ckpt.directory}', quiet)
  start = start or 0
  writer.truncate_after(start)
  last_saved = last_good = resumed_from
  uncommitted = None  # a saved step waiting for the loss of its parameters
  first_loss = None  # per member: the loss of the untrained model, the yardstick of divergence
  if restored and meta.get('first_loss') is not None:
    first_loss = np.asarray(meta['first_loss'], np.float64)

  def model_of(i: int):
    s = jax.tree.map(lambda x: x[i], state) if vmap else state
    return step_lib.merge_model(graphdef, s.params, rng_state, s.rest)

  def evaluate(split: str) -> list[dict[str, float]]:
    with dp.context():
      return [objective.evaluate(model_of(i), eval_batches(task, split, eval_bs, cfg.data.eval_examples,
                                                           cfg.data.pad_scope))
              for i in range(len(members))]

  def non_finite(what: str) -> NonFiniteLossError:
    where = (f'the last good checkpoint is step {last_good} in {ckpt.directory}' if last_good is not None
             else 'no checkpoint that resumes was saved (rerun from the start)')
    return NonFiniteLossError(
        f'{what}; stopped. {where}. Lower optim.learning_rate, enable optim.grad_clip_norm or add warmup, then '
        'rerun (resume with --config.train.allow_changes=optim.learning_rate,... or start over with '
        '--config.train.restart=True).')

  def save(at: int, commit: bool):
    meta = {'members': labels, 'step': at, 'config': cfg.model_dump(),
            'first_loss': None if first_loss is None else first_loss.tolist()}
    try:
      ckpt.save(at, state, [it.get_state() for it in iters], json.loads(json.dumps(meta, default=str)),
                commit=commit)
    except NonFiniteStateError as e:
      raise non_finite(str(e)) from e

  progress = writers.Progress(total)
  pending: list[tuple[int, Any]] = []
  log_buffer: list[list[dict[str, float]]] = []
  step = start
  stopped = False
  try:
    while step < total:
      if stop_after_steps is not None and step - start >= stop_after_steps:
        stopped = True
        break
      raw = [next(it) for it in iters]
      batch = dp.put_batch(seeds.stack_batches(raw) if vmap else raw[0], 1 if vmap else 0)
      with dp.context():  # a sequence axis: attention layers trace as attention.ring
        state, metrics = train_step(state, batch)
      step += 1
      pending.append((step, metrics))
      if step == 1:
        first_loss = np.atleast_1d(np.asarray(jax.device_get(metrics['loss']), np.float64))
      if uncommitted is not None:  # this step's loss was computed from the parameters it holds
        losses = np.atleast_1d(np.asarray(jax.device_get(metrics['loss']), np.float64))
        if not np.isfinite(losses).all():
          ckpt.discard(uncommitted)
          i = int(np.argmin(np.isfinite(losses)))
          raise non_finite(f'training loss became {losses[i]} at step {step} (member {labels[i]}), so the '
                           f'checkpoint of step {uncommitted} was discarded')
        diverged = (np.zeros_like(losses, bool) if first_loss is None
                    else (first_loss > 0) & (losses > DIVERGED_LOSS_FACTOR * first_loss))
        if diverged.any():
          i = int(np.argmax(diverged))
          ckpt.discard(uncommitted)
          writers.log(f'the loss from the parameters of step {uncommitted} is {losses[i]:.4g} (member {labels[i]}), '
                      f'over {DIVERGED_LOSS_FACTOR:g}x the first step\'s {first_loss[i]:.4g}: the run is diverging, '
                      'its checkpoint is discarded.', quiet)
        else:
          ckpt.commit(uncommitted)
          last_good = uncommitted
        uncommitted = None
      if step == start + 1:
        jax.block_until_ready(metrics)
        progress.start(step)
      at_log = step % cfg.train.log_every == 0 or step == total
      at_ckpt = bool(cfg.train.checkpoint_every) and step % cfg.train.checkpoint_every == 0 and step < total
      at_eval = bool(cfg.train.eval_every) and step % cfg.train.eval_every == 0 and step < total
      if not (at_log or at_ckpt or at_eval):
        continue
      host = jax.device_get(pending)
      progress.mark(step)
      pending = []
      for s, m in host:
        for label, values in zip(labels, _per_member(m, len(members), vmap)):
          if not math.isfinite(values['loss']):
            raise non_finite(f'training loss became {values["loss"]} at step {s} (member {label})')
        log_buffer.append(_per_member(m, len(members), vmap))
      t0 = time.perf_counter()
      if at_log:
        per_member = [_mean([b[i] for b in log_buffer]) for i in range(len(members))]
        for i, mc in enumerate(member_cfgs):
          per_member[i]['learning_rate'] = optim.learning_rate(mc.optim, total, step - 1)
        log_buffer = []
        writer.write(step, 'train', per_member)
        writers.log(progress.line(step, per_member[0]), quiet)
      if at_eval:
        evals = evaluate(cfg.data.eval_split)
        writer.write(step, cfg.data.eval_split, evals)
        writers.log(f'step {step} {cfg.data.eval_split}: {evals[0]}', quiet)
      if at_ckpt:
        save(step, commit=False)
        last_saved, uncommitted = step, step
      progress.exclude(time.perf_counter() - t0)

    if uncommitted is not None:  # stopped right after saving: finite, and the next call resumes it
      ckpt.commit(uncommitted)
      last_good, uncommitted = uncommitted, None
    final: list[dict[str, float]] = []
    if not stopped:
      if last_saved != total:
        save(total, commit=True)
        last_saved = last_good = total
      final = evaluate(cfg.data.test_split)
      writer.write(total, cfg.data.test_split, final)
      for label, metrics in zip(labels, final):
        writers.log(f'final {cfg.data.test_split} [{label}]: {metrics}', quiet)
  finally:
    ckpt.close()
    writer.close()

  speed = dict(steps_per_second=progress.steps_per_second, compile_seconds=train_step.compile_seconds,
               peak_memory_bytes=train_step.memory_bytes)
  if resumed_from == total:  # nothing trained in this call: re-evaluating keeps the training run's speed figures
    speed.update(_training_speed(workdir))
  result = RunResult(
      members=members, final_metrics=final, num_params=num_params, steps=step, **speed,
      workdir=os.path.abspath(workdir), resumed_from=resumed_from, stopped_early=stopped,
      wall_seconds=time.perf_counter() - t_start, objective=objective, model_of=model_of)
  if not stopped:
    with open(os.path.join(workdir, 'result.json'), 'w') as f:
      json.dump(result.to_json(), f, indent=1, default=str)
  return result
