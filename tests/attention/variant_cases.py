"""Keyword arguments that let registry-wide tests call every variant's function the same way.

Everything comes from the registry: the variant's example_options, its parameters from init_params and its
extra arguments from call_kwargs, as a layer would build them for these q, k, v.
"""

import jax
import jax.numpy as jnp

from attention_research import attention


def _at_least_rank3(x):
  # Inputs of bad rank must still reach the function's own check, so the sizes come from a padded view.
  return x.reshape((1,) * (3 - x.ndim) + x.shape) if x.ndim < 3 else x


def variant_kwargs(name: str, q, k, v, *, key=None):
  """fn keyword arguments of variant `name` for q [..., T, N, H], k [..., S, K, H], v [..., S, K, V].

  The layer's inputs are stood in by q with its heads merged ([..., T, N * H]) and likewise for k.
  """
  variant = attention.get(name)
  key = jax.random.PRNGKey(7) if key is None else key
  layer_options, options = variant.split_options(variant.example_options)
  q3, k3, v3 = (_at_least_rank3(x) for x in (q, k, v))
  (T, N, H), (S, K, _) = q3.shape[-3:], k3.shape[-3:]
  params = {}
  if variant.init_params is not None:
    params = variant.init_params(key, num_heads=N, num_kv_heads=K, head_dim=H, in_features=N * H, max_length=S,
                                 dtype=jnp.float32, **layer_options)
  if variant.call_kwargs is not None:
    options.update(variant.call_kwargs(params, q=q3, k=k3, v=v3, inputs_q=q3.reshape(q3.shape[:-2] + (N * H,)),
                                       inputs_kv=k3.reshape(k3.shape[:-2] + (K * H,)), options=dict(options)))
  return options


def repeat_kv_heads(name: str, kwargs: dict, times: int) -> dict:
  """The per-kv-head arguments among kwargs (the registry's kv_head_args), each repeated `times` along its head
  axis, as when each kv head is repeated `times` (grouped-query to multi-head)."""
  axes = attention.get(name).kv_head_args
  return {n: jnp.repeat(x, times, axis=axes[n]) for n, x in kwargs.items() if n in axes}
