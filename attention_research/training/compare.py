"""Compare attention variants of one config on the same budget, and the default suite.

    table = compare(config, workdir, variants=['dot_product', 'linear'], seeds=3, seed_mode='vmap')

Each variant trains every seed (and sweep value) with the same config apart from the fields in
config.variant_fields; the table has one row per variant and sweep value. A variant that crashes
becomes a row with its error and the others still run. Workdirs: <workdir>/<variant>[/<member>].

A variant may be a per-layer hybrid of a Transformer model: names joined by '+', one per layer
('gated_delta+gated_delta+dot_product' for a 3-layer stack). '+' survives the comma-separated --variants flag
and names the hybrid's row and workdir.

Each row also has the decoding state size (`state_size`) and attention statistics of every seed on one fixed
example (the test split's first; see `plots`), and plot=True draws that example's attention for each variant's
first seed in <workdir>/plots/<variant>/.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from typing import Sequence

import numpy as np
from flax import nnx

from attention_research import layers
from attention_research.training import loop, objectives, plots, results, seeds as seeds_lib
from attention_research.training.config import ExperimentConfig
from attention_research.training.objectives import seq2seq
from attention_research.training.seeds import Member


def parse_list(text: str | Sequence[str] | None) -> list[str]:
  if text is None:
    return []
  items = text.split(',') if isinstance(text, str) else list(text)
  return [i.strip() for i in items if i and i.strip()]


def variant_config(cfg: ExperimentConfig, variant: str) -> ExperimentConfig:
  out = cfg.replace(**{field: variant for field in cfg.variant_fields})
  extra = cfg.compare.variant_options.get(variant)
  if not extra:
    return out
  model = dict(out.model)
  model['attention_options'] = {**(model.get('attention_options') or {}), **extra}
  return dataclasses.replace(out, model=model)


# Stands in for the sizes a task fills in (vocabulary, classes, lengths, image size) when a variant name is
# checked before the task is loaded: above the special token ids, and divisible by small patch sizes.
_PROBE_SIZE = 64


def _probe_model_config(model: dict) -> dict:
  """config.model with a placeholder for every size the task fills in: a None where the model has no
  default or a default other than None (None defaults such as num_kv_heads keep their meaning)."""
  model = dict(model)
  cfg_cls = objectives.base.model_config_class(objectives.resolve_model(model['name']))
  for f in dataclasses.fields(cfg_cls):
    if model.get(f.name) is None and f.default is not None and f.default_factory is dataclasses.MISSING:
      model[f.name] = _PROBE_SIZE
  return model


def _model_config_error(model: dict) -> str | None:
  try:
    objectives.build_model_config(model)
  except ValueError as e:
    return str(e)
  return None


def check_variants(cfg: ExperimentConfig, variants: Sequence[str]):
  """Unknown variant names are a bad flag: fail before training anything (and before loading the task).

  A name counts as known when the attention registry has it or the model's config accepts it (an RNN
  seq2seq model takes 'bahdanau' or 'luong'); registered variants that a model then rejects become
  crashed rows instead. The model config is built with placeholder sizes where the task would fill them
  in, and a name is rejected only when it fails where the config's own variant does not fail the same way.
  """
  from attention_research import attention  # pylint: disable=g-import-not-at-top
  if not variants:
    raise ValueError('--variants is empty.')
  if not cfg.variant_fields and len(variants) > 1:
    raise ValueError(f'config {cfg.name!r} has no variant_fields, so its variants would all train the same '
                     f'model; got --variants={",".join(variants)}.')
  if len(set(variants)) != len(variants):
    raise ValueError(f'--variants repeats a name: {list(variants)}.')
  unregistered = [v for v in variants if v not in attention.VARIANTS]
  if not unregistered:
    return
  baseline = _model_config_error(_probe_model_config(cfg.model))
  for v in unregistered:
    error = _model_config_error(_probe_model_config(variant_config(cfg, v).model))
    if error is not None and error != baseline:
      raise ValueError(f'--variants: unknown variant {v!r} for {cfg.model["name"]} ({error}); registered attention '
                       f'variants: {sorted(attention.VARIANTS)}.')


STATE_SIZE_NOTE = ('state size: floats per sequence that decoding keeps in one attention layer (key/value cache, '
                   'window or recurrent state, from the registry\'s state_size at the task\'s sequence length), '
                   'the mean over the model\'s attention layers (a hybrid\'s per-layer mean).')


def state_size(model) -> float | None:
  """Mean over the model's attention layers of the registry's state_size at the layer's max_length (the task's
  sequence length, which the task fills into the model config); None when it has none with a known length."""
  sizes = [m.info.state_size(num_kv_heads=m.num_kv_heads, head_dim=m.head_dim, value_dim=m.head_dim,
                             length=m.max_length, **m.variant_options, **m.layer_options)
           for _, m in nnx.iter_graph(model) if isinstance(m, layers.MultiHeadAttention) and m.max_length]
  return float(np.mean(sizes)) if sizes else None


def _model_state_size(run) -> float | None:
  try:
    return state_size(run.model(0))
  except ValueError:  # a run that keeps no trained model
    return None


def _row_from_runs(variant: str, sweep: str, runs: list[tuple[Member, dict]], result_meta: dict,
                   seed_mode: str, attention: dict[Member, dict[str, float]] | None = None) -> results.Row:
  metrics: dict[str, list[float]] = {}
  for _, final in runs:
    for k, v in final.items():
      if k != 'examples' and isinstance(v, (int, float)):
        metrics.setdefault(k, []).append(float(v))
  stats: dict[str, list[float]] = {}
  for m, _ in runs:
    for k, v in (attention or {}).get(m, {}).items():
      stats.setdefault(k, []).append(float(v))
  return results.Row(variant=variant, sweep=sweep, seeds=[m.seed for m, _ in runs], metrics=metrics,
                     seed_mode=seed_mode, attention=stats, **result_meta)


def _attention_of_runs(objective, runs, batch, plot_dir: str | None) -> dict[Member, dict[str, float]]:
  """Attention statistics of every trained member on the fixed example; figures of the first in plot_dir."""
  out = {}
  for run, pairs in runs:
    for i, (m, _) in enumerate(pairs):
      view = plots.attention_view(objective, run.model(i), batch)
      out[m] = plots.attention_summary(view)
      if plot_dir and len(out) == 1:
        plots.write_figures(view, plot_dir, summary=out[m])
  return out


# A task's out-of-distribution test split: when the task has one, every trained member is also evaluated on it
# and the table shows ood_<metric> beside each metric of the test split.
OOD_SPLIT = 'test_ood'


def _add_ood_metrics(cfg: ExperimentConfig, task, runs) -> None:
  if OOD_SPLIT not in (getattr(task, 'splits', ()) or ()):
    return
  for run, pairs in runs:
    for i, (_, final) in enumerate(pairs):
      batches = loop.eval_batches(task, OOD_SPLIT, cfg.data.eval_batch_size, cfg.data.eval_examples,
                                 cfg.data.pad_scope)
      final.update({f'ood_{k}': v for k, v in run.objective.evaluate(run.model(i), batches).items()
                    if k != 'examples'})


def compare(config, workdir: str, *, variants: Sequence[str] | str | None = None, seeds: int | None = None,
            seed_mode: str | None = None, sweep: str | None = None, task=None, quiet: bool = False,
            title: str | None = None, devices=None, plot: bool = False) -> results.Table:
  cfg = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_config_dict(config)
  variants = parse_list(variants) or parse_list(cfg.compare.variants)
  seeds = cfg.compare.seeds if seeds is None else seeds
  seed_mode = seed_mode or cfg.compare.seed_mode
  if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
    raise ValueError(f'--seeds must be a positive integer, got {seeds!r}.')
  if seed_mode not in ('vmap', 'sequential'):
    raise ValueError(f"--seed_mode must be 'vmap' or 'sequential', got {seed_mode!r}.")
  check_variants(cfg, variants)
  sweep = sweep if sweep is not None else (cfg.compare.sweep or None)
  sweep_spec = seeds_lib.parse_sweep(sweep, cfg)
  members = seeds_lib.make_members(seeds, sweep_spec)
  if seed_mode == 'vmap':
    seeds_lib.check_vmappable(members, cfg)
  task = task if task is not None else loop.load_task(cfg)
  objective = loop._objective(task, cfg.objective)  # pylint: disable=protected-access

  rows: list[results.Row] = []
  example = None
  attention_problems: dict[str, list[str]] = {}  # message -> variants, so one cause is one note
  for variant in variants:
    vcfg = variant_config(cfg, variant)
    vdir = os.path.join(workdir, variant)
    sweeps = sorted({m.sweep_label for m in members}, key=[m.sweep_label for m in members].index)
    t0 = time.perf_counter()
    try:
      if seed_mode == 'vmap':
        run = loop.train_and_evaluate(vcfg, vdir, members=members, vmap=True, task=task, quiet=quiet,
                                      devices=devices)
        runs = [(run, list(zip(run.members, run.final_metrics)))]
      else:
        runs = []
        for m in members:
          run = loop.train_and_evaluate(vcfg, os.path.join(vdir, m.label), members=[m], task=task, quiet=quiet,
                                        devices=devices)
          runs.append((run, [(m, run.final_metrics[0])]))
      _add_ood_metrics(vcfg, task, runs)
      # Statistics and figures are extras: when a model cannot give its weights, the row keeps its metrics.
      attention = {}
      try:
        example = plots.example_batch(task, cfg.data.test_split) if example is None else example
        attention = _attention_of_runs(objective, runs, example,
                                       os.path.join(workdir, 'plots', variant) if plot else None)
      except Exception as e:  # pylint: disable=broad-except
        attention_problems.setdefault(f'{type(e).__name__}: {e}', []).append(variant)
        if not quiet:
          print(f'variant {variant}: no attention statistics or plots: {type(e).__name__}: {e}', flush=True)
      for s in sweeps:
        per_member = [(m, f) for run, pairs in runs for m, f in pairs if m.sweep_label == s]
        mine = [run for run, pairs in runs if any(m.sweep_label == s for m, _ in pairs)]
        meta = dict(params=mine[0].num_params,
                    steps_per_second=sum(r.steps_per_second for r in mine) / len(mine),
                    peak_memory_bytes=max(r.peak_memory_bytes for r in mine),
                    compile_seconds=max(r.compile_seconds for r in mine), state_size=_model_state_size(mine[0]))
        rows.append(_row_from_runs(variant, s, per_member, meta, seed_mode, attention))
    except Exception as e:  # pylint: disable=broad-except  (a crashed variant is a row, the rest still run)
      message = f'{type(e).__name__}: {e}'
      os.makedirs(vdir, exist_ok=True)
      with open(os.path.join(vdir, 'error.txt'), 'w') as f:
        f.write(traceback.format_exc())
      if not quiet:
        print(f'variant {variant} crashed after {time.perf_counter() - t0:.0f}s: {message}', flush=True)
      rows.extend(results.Row(variant=variant, sweep=s, error=message, seed_mode=seed_mode) for s in sweeps)

  notes = [f'Task {cfg.task} ({task.kind}), model {cfg.model["name"]}, {cfg.train.steps} steps of batch '
           f'{cfg.train.batch_size}, seed mode {seed_mode}; final metrics on the {cfg.data.test_split} split'
           + (f' (first {cfg.data.eval_examples} examples).' if cfg.data.eval_examples else '.'),
           'steps/s: training steps per second after compilation (evaluation excluded); peak mem: XLA memory '
           'analysis of the compiled train step (arguments + outputs + temporaries)'
           + (', all vmapped members together.' if seed_mode == 'vmap' else '.')]
  if any(r.state_size is not None for r in rows):
    notes.append(STATE_SIZE_NOTE)
  if any(r.attention for r in rows):
    notes.append(f'attn entropy: attention entropy normalised by log(#keys each query may see), 0 = one key, '
                 f'1 = uniform; attn distance: mean |query - key| position distance in self-attention; both '
                 f'averaged over layers, heads and queries of the first {cfg.data.test_split} example, '
                 'teacher-forced where there is a decoder.')
  if any('bleu' in r.metrics for r in rows):
    notes.append(seq2seq.bleu_note(task.info))
  for message, names in attention_problems.items():
    notes.append(f'No attention statistics for {", ".join(names)}: {results.one_line(message)}')
  metric_names = list(objective.metric_names)
  metric_names += [(f'ood_{m}', d) for m, d in objective.metric_names if any(f'ood_{m}' in r.metrics for r in rows)]
  if len(metric_names) > len(objective.metric_names):
    notes.append(f'ood_*: the same metrics on the out-of-distribution split {OOD_SPLIT} (the task\'s docstring '
                 'says how it differs).')
  table = results.Table(title=title or cfg.name or cfg.task, rows=rows, metric_names=metric_names, notes=notes)
  table.write(workdir)
  if 'length_buckets' in task.info:  # quality against source length (Bahdanau et al. 2015, Fig. 2)
    from attention_research.analysis import length_curve  # pylint: disable=g-import-not-at-top
    length_curve.write(length_curve.rows_of(table), workdir, train_length=task.info.get('train_source_length'),
                       title=f'{table.title}: BLEU against source length')
  return table


@dataclasses.dataclass(frozen=True)
class SuiteEntry:
  name: str
  config_path: str  # configs/<file>.py[:args]


# One text, one vision and one speech task on built-in data; sized for ~15 minutes on 2 CPU cores.
DEFAULT_SUITE = (
    SuiteEntry('text: mqar', 'configs/classification.py:task=mqar,suite'),
    SuiteEntry('vision: digits', 'configs/classification.py:task=digits,suite'),
    SuiteEntry('speech: spoken_digits', 'configs/asr.py:suite'),
)


def load_config_file(path_with_arg: str):
  """'configs/asr.py:attention=linear' -> the ConfigDict its get_config returns (as config_flags does)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  path, _, arg = path_with_arg.partition(':')
  if not os.path.exists(path):
    raise ValueError(f'config file {path!r} does not exist.')
  spec = importlib.util.spec_from_file_location(f'_config_{abs(hash(path))}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def run_suite(workdir: str, *, entries: Sequence[SuiteEntry] = DEFAULT_SUITE, quiet: bool = False,
              root: str = '.', plot: bool = False) -> list[results.Table]:
  tables = []
  t0 = time.perf_counter()
  for entry in entries:
    config = load_config_file(os.path.join(root, entry.config_path))
    slug = entry.name.split(':')[-1].strip().replace(' ', '_')
    t = time.perf_counter()
    table = compare(config, os.path.join(workdir, slug), quiet=quiet, title=entry.name, plot=plot)
    table.notes.append(f'Wall time of this comparison (data, compilation, training, evaluation): '
                       f'{time.perf_counter() - t:.0f} s.')
    table.write(os.path.join(workdir, slug))
    tables.append(table)
  total = time.perf_counter() - t0
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write('\n'.join(t.markdown() for t in tables))
    f.write(f'\nDefault suite wall time: {total:.0f} s.\n')
  return tables
