"""The optax optimiser and learning-rate schedule of a config.

Numeric hyperparameters live in the optimiser state (`optax.inject_hyperparams`), so members of a
vmapped group can differ in learning rate or weight decay while sharing one compiled step. The
schedule's shape (warmup, decay) is static; its peak is the traced `learning_rate`.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from attention_research.training.config import OptimConfig

# Fields a vmapped sweep may change: they are values in the optimiser state, not program structure.
SWEEPABLE = ('learning_rate', 'weight_decay', 'b1', 'b2', 'grad_clip_norm')


def schedule_shape(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
  """Multiplier of the peak learning rate as a function of the step, in [0, 1]."""
  warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
  if cfg.schedule == 'constant':
    main = optax.constant_schedule(1.0)
  elif cfg.schedule == 'cosine':
    main = optax.cosine_decay_schedule(1.0, max(total_steps - warmup, 1), alpha=cfg.end_lr_fraction)
  elif cfg.schedule == 'linear':
    main = optax.linear_schedule(1.0, cfg.end_lr_fraction, max(total_steps - warmup, 1))
  elif cfg.schedule == 'rsqrt':
    base = max(warmup, 1)
    main = lambda count: jnp.sqrt(base / jnp.maximum(count + base, 1.0))  # equals 1 at the warmup's end
  else:
    raise ValueError(f'unknown schedule {cfg.schedule!r}')
  if not warmup:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, 1.0, warmup), main], [warmup])


def learning_rate(cfg: OptimConfig, total_steps: int, step: int) -> float:
  return float(cfg.learning_rate * schedule_shape(cfg, total_steps)(step))


def make_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
  shape = schedule_shape(cfg, total_steps)
  clip = cfg.grad_clip_norm > 0

  def factory(learning_rate, weight_decay, b1, b2, grad_clip_norm):
    schedule = lambda count: learning_rate * shape(count)
    if cfg.name == 'adamw':
      opt = optax.adamw(schedule, b1=b1, b2=b2, eps=cfg.eps, weight_decay=weight_decay)
    elif cfg.name == 'adam':
      opt = optax.adam(schedule, b1=b1, b2=b2, eps=cfg.eps)
    elif cfg.name == 'sgd':
      opt = optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(schedule, momentum=b1))
    elif cfg.name == 'adafactor':
      opt = optax.adafactor(schedule, weight_decay_rate=weight_decay)
    else:
      raise ValueError(f'config.optim.name: unknown optimiser {cfg.name!r}')
    return optax.chain(optax.clip_by_global_norm(grad_clip_norm), opt) if clip else opt

  return optax.inject_hyperparams(factory)(
      learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, b1=cfg.b1, b2=cfg.b2,
      grad_clip_norm=cfg.grad_clip_norm)
