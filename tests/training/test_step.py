import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from attention_research.training import step


class _Noisy(nnx.Module):
  def __init__(self, rngs):
    self.linear = nnx.Linear(4, 4, rngs=rngs)
    self.drop = nnx.Dropout(0.5, rngs=rngs)
    self.noise = nnx.Rngs(noise=rngs.params())

  def __call__(self, x):
    return self.drop(self.linear(x)) + jax.random.normal(self.noise.noise(), x.shape)


def _draws(rng_state, graphdef, state, key, streams, calls=0):
  model = step.merge_model(graphdef, state.params, rng_state, state.rest)
  x = jnp.ones((2, 4))
  for _ in range(calls):  # a different history before the reseed, as in a resumed run
    model(x)
  step.reseed(model, key, streams)
  return model(x), model(x)


def test_reseed_draws_depend_only_on_key_not_on_history():
  graphdef, rng_state, state = step.init_state(_Noisy(nnx.Rngs(params=0, dropout=1)), optax.sgd(0.1), seed=0)
  streams = step.stream_names(rng_state)
  assert streams == ('dropout', 'noise')
  key = jax.random.fold_in(jax.random.key(0), 7)
  fresh, resumed = (_draws(rng_state, graphdef, state, key, streams, calls=c) for c in (0, 3))
  np.testing.assert_array_equal(fresh[0], resumed[0])
  np.testing.assert_array_equal(fresh[1], resumed[1])
  assert not np.allclose(fresh[0], fresh[1])  # the stream advances between calls
  other = _draws(rng_state, graphdef, state, jax.random.fold_in(jax.random.key(0), 8), streams)
  assert not np.allclose(fresh[0], other[0])  # another step, other randomness
