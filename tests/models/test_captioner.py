"""Show, Attend and Tell captioner: overfitting, attention over regions, the regulariser, decoding, variants."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attention_research import attention
from attention_research.models import decoding
from attention_research.models.captioner import Captioner, CaptionerConfig

BOS, EOS, V = 1, 2, 16
# Four captions (EOS then padding): each image must be told apart from the others.
CAPTION = np.array([[3, 4, 5, 6, 2, 0],
                    [7, 8, 2, 0, 0, 0],
                    [9, 10, 11, 12, 13, 2],
                    [3, 14, 15, 2, 0, 0]], np.int32)
CAPTION_IN = np.concatenate([np.full((4, 1), BOS, np.int32), CAPTION[:, :-1]], axis=1)
MASK = CAPTION != 0

LSTM_CFG = dict(vocab_size=V, encoder='conv', image_size=64, channels=1, grid=4, feature_size=16, embed_size=16,
                hidden_size=32, max_length=8, decoder='lstm')
TRANSFORMER_CFG = dict(vocab_size=V, encoder='patch', image_size=32, channels=3, grid=4, feature_size=16,
                       hidden_size=32, num_heads=2, num_layers=1, mlp_dim=32, max_length=8, decoder='transformer')
# Options a variant needs at these tiny sizes (R = 16 regions, T <= 8 caption steps).
VARIANT_OPTIONS = {
    'local': {'window': (2, 1)},
    'block_sparse': {'block_size': 2, 'num_window_blocks': 3, 'num_global_blocks': 1, 'num_random_blocks': 1},
}


def _images(cfg, seed=0):
  # Noise constant over each region's cell: pixel-level noise would average out in the region features and
  # leave the four images indistinguishable.
  grid = jax.random.uniform(jax.random.key(seed), (4, cfg.grid, cfg.grid, cfg.channels))
  cell = cfg.image_size // cfg.grid
  return np.asarray(jnp.repeat(jnp.repeat(grid, cell, axis=1), cell, axis=2))


def _loss(model, image, caption_in, caption_out):
  logits, alphas = model(image, caption_in, deterministic=False)
  mask = caption_out != 0
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, caption_out)
  ce = (ce * mask).sum() / mask.sum()
  return ce + model.regularizer(alphas, mask), ce


def _train(cfg, steps, lr=3e-3, seed=0):
  model = Captioner(cfg, rngs=nnx.Rngs(seed))
  optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
  image = _images(cfg)

  @nnx.jit
  def step(model, optimizer):
    (loss, ce), grads = nnx.value_and_grad(_loss, has_aux=True)(model, image, CAPTION_IN, CAPTION)
    optimizer.update(model, grads)
    return loss, ce

  history = [tuple(map(float, step(model, optimizer))) for _ in range(steps)]
  return model, image, history


@pytest.fixture(scope='module')
def trained_lstm():
  return _train(CaptionerConfig(**LSTM_CFG, doubly_stochastic=0.01, dropout=0.1), steps=200, lr=1e-2)


@pytest.fixture(scope='module')
def trained_transformer():
  return _train(CaptionerConfig(**TRANSFORMER_CFG, doubly_stochastic=0.01), steps=150)


@pytest.mark.parametrize('which', ['trained_lstm', 'trained_transformer'])
def test_overfits_tiny_batch(which, request):
  _, _, history = request.getfixturevalue(which)
  (loss0, ce0), (loss1, ce1) = history[0], history[-1]
  print(f'{which}: loss {loss0:.3f} -> {loss1:.4f}, cross-entropy {ce0:.3f} -> {ce1:.4f}')
  # The regulariser cannot reach 0 here (6 steps cannot give each of 16 regions a total of 1), so the 90%
  # criterion is on the cross-entropy; the total falls too.
  assert ce1 <= 0.1 * ce0, (ce0, ce1)
  assert loss1 < 0.5 * loss0


@pytest.mark.parametrize('which', ['trained_lstm', 'trained_transformer'])
def test_generate_beam_one_equals_greedy(which, request):
  model, image, _ = request.getfixturevalue(which)
  L = 7
  tokens, alphas = model.generate(image, max_length=L)
  np.testing.assert_array_equal(np.asarray(tokens)[:, :CAPTION.shape[1]], CAPTION)  # it learned the batch
  state = model.init_search_state(jnp.asarray(image), max_length=L)
  beam = jax.jit(lambda s: decoding.beam_search(model.step_fn(), s, batch_size=4, beam_size=1, max_length=L,
                                                bos_id=BOS, eos_id=EOS, alpha=0.0)[0])(state)
  np.testing.assert_array_equal(np.asarray(beam), np.asarray(tokens))
  # One attention map over the 16 regions per emitted word, none after EOS.
  assert alphas.shape == (4, L, 16)
  np.testing.assert_allclose(np.asarray(alphas).sum(-1), (np.asarray(tokens) != 0).astype(np.float32), atol=1e-5)


def test_beam_search_decodes_with_alignments(trained_lstm):
  model, image, _ = trained_lstm
  tokens, alphas = model.generate(image, max_length=7, beam_size=3)
  np.testing.assert_array_equal(np.asarray(tokens)[:, :CAPTION.shape[1]], CAPTION)
  assert alphas.shape == (4, 7, 16) and np.all(np.asarray(alphas)[np.asarray(tokens) == 0] == 0)


def test_lstm_attention_is_a_distribution_over_regions(trained_lstm):
  model, image, _ = trained_lstm
  logits, alphas = model(image, CAPTION_IN)
  assert logits.shape == (4, 6, V) and alphas.shape == (4, 6, 16)
  assert np.all(np.asarray(alphas) >= 0)
  np.testing.assert_allclose(np.asarray(alphas).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize('gating, encoder', [(False, 'patch')])
def test_lstm_options_run(gating, encoder):
  cfg = CaptionerConfig(**dict(LSTM_CFG, gating=gating, encoder=encoder))
  model = Captioner(cfg, rngs=nnx.Rngs(3))
  logits, alphas = nnx.jit(lambda m, x: m(x, CAPTION_IN))(model, _images(cfg))
  assert logits.shape == (4, 6, V) and np.all(np.isfinite(np.asarray(logits)))
  np.testing.assert_allclose(np.asarray(alphas).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize('query', ['previous', 'current', 'top_down'])
def test_lstm_query_reads_the_current_word_only_when_asked(query):
  # 'previous' attends from the state before reading word t's input, 'current' and 'top_down' from a state after
  # it: changing input t changes the attention of step t only in the latter two, and of step t + 1 in all.
  cfg = CaptionerConfig(**dict(LSTM_CFG, lstm_score='general', lstm_query=query))
  model = Captioner(cfg, rngs=nnx.Rngs(4))
  image = _images(cfg)
  changed = CAPTION_IN.copy()
  changed[:, 2] = 9
  _, alphas = model(image, CAPTION_IN)
  _, alphas_changed = model(image, changed)
  step_changes = np.abs(np.asarray(alphas_changed) - np.asarray(alphas)).max(axis=(0, 2))
  np.testing.assert_array_equal(step_changes[:2], 0.0)
  assert (step_changes[2] > 1e-6) == (query != 'previous'), step_changes
  assert step_changes[3] > 1e-6


@pytest.mark.parametrize('query', ['current', 'top_down'])
def test_lstm_search_steps_equal_teacher_forcing(query):
  # The glimpse fed back as input ('current') and the attention LSTM's state ('top_down') live in the search state:
  # step-by-step decoding of the reference words gives the teacher-forced log-probabilities.
  cfg = CaptionerConfig(**dict(LSTM_CFG, lstm_score='general', lstm_query=query))
  model = Captioner(cfg, rngs=nnx.Rngs(5))
  image = jnp.asarray(_images(cfg))
  logits, _ = model(image, CAPTION_IN)
  state = model.init_search_state(image)
  for t in range(CAPTION_IN.shape[1]):
    log_probs, state = model.search_step(jnp.asarray(CAPTION_IN[:, t]), state)
    np.testing.assert_allclose(np.asarray(log_probs), np.asarray(jax.nn.log_softmax(logits[:, t])), atol=1e-5)


@pytest.mark.parametrize('name', sorted(attention.VARIANTS))
def test_transformer_decoder_runs_with_every_variant(name):
  """Cross-attention over regions (no mask) works with every variant; self-attention with the causal ones."""
  info = attention.get(name)
  self_name = name if info.causal else 'dot_product'
  if not info.bidirectional:  # a recurrence has no cross form: it runs as the causal self-attention only
    with pytest.raises(ValueError, match='cannot be a cross-attention'):
      CaptionerConfig(**TRANSFORMER_CFG, attention=name)
    name = 'dot_product'
  cfg = CaptionerConfig(**TRANSFORMER_CFG, attention=name, attention_options=VARIANT_OPTIONS.get(name, {}),
                        self_attention=self_name, self_attention_options=VARIANT_OPTIONS.get(self_name, {}))
  model = Captioner(cfg, rngs=nnx.Rngs(0))
  changed = CAPTION_IN.copy()
  changed[:, -1] = 5  # a different last input token must not change any earlier step (causal decoder)

  @jax.jit
  def run(graphdef, state, image):
    m = nnx.merge(graphdef, state)
    return m(image, CAPTION_IN), m(image, changed)[0]

  (logits, alphas), logits_changed = run(*nnx.split(model), _images(cfg))
  assert logits.shape == (4, 6, V) and alphas.shape == (4, 6, 16)
  assert np.all(np.isfinite(np.asarray(logits))) and np.all(np.isfinite(np.asarray(alphas)))
  np.testing.assert_allclose(np.asarray(logits_changed)[:, :-1], np.asarray(logits)[:, :-1], atol=1e-5)
  if info.exact:  # approximate variants reconstruct an implied matrix whose rows need not sum to 1
    np.testing.assert_allclose(np.asarray(alphas).sum(-1), 1.0, atol=1e-5)


def test_regularizer_zero_iff_every_region_gets_total_attention_one():
  model = Captioner(CaptionerConfig(**dict(LSTM_CFG, grid=2)), rngs=nnx.Rngs(0))  # R = 4 regions
  eye = jnp.eye(4)[None]  # step t looks only at region t: every region's total is 1
  padded = jnp.concatenate([eye, jnp.full((1, 2, 4), 0.25)], axis=1)  # two padding steps, ignored
  mask = jnp.array([[1, 1, 1, 1, 0, 0]])
  assert float(model.regularizer(eye, jnp.ones((1, 4)))) == 0.0
  assert float(model.regularizer(padded, mask)) == 0.0
  uniform = jnp.full((1, 4, 4), 0.25)  # totals 1 as well
  assert float(model.regularizer(uniform, jnp.ones((1, 4)))) == pytest.approx(0.0, abs=1e-6)
  peaked = jnp.tile(jnp.array([1.0, 0, 0, 0]), (1, 4, 1))  # region 0 total 4, others 0: (1-4)^2 + 3 * 1
  assert float(model.regularizer(peaked, jnp.ones((1, 4)))) == pytest.approx(12.0)
  assert float(model.regularizer(padded, jnp.ones((1, 6)))) > 0.0  # the pad steps now count
  weak = Captioner(CaptionerConfig(**dict(LSTM_CFG, grid=2, doubly_stochastic=0.5)), rngs=nnx.Rngs(0))
  assert float(weak.regularizer(peaked, jnp.ones((1, 4)))) == pytest.approx(6.0)


@pytest.mark.parametrize('field, value', [
    ('encoder', 'resnet'), ('decoder', 'gru'), ('attention', 'nonexistent'), ('self_attention', 'linformer'),
    ('grid', 5), ('image_size', 30), ('hidden_size', 33), ('doubly_stochastic', -1.0), ('dropout', 1.0),
    ('vocab_size', 0), ('pad_id', 4), ('eos_id', 16), ('conv_layers', 1), ('context_layers', -1),
    ('lstm_score', 'dot'), ('lstm_query', 'next'),
])
def test_bad_config_names_the_value(field, value):
  base = dict(TRANSFORMER_CFG) if field in ('hidden_size',) else dict(LSTM_CFG)
  if field == 'image_size':
    base['encoder'] = 'patch'  # 30 is not a multiple of grid 4
  with pytest.raises(ValueError, match=str(value)):
    CaptionerConfig(**dict(base, **{field: value}))


@pytest.mark.parametrize('context_layers', [0, 1])
def test_conv_region_sees_only_its_view(context_layers):
  # Three stride-2 convolutions: 8-px regions, each a function of the 15 x 15 pixels of its view alone; each
  # stride-1 convolution after them widens that view by one region (8 px) on every side.
  cfg = CaptionerConfig(**dict(LSTM_CFG, grid=8, conv_layers=3, context_layers=context_layers))
  encoder = Captioner(cfg, rngs=nnx.Rngs(0)).encoder
  image = jax.random.uniform(jax.random.key(1), (1, 64, 64, 1))
  assert encoder(image).shape == (1, 64, 16)
  grad = jax.grad(lambda x: encoder(x)[0, 2 * 8 + 3].sum())(image)[0, ..., 0]  # region at row 2, column 3
  rows, cols = np.nonzero(np.asarray(grad))
  k = 8 * context_layers
  assert (rows.min(), rows.max()) == (16 - k, 30 + k)
  assert (cols.min(), cols.max()) == (24 - k, 38 + k)


def test_bad_inputs():
  cfg = CaptionerConfig(**LSTM_CFG)
  model = Captioner(cfg, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='32, 32, 3'):
    model(np.zeros((4, 32, 32, 3)), CAPTION_IN)
  with pytest.raises(ValueError, match='max_length'):
    Captioner(CaptionerConfig(**TRANSFORMER_CFG), rngs=nnx.Rngs(0)).generate(np.zeros((1, 32, 32, 3)),
                                                                             max_length=9)
