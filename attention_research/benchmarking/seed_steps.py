"""Several seeds of one small model trained together: one jax.vmap-ped step against one step per seed.

This is the choice `experiments.compare --seed_mode` makes, timed with the training machinery compare
uses (`training.step.make_train_step`, stacked states from `training.seeds`), on a Transformer encoder
classifier of the size the default suite trains. On a CPU with few cores a vmapped step can lose: the
per-seed steps are already large enough to fill the cores, and the batched one pays for larger temporaries.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from attention_research.benchmarking import timing
from attention_research.models import transformer
from attention_research.training import seeds, step

VOCAB, CLASSES = 64, 8


def _model(seed: int, length: int):
  cfg = transformer.TransformerConfig(vocab_size=VOCAB, d_model=64, num_heads=4, num_encoder_layers=2,
                                      max_length=length, num_classes=CLASSES, pooling='mean')
  return transformer.Encoder(cfg, rngs=nnx.Rngs(seed))


def _loss(model, batch, rng):
  del rng
  logits = model(batch['tokens'])
  return optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean(), {}


def _batch(length: int, batch_size: int, seed: int):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  return {'tokens': jax.random.randint(k1, (batch_size, length), 1, VOCAB),
          'label': jax.random.randint(k2, (batch_size,), 0, CLASSES)}


def cases(num_seeds: int, length: int, batch_size: int):
  """{'sequential': build, 'vmap': build}: each call advances every seed by one training step."""
  tx = optax.adam(1e-3)

  def states_and_step():
    out = [step.init_state(_model(s, length), tx, s) for s in range(num_seeds)]
    graphdef, rng_state = out[0][0], out[0][1]
    return [state for _, _, state in out], step.make_train_step(_loss, graphdef, rng_state, tx)

  batches = [_batch(length, batch_size, s) for s in range(num_seeds)]

  def sequential():
    states, fn = states_and_step()
    compiled, seconds, temp = timing.compile_jax(fn, states[0], batches[0])
    return timing.Prepared(lambda: jax.block_until_ready([compiled(st, b) for st, b in zip(states, batches)]),
                           seconds, temp)

  def vmapped():
    states, fn = states_and_step()
    stacked = seeds.stack(states)
    stacked_batch = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
    return timing.prepare_jax(jax.vmap(fn), stacked, stacked_batch)

  return {'sequential': sequential, 'vmap': vmapped}
