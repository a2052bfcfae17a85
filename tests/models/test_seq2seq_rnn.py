"""RNN encoder-decoder: overfitting, padding invariance, attention weights, decoding, config checks."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attention_research import layers
from attention_research.models import decoding
from attention_research.models.seq2seq_rnn import RNNSeq2Seq, RNNSeq2SeqConfig

BOS, EOS = 1, 2
TINY = dict(vocab_size=12, target_vocab_size=14, embed_size=16, hidden_size=24)

# Source, and the target that reverses it and shifts every token by 2 (a toy task that needs alignment).
SRC = np.array([[3, 4, 5, 6, 7, 0, 0],
                [8, 9, 10, 0, 0, 0, 0],
                [11, 3, 9, 4, 10, 5, 6],
                [7, 7, 3, 8, 0, 0, 0]], np.int32)


def _targets(src):
  rows = [[t + 2 for t in reversed([t for t in row if t])] + [EOS] for row in src]
  L = max(map(len, rows))
  out = np.zeros((len(rows), L), np.int32)
  for i, r in enumerate(rows):
    out[i, :len(r)] = r
  return out


TGT_OUT = _targets(SRC)
TGT_IN = np.concatenate([np.full((len(SRC), 1), BOS, np.int32), TGT_OUT[:, :-1]], axis=1)


def _loss(model, src, tgt_in, tgt_out):
  logits = model(src, tgt_in, deterministic=False)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out)
  w = (tgt_out != 0).astype(jnp.float32)
  return (ce * w).sum() / w.sum()


def _train(cfg, steps, lr=1e-2, seed=0):
  model = RNNSeq2Seq(cfg, rngs=nnx.Rngs(seed))
  optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer):
    loss, grads = nnx.value_and_grad(_loss)(model, SRC, TGT_IN, TGT_OUT)
    optimizer.update(model, grads)
    return loss

  losses = [float(step(model, optimizer)) for _ in range(steps)]
  return model, losses


@pytest.fixture(scope='module')
def trained():
  cfg = RNNSeq2SeqConfig(**TINY, attention='luong', luong_score='general', cell='lstm', dropout=0.1)
  return _train(cfg, steps=200)


@pytest.fixture(scope='module')
def trained_bahdanau():
  return _train(RNNSeq2SeqConfig(**TINY, attention='bahdanau', cell='gru'), steps=200)


@pytest.mark.parametrize('which', ['trained', 'trained_bahdanau'])
def test_overfits_tiny_batch(which, request):
  _, losses = request.getfixturevalue(which)
  print(f'{which}: loss {losses[0]:.3f} -> {losses[-1]:.4f}')
  assert losses[-1] <= 0.1 * losses[0], (losses[0], losses[-1])


def test_greedy_decodes_the_overfit_batch(trained):
  model, _ = trained
  tokens = model.generate(SRC, max_length=TGT_OUT.shape[1] + 2)
  np.testing.assert_array_equal(np.asarray(tokens)[:, :TGT_OUT.shape[1]], TGT_OUT)


@pytest.mark.parametrize('which', ['trained', 'trained_bahdanau'])
def test_beam_one_equals_greedy(which, request):
  model, _ = request.getfixturevalue(which)
  L = TGT_OUT.shape[1] + 2
  greedy, weights = model.generate_with_alignments(SRC, max_length=L)
  state = model.init_search_state(jnp.asarray(SRC))
  beam, _, _, _ = jax.jit(lambda s: decoding.beam_search(model.step_fn(), s, batch_size=len(SRC), beam_size=1,
                                                         max_length=L, bos_id=BOS, eos_id=EOS, alpha=0.0))(state)
  np.testing.assert_array_equal(np.asarray(beam), np.asarray(greedy))
  # The alignments greedy collects step by step equal a teacher-forced replay of its tokens.
  np.testing.assert_allclose(np.asarray(weights), np.asarray(model.alignments(SRC, greedy)), atol=1e-5)
  assert np.all(np.asarray(greedy)[:, -1] == 0)  # every row finished with EOS then padding


def test_beam_search_returns_tokens_and_alignments(trained):
  model, _ = trained
  tokens, weights = model.generate_with_alignments(SRC, max_length=8, beam_size=3)
  assert tokens.shape == (4, 8) and weights.shape == (4, 8, SRC.shape[1])
  np.testing.assert_array_equal(np.asarray(tokens)[:, :TGT_OUT.shape[1]], TGT_OUT)
  emitted = np.asarray(tokens) != 0
  np.testing.assert_allclose(np.asarray(weights).sum(-1), emitted.astype(np.float32), atol=1e-5)


VARIANTS = [
    dict(attention='bahdanau', cell='gru'),
    dict(attention='bahdanau', cell='lstm'),
    dict(attention='luong', luong_score='dot', cell='gru'),
    dict(attention='luong', luong_score='general', cell='lstm'),
    dict(attention='luong', luong_score='concat', cell='gru'),
    dict(attention='luong', luong_score='general', cell='gru', input_feeding=False),
]


@pytest.mark.parametrize('options', VARIANTS, ids=lambda o: '-'.join(str(v) for v in o.values()))
def test_padding_and_attention_weights(options):
  """Extra source padding changes nothing; weights sum to 1 over real positions and are 0 on padding."""
  model = RNNSeq2Seq(RNNSeq2SeqConfig(**TINY, **options), rngs=nnx.Rngs(1))
  padded = np.concatenate([SRC, np.zeros((len(SRC), 3), np.int32)], axis=1)

  @jax.jit
  def run(graphdef, state):
    m = nnx.merge(graphdef, state)
    run_one = lambda inputs: layers.capture_attention(lambda m: m(inputs, TGT_IN), m)
    (logits, maps), (logits_p, maps_p) = run_one(SRC), run_one(padded)
    return (logits, maps['attention']), (logits_p, maps_p['attention'])

  (logits, w), (logits_p, w_p) = run(*nnx.split(model))
  assert logits.shape == TGT_IN.shape + (14,) and w.shape == TGT_IN.shape + (SRC.shape[1],)
  np.testing.assert_allclose(np.asarray(logits_p), np.asarray(logits), atol=1e-5)
  np.testing.assert_allclose(np.asarray(w_p)[..., :SRC.shape[1]], np.asarray(w), atol=1e-6)
  np.testing.assert_allclose(np.asarray(w_p).sum(-1), 1.0, atol=1e-5)
  pad = np.broadcast_to((padded == 0)[:, None, :], w_p.shape)
  assert np.all(np.asarray(w_p)[pad] == 0.0)
  assert np.all(np.isfinite(np.asarray(logits)))


def test_generate_is_independent_of_source_padding():
  model = RNNSeq2Seq(RNNSeq2SeqConfig(**TINY, attention='bahdanau', cell='lstm'), rngs=nnx.Rngs(2))
  padded = np.concatenate([SRC, np.zeros((len(SRC), 2), np.int32)], axis=1)
  a = model.generate(SRC, max_length=5, beam_size=2)
  b = model.generate(padded, max_length=5, beam_size=2)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize('field, value', [
    ('cell', 'rnn'), ('attention', 'multihead'), ('luong_score', 'cosine'), ('hidden_size', 0),
    ('vocab_size', -3), ('dropout', 1.5), ('pad_id', 3), ('eos_id', 99), ('bos_id', 2), ('attention_size', 0),
])
def test_bad_config_names_the_value(field, value):
  with pytest.raises(ValueError, match=str(value)):
    RNNSeq2SeqConfig(**dict(TINY, **{field: value}))


def test_bad_generate_arguments():
  model = RNNSeq2Seq(RNNSeq2SeqConfig(**TINY), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='0'):
    model.generate(SRC, max_length=0)
  with pytest.raises(ValueError, match='-1'):
    model.generate(SRC, max_length=3, beam_size=-1)


def test_config_is_hashable_and_frozen():
  cfg = RNNSeq2SeqConfig(**TINY)
  hash(cfg)
  with pytest.raises(dataclasses.FrozenInstanceError):
    cfg.cell = 'lstm'  # type: ignore[misc]


def test_no_attention_sees_the_source_only_through_its_final_states():
  """attention='none' (Cho et al. 2014): padding changes nothing, there are no alignments, and the decoder's
  output depends on the source only through the encoder's final states."""
  model = RNNSeq2Seq(RNNSeq2SeqConfig(**TINY, attention='none', cell='gru'), rngs=nnx.Rngs(1))
  padded = np.concatenate([SRC, np.zeros((len(SRC), 3), np.int32)], axis=1)
  logits, logits_p = model(SRC, TGT_IN), model(padded, TGT_IN)
  np.testing.assert_allclose(np.asarray(logits_p), np.asarray(logits), atol=1e-5)
  np.testing.assert_array_equal(np.asarray(model.generate(SRC, max_length=6, beam_size=1)),
                                np.asarray(model.generate(padded, max_length=6, beam_size=1)))
  memory, _ = model.encode(SRC)

  def from_summary(summary):
    m = dict(memory, summary=summary, values=jnp.zeros_like(memory['values']))
    state = {'carry': jnp.tanh(model.init_h(summary)), 'feed': jnp.zeros((len(SRC), TINY['hidden_size']))}
    _, features, w = model._step(state, model.tgt_embed(jnp.asarray(TGT_IN[:, 0])), m)
    assert w is None
    return model._logits(features)

  np.testing.assert_allclose(np.asarray(from_summary(memory['summary'])), np.asarray(logits[:, 0]), atol=1e-5)
  with pytest.raises(ValueError, match='no alignments'):
    model.generate_with_alignments(SRC, max_length=6)
