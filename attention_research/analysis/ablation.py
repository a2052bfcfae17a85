"""Head importance by ablation, pruning curves and counterfactual attention (JAX; see analysis.probes).

  head_importance      metric drop when one head's weights are zeroed (its output is cut from its layer's
                       output projection), for every head of every attention layer (Michel et al. 2019).
  pruning_curve        the metric as heads are zeroed cumulatively, least important first.
  counterfactual_change output change (mean TVD) when every attention layer attends with permuted (Jain and
                       Wallace 2019) or uniform (Wiegreffe and Pinter 2019) weights instead of its own.

fn(model, *args, **kwargs) returns the model's output (logits [..., C]); metric(output) -> float, higher is
better (accuracy on a batch, minus the loss, BLEU of decoded text ...).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

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
                          permutations: int = 3, **kwargs) -> dict[str, float]:
  """{'tvd_permuted', 'tvd_permuted_max', 'tvd_uniform'}: mean TVD between the output distribution and the one
  with every attention layer's rows permuted among their visible keys (mean and max over `permutations`
  draws) or made uniform over them; `where` [...] selects the output positions (faithfulness.output_change)."""
  out, weights = probes.attention_weights(fn, model, *args, **kwargs)
  results = []
  for _ in range(permutations):
    # One permutation per layer, fixed across run_with_attention's passes: the order of the keys is what is
    # shuffled, so it applies to the weights each pass forms.
    seeds = {path: int(s) for path, s in zip(weights, rng.integers(0, 2**31, len(weights)))}
    where_of = probes.groups_of(weights)
    seed_of = {where_of[p]: s for p, s in seeds.items()}
    shuffle = lambda g, l, w: faithfulness.permuted_weights(w, np.random.default_rng(seed_of[(g, l)]))
    permuted, _, _ = probes.run_with_attention(fn, model, *args, replace=shuffle, **kwargs)
    results.append(faithfulness.output_change(out, permuted, where))
  uniform, _, _ = probes.run_with_attention(fn, model, *args, replace=lambda g, l, w: faithfulness.uniform_weights(w),
                                            **kwargs)
  return {'tvd_permuted': float(np.mean(results)), 'tvd_permuted_max': float(np.max(results)),
          'tvd_uniform': faithfulness.output_change(out, uniform, where)}
