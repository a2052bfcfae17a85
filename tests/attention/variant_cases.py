"""Per-variant keyword arguments so registry-wide tests can call every variant the same way."""

import jax


def variant_kwargs(name: str, *, H: int, S: int, key=None):
  key = jax.random.PRNGKey(7) if key is None else key
  if name == 'additive':
    from attention_research.attention.additive import init_params
    return {'params': init_params(key, H, H, 8)}
  if name == 'multiplicative':
    from attention_research.attention.multiplicative import init_params
    return {'params': init_params(key, H, H)}
  if name == 'local':
    return {'window': (2, 1)}
  if name == 'block_sparse':
    return {'block_size': 2, 'num_window_blocks': 3, 'num_global_blocks': 1, 'num_random_blocks': 1}
  if name == 'linformer':
    from attention_research.attention.linformer import init_params
    return {'params': init_params(key, S, 4)}
  if name == 'performer':
    return {'num_features': 32, 'key': key}
  return {}
