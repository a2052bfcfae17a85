"""Several seeds of one small model trained together: one jax.vmap-ped step against one step per seed.

This is the choice `experiments.compare --seed_mode` makes, timed with the training machinery compare
uses (`training.step.make_train_step`, stacked states from `training.seeds`), on a Transformer encoder
classifier of the size the default suite trains. A vmapped step needs one compilation and one dispatch for
all seeds, but on a CPU with few cores it can still lose (on 2 cores it measured 0.5-1.0x the speed of the
per-seed steps), so the benchmark says which to pick on the machine at hand.
"""

from __future__ import annotations

import functools

import jax
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

  @functools.cache  # both cases start from the same states and batches, made only when a case is built
  def setup():
    out = [step.init_state(_model(s, length), tx, s) for s in range(num_seeds)]
    graphdef, rng_state = out[0][0], out[0][1]
    states = [state for _, _, state in out]
    batches = [_batch(length, batch_size, s) for s in range(num_seeds)]
    return states, batches, step.make_train_step(_loss, graphdef, rng_state, tx)

  def sequential():
    states, batches, fn = setup()
    compiled, seconds, temp = timing.compile_jax(fn, states[0], batches[0])
    return timing.Prepared(lambda: jax.block_until_ready([compiled(st, b) for st, b in zip(states, batches)]),
                           seconds, temp)

  def vmapped():
    states, batches, fn = setup()
    return timing.prepare_jax(jax.vmap(fn), seeds.stack(states), seeds.stack(batches))

  return {'sequential': sequential, 'vmap': vmapped}
