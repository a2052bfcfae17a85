"""MemN2N: the paper's position encoding, attention over real memories only, hops and tying, bad configs."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research.models import memnet


def _model(**kw):
  cfg = memnet.MemN2NConfig(**{**dict(vocab_size=12, num_classes=5, max_sentences=6, d_model=8, hops=3), **kw})
  return memnet.MemN2N(cfg, rngs=nnx.Rngs(0))


def _story():
  story = np.zeros((2, 6, 4), np.int32)
  story[0, :3] = [[4, 5, 6, 0], [7, 8, 0, 0], [9, 4, 5, 6]]
  story[1, :2] = [[5, 5, 0, 0], [10, 11, 4, 0]]
  return jnp.asarray(story), jnp.asarray([[4, 6, 0, 0], [11, 0, 0, 0]], jnp.int32)


def test_position_encoding_is_the_papers_formula():
  tokens = jnp.asarray([[3, 4, 5, 0, 0]])
  l = np.asarray(memnet.position_weights(tokens, 0, 4))[0]
  J, d = 3, 4
  for j in range(1, J + 1):
    for k in range(1, d + 1):
      assert l[j - 1, k - 1] == pytest.approx((1 - j / J) - (k / d) * (1 - 2 * j / J), abs=1e-6)
  assert not l[J:].any()


def test_attention_covers_real_memories_only_and_padding_slots_change_nothing():
  model = _model()
  story, question = _story()
  p = np.asarray(model.hop_attention(story, question))
  assert p.shape == (2, 3, 6)
  np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
  assert not p[0, :, 3:].any() and not p[1, :, 2:].any()
  # Fewer padding slots (a shorter memory) give the same answer: slots count from the most recent sentence.
  np.testing.assert_allclose(model(story[:, :3], question), model(story, question), rtol=1e-5, atol=1e-6)


def test_word_order_matters_with_position_encoding_only():
  story, question = _story()
  swapped = story.at[0, 0, :3].set(story[0, 0, 2::-1])
  for pe, differ in ((True, True), (False, False)):
    model = _model(position_encoding=pe)
    a, b = model(story, question)[0], model(swapped, question)[0]
    assert bool(jnp.abs(a - b).max() > 1e-6) == differ


def test_hops_use_adjacent_tied_tables_and_gradients_skip_padding():
  for hops in (1, 3):
    model = _model(hops=hops)
    assert model.tables_KVD.shape == (hops + 1, 12, 8) and model.temporal_KMD.shape == (hops + 1, 6, 8)
  model = _model(hops=2)
  story, question = _story()
  grads = nnx.grad(lambda m: m(story, question).sum())(model)
  g = np.asarray(grads.tables_KVD[...])
  assert not g[:, 0].any()  # the padding id never contributes
  assert g[1].any() and g[2].any()  # table 1 serves hop 1's output and hop 2's input; table 2 the last output
  assert not np.asarray(grads.temporal_KMD[...])[:, 3:].any()  # no story is older than 3 sentences


def test_jit_matches_eager():
  model = _model()
  story, question = _story()
  np.testing.assert_allclose(nnx.jit(lambda m, s, q: m(s, q))(model, story, question), model(story, question),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('kw, match', [({'hops': 0}, 'hops'), ({'max_sentences': None}, 'max_sentences'),
                                       ({'position_encoding': 1}, 'position_encoding')])
def test_bad_configs_are_value_errors(kw, match):
  with pytest.raises(ValueError, match=match):
    _model(**kw)


def test_longer_story_than_memory_is_a_value_error():
  model = _model(max_sentences=2)
  story, question = _story()
  with pytest.raises(ValueError, match='max_sentences=2'):
    model(story, question)
