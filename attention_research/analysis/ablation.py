"""Head importance by ablation, pruning curves and counterfactual attention (JAX; see analysis.probes).

  head_importance      metric drop when one head's weights are zeroed (its output is cut from its layer's
                       output projection), for every head of every attention layer (Michel et al. 2019).
  pruning_curve        the metric as heads are zeroed cumulatively, least important first.
  counterfactual_change output change (mean TVD) when every attention layer attends with permuted (Jain and
                       Wallace 2019) or uniform (Wiegreffe and Pinter 2019) weights instead of its own.
  gradient_importance  |gradient x input| of each output position's predicted logit over the input positions,
                       the importance that faithfulness.rank_correlation compares attention with.

fn(model, *args, **kwargs) returns the model's output (logits [..., C]); metric(output) -> float, higher is
better (accuracy on a batch, minus the loss, BLEU of decoded text ...).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention_research.analysis import faithfulness, probes

Head = tuple[str, Any, int]  # (group, layer, head) as in layers.capture_attention's maps


def heads_of(maps: dict) -> list[Head]:
  """Every (group, layer, head) of grouped maps ({'self': [per-layer [B, N, T, S]], 'attention': [B, N, T, S]})."""
  out = []
  for group, value in maps.items():
    for layer, w in (enumerate(value) if isinstance(value, list) else [(None, value)]):
      if np.ndim(w) < 4:
        raise ValueError(f'{group} weights of shape {np.shape(w)} have no head axis [B, N, T, S].')
      out += [(group, layer, h) for h in range(np.shape(w)[-3])]
  return out


def head_importance(metric: Callable[[Any], float], fn: Callable, model: nnx.Module, *args, **kwargs) -> list[dict]:
  """[{'group', 'layer', 'head', 'metric', 'drop'}] per head: the metric with that head zeroed and its drop from
  the unablated model's metric (positive = the head helps)."""
  out, weights = probes.attention_weights(fn, model, *args, **kwargs)
  base = float(metric(out))
  rows = []
  for head in heads_of(probes.grouped(weights)):
    ablated, _, _ = probes.run_with_attention(fn, model, *args, replace=probes.zero_heads({head}), **kwargs)
    value = float(metric(ablated))
    rows.append({'group': head[0], 'layer': head[1], 'head': head[2], 'metric': value, 'drop': base - value})
  return rows


def pruning_curve(metric: Callable[[Any], float], fn: Callable, model: nnx.Module, *args,
                  order: Sequence[Head] | None = None, **kwargs) -> list[dict]:
  """[{'pruned', 'metric', 'head'}]: the metric with the first k heads of order zeroed, k = 0 .. all heads.

  order defaults to head_importance's, least important (smallest drop) first.
  """
  if order is None:
    rows = head_importance(metric, fn, model, *args, **kwargs)
    order = [(r['group'], r['layer'], r['head']) for r in sorted(rows, key=lambda r: r['drop'])]
  curve = [{'pruned': 0, 'metric': float(metric(fn(model, *args, **kwargs))), 'head': None}]
  for k in range(1, len(order) + 1):
    out, _, _ = probes.run_with_attention(fn, model, *args, replace=probes.zero_heads(set(order[:k])), **kwargs)
    curve.append({'pruned': k, 'metric': float(metric(out)), 'head': tuple(order[k - 1])})
  return curve


def counterfactual_change(fn: Callable, model: nnx.Module, *args, rng: np.random.Generator, where=None,
                          visible=None, permutations: int = 3, **kwargs) -> dict[str, float]:
  """{'tvd_permuted', 'tvd_permuted_max', 'tvd_uniform'}: mean TVD between the output distribution and the one
  with every attention layer's rows permuted among their visible keys (mean and max over `permutations`
  draws) or made uniform over them; `where` [...] selects the output positions (faithfulness.output_change).

  visible: bool mask broadcastable to every layer's weights (True = the query may see the key); by default the
  keys with positive weight, which suits softmax weights but not the implied weights of recurrent variants
  (they may be negative or 0 on visible keys): pass their causal mask."""
  out, weights = probes.attention_weights(fn, model, *args, **kwargs)
  layers = list(probes.groups_of(weights).values())
  results = []
  for _ in range(permutations):
    # One seed per layer, fixed across run_with_attention's passes: the same keys are shuffled in the same way
    # whatever weights a pass forms.
    seed_of = dict(zip(layers, (int(s) for s in rng.integers(0, 2**31, len(layers)))))

    def shuffle(group, layer, w, seed_of=seed_of):
      return faithfulness.permuted_weights(w, np.random.default_rng(seed_of[(group, layer)]), visible)

    permuted, _, _ = probes.run_with_attention(fn, model, *args, replace=shuffle, **kwargs)
    results.append(faithfulness.output_change(out, permuted, where))
  spread = lambda g, l, w: faithfulness.uniform_weights(w, visible)
  uniform, _, _ = probes.run_with_attention(fn, model, *args, replace=spread, **kwargs)
  return {'tvd_permuted': float(np.mean(results)), 'tvd_permuted_max': float(np.max(results)),
          'tvd_uniform': faithfulness.output_change(out, uniform, where)}


def gradient_importance(logits_fn: Callable, inputs, where) -> np.ndarray:
  """[B, T, L]: the L2 norm of gradient x input of logit_t[argmax] with respect to inputs [B, L, D], for every
  output position t selected by where [B, T] (NaN elsewhere). logits_fn(inputs) -> [B, T, C], examples
  independent of each other (one backward pass per position serves the whole batch)."""
  x = jnp.asarray(inputs)
  where = np.asarray(where, bool)
  logits = logits_fn(x)
  if logits.ndim != 3 or where.shape != logits.shape[:2]:
    raise ValueError(f'logits_fn must give [B, T, C] logits matching where {where.shape}; got {logits.shape}.')
  pred = jnp.argmax(logits, -1)
  out = np.full(where.shape + (x.shape[1],), np.nan)
  for t in np.nonzero(where.any(0))[0]:
    pick = lambda x, t=t: jnp.sum(jnp.take_along_axis(logits_fn(x)[:, t], pred[:, t, None], -1))
    g = np.asarray(jax.grad(pick)(x))
    out[:, t] = np.where(where[:, t, None], np.sqrt(((g * np.asarray(x)) ** 2).sum(-1)), np.nan)
  return out
