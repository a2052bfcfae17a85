"""Encoder, EncoderDecoder and DecoderLM: learning, cached decoding, search, causality, padding, every variant.

Shapes are shared across tests on purpose (B=2, d_model=16, 4 heads over 2 kv heads, lengths 8 and 6) so that
the per-shape compilations of eager JAX are reused from test to test.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attention_research import attention, layers
from attention_research.models import transformer as tr

V, C, PAD, BOS, EOS = 13, 3, 0, 1, 2
POSITIONAL = ('sinusoidal', 'learned', 'rope', 'alibi', 'relative', 'none')
ALL_VARIANTS = sorted(attention.VARIANTS)
CAUSAL_VARIANTS = [n for n in ALL_VARIANTS if attention.get(n).causal]
# Options that make each variant meaningful on length-8 sequences (default blocks/windows exceed them).
VARIANT_OPTIONS = {
    'local': {'window': (2, 1)},
    'block_sparse': {'block_size': 2, 'num_window_blocks': 3, 'num_global_blocks': 1, 'num_random_blocks': 1},
    'performer': {'num_features': 16},
    'linformer': {'rank': 4},
    'additive': {'hidden': 8},
}


def config(**kw):
  base = dict(vocab_size=V, d_model=16, num_heads=4, num_kv_heads=2, num_encoder_layers=1,
              num_decoder_layers=1, mlp_dim=32, max_length=16, num_classes=C, pad_id=PAD, bos_id=BOS,
              eos_id=EOS)
  base.update(kw)
  return tr.TransformerConfig(**base)


def tokens(seed, shape, lengths=None):
  """Random non-special tokens [B, L], padded (0) after each row's length."""
  x = jax.random.randint(jax.random.PRNGKey(seed), shape, 3, V)
  if lengths is not None:
    x = jnp.where(jnp.arange(shape[1])[None, :] < jnp.asarray(lengths)[:, None], x, PAD)
  return x


def pad(x, n):
  return jnp.concatenate([x, jnp.full((x.shape[0], n), PAD, x.dtype)], axis=1)


def shift_right(targets):
  return jnp.concatenate([jnp.full((targets.shape[0], 1), BOS, targets.dtype), targets[:, :-1]], axis=1)


def xent(logits, labels, weights=None):
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
  weights = jnp.ones_like(ce) if weights is None else weights.astype(jnp.float32)
  return jnp.sum(ce * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def overfit(model, loss_fn, *, steps, lr=3e-3):
  """Adam on the model's parameters inside one jit-compiled scan; returns the loss of every step."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adam(lr)

  @jax.jit
  def run(params):
    def body(carry, _):
      p, s = carry
      loss, g = jax.value_and_grad(lambda p: loss_fn(nnx.merge(graphdef, p, rest)))(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), loss
    (p, _), losses = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return p, losses
  params, losses = run(params)
  nnx.update(model, params)
  return np.asarray(losses)


def loss_and_finite_grads(model, loss_fn, *args):
  """loss_fn(model, *args) -> (loss, aux); checks the gradients are finite and not all zero; returns aux."""
  (loss, aux), grads = _grad_step(loss_fn)(model, *args)
  assert np.isfinite(float(loss))
  leaves = jax.tree.leaves(grads)
  assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)
  return aux


@functools.lru_cache(maxsize=8)
def _grad_step(loss_fn):
  """One compiled program per loss_fn, reused by calls on inputs of the same shapes: op-by-op dispatch of a whole
  model's forward and backward is several times slower."""
  return nnx.jit(nnx.value_and_grad(loss_fn, has_aux=True))


@nnx.jit
def _lm_step(model, tokens):
  return model.decode_step(tokens)


@nnx.jit
def _seq2seq_step(model, tokens, memory, memory_mask):
  return model.decode_step(tokens, memory, memory_mask)


def cached_logits(model, inputs, *memory):
  """Logits [B, T, V] from feeding inputs [B, T] one position at a time through the key/value cache."""
  model.init_cache(inputs.shape[0], inputs.shape[1])
  if memory:
    return jnp.stack([_seq2seq_step(model, inputs[:, t], *memory) for t in range(inputs.shape[1])], 1)
  return jnp.stack([_lm_step(model, inputs[:, t]) for t in range(inputs.shape[1])], 1)


def argmax_consistent(logits, generated):
  """Each generated token is the argmax (padding excluded) of the full model's logits before it, up to EOS."""
  live = jnp.cumsum(generated == EOS, axis=1) - (generated == EOS) == 0
  expected = jnp.where(live, jnp.argmax(logits.at[..., PAD].set(-jnp.inf), -1), PAD)
  np.testing.assert_array_equal(expected, generated)


# ---------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize('kw, model, offending', [
    (dict(attention='bogus'), tr.Encoder, 'bogus'),
    (dict(cross_attention='nope'), tr.EncoderDecoder, 'nope'),
    (dict(d_model=18, num_heads=4, num_kv_heads=None), tr.Encoder, 'd_model=18'),
    (dict(num_heads=4, num_kv_heads=3), tr.Encoder, 'num_kv_heads=3'),
    (dict(positional='spiral'), tr.Encoder, 'spiral'),
    (dict(positional='alibi', attention='linear'), tr.Encoder, 'linear'),
    (dict(positional='relative', attention='performer'), tr.Encoder, 'performer'),
    (dict(attention='linformer'), tr.DecoderLM, 'linformer'),
    (dict(attention='linformer'), tr.EncoderDecoder, 'linformer'),
    (dict(pooling='max'), tr.Encoder, 'max'),
    (dict(head='crf'), tr.Encoder, 'crf'),
    (dict(dropout_rate=1.5), tr.Encoder, '1.5'),
    (dict(num_classes=None), tr.Encoder, 'num_classes'),
    (dict(vocab_size=None), tr.DecoderLM, 'vocab_size'),
    (dict(eos_id=PAD), tr.DecoderLM, 'eos_id'),
    (dict(bos_id=V + 4), tr.DecoderLM, str(V + 4)),
    (dict(d_model=12, num_heads=4, num_kv_heads=None, positional='rope'), tr.Encoder, 'head size.* 3'),
    (dict(d_model=15, num_heads=3, num_kv_heads=None), tr.Encoder, 'd_model=15'),
    (dict(num_encoder_layers=0), tr.Encoder, 'num_encoder_layers'),
    (dict(cross_attention='local'), tr.EncoderDecoder, "'local'.*cannot be a cross-attention"),
])
def test_bad_configs_raise_value_error_naming_the_value(kw, model, offending):
  with pytest.raises(ValueError, match=offending):
    model(config(**kw), rngs=nnx.Rngs(0))


def test_config_is_hashable_and_options_are_split_between_layer_and_variant():
  cfg = config(attention='performer', attention_options={'num_features': 8, 'chunk_size': 4})
  hash(cfg)
  kw = cfg.attention_kwargs()
  assert kw['num_features'] == 8 and dict(kw['variant_options']) == {'chunk_size': 4}
  cross = config(attention='linformer', attention_options={'rank': 4}, cross_attention='dot_product')
  assert cross.attention_kwargs(cross=True)['variant'] == 'dot_product'
  assert 'rank' not in cross.attention_kwargs(cross=True)


# ---------------------------------------------------------------------------------------------- encoder
@pytest.mark.parametrize('pooling, head', [('mean', 'pool'), ('cls', 'pool'), ('mean', 'tagging')])
def test_encoder_shapes_weights_and_padding(pooling, head):
  model = tr.Encoder(config(pooling=pooling, head=head, num_encoder_layers=2), rngs=nnx.Rngs(0))
  x = tokens(0, (2, 8), lengths=[8, 5])
  logits, w = layers.capture_attention(lambda m: m(x), model)
  assert logits.shape == ((2, C) if head == 'pool' else (2, 8, C))
  L = 9 if pooling == 'cls' else 8
  assert len(w['self']) == 2 and w['self'][0].shape == (2, 4, L, L)
  key_valid = jnp.arange(L)[None, :] < jnp.asarray([L, L - 3])[:, None]
  assert float(jnp.max(jnp.where(key_valid[:, None, None, :], 0.0, w['self'][1]))) == 0.0
  padded = model(pad(x, 3))
  np.testing.assert_allclose(padded[:, :8] if head == 'tagging' else padded, logits, atol=1e-5)


@pytest.mark.parametrize('positional', POSITIONAL)
def test_encoder_padding_does_not_change_real_positions(positional):
  model = tr.Encoder(config(positional=positional, head='tagging'), rngs=nnx.Rngs(1))
  x = tokens(1, (2, 8), lengths=[8, 5])
  np.testing.assert_allclose(model(pad(x, 3))[:, :8], model(x), atol=1e-5)


def test_encode_embeddings_runs_the_stack_on_continuous_inputs():
  model = tr.Encoder(config(), rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 16))
  mask = jnp.arange(8)[None, :] < jnp.asarray([8, 5])[:, None]
  h = model.encode_embeddings(x, mask)
  assert h.shape == (2, 8, 16)
  np.testing.assert_allclose(h[1, :5], model.encode_embeddings(x[1:, :5])[0], atol=1e-5)


def test_encoder_overfits_a_tiny_batch():
  model = tr.Encoder(config(num_encoder_layers=2), rngs=nnx.Rngs(0))
  x = tokens(2, (8, 8), lengths=[8, 7, 6, 5, 8, 4, 6, 7])
  y = jax.random.randint(jax.random.PRNGKey(3), (8,), 0, C)
  losses = overfit(model, lambda m: xent(m(x), y), steps=150)
  assert losses[-1] <= 0.1 * losses[0], (losses[0], losses[-1])


def test_tagging_encoder_overfits_a_tiny_batch():
  model = tr.Encoder(config(num_encoder_layers=2, head='tagging'), rngs=nnx.Rngs(0))
  x = tokens(4, (8, 8), lengths=[8, 7, 6, 5, 8, 4, 6, 7])
  y = jax.random.randint(jax.random.PRNGKey(5), (8, 8), 0, C)
  losses = overfit(model, lambda m: xent(m(x), y, x != PAD), steps=200)
  assert losses[-1] <= 0.1 * losses[0], (losses[0], losses[-1])


# -------------------------------------------------------------------------------------- encoder-decoder
def test_encoder_decoder_weights_and_untied_separate_target_vocabulary():
  model = tr.EncoderDecoder(config(target_vocab_size=9, tie_embeddings=False, num_decoder_layers=2),
                            rngs=nnx.Rngs(0))
  src, tgt_in = tokens(0, (2, 8), lengths=[8, 5]), shift_right(tokens(1, (2, 6), lengths=[6, 3]) % 9)
  logits, w = layers.capture_attention(lambda m: m(src, tgt_in), model)
  assert logits.shape == (2, 6, 9)
  assert [a.shape for a in w['encoder']] == [(2, 4, 8, 8)]
  assert [a.shape for a in w['self']] == [(2, 4, 6, 6)] * 2
  assert [a.shape for a in w['cross']] == [(2, 4, 6, 8)] * 2
  assert float(jnp.max(w['cross'][0][1, :, :, 5:])) == 0.0  # padded source positions
  assert float(jnp.max(jnp.triu(w['self'][0], k=1))) == 0.0  # causal


@pytest.mark.parametrize('positional', POSITIONAL)
def test_encoder_decoder_cached_decoding_equals_full_decoding_and_padding_is_ignored(positional):
  model = tr.EncoderDecoder(config(positional=positional, num_decoder_layers=2), rngs=nnx.Rngs(3))
  src = tokens(8, (2, 8), lengths=[8, 5])
  tgt_in = shift_right(tokens(9, (2, 6)))
  full = model(src, tgt_in)
  np.testing.assert_allclose(model(pad(src, 3), tgt_in), full, atol=1e-5)
  np.testing.assert_allclose(model(src, pad(tgt_in, 3))[:, :6], full, atol=1e-5)
  np.testing.assert_allclose(cached_logits(model, tgt_in, *model.encode(src)), full, atol=1e-4, rtol=1e-4)


def test_encoder_decoder_greedy_is_the_full_sequence_argmax_and_equals_beam_one():
  model = tr.EncoderDecoder(config(positional='relative'), rngs=nnx.Rngs(4))
  src = tokens(10, (2, 8), lengths=[8, 5])
  greedy = model.generate(src, max_length=6)
  assert greedy.shape == (2, 6)
  argmax_consistent(model(src, shift_right(greedy)), greedy)
  np.testing.assert_array_equal(model.generate(src, max_length=6, beam_size=1, alpha=0.0), greedy)


def test_encoder_decoder_overfits_a_tiny_batch_and_decodes_it():
  model = tr.EncoderDecoder(config(num_encoder_layers=2, num_decoder_layers=2), rngs=nnx.Rngs(0))
  src = tokens(11, (8, 6), lengths=[6, 5, 4, 6, 3, 5, 6, 4])
  # Targets: the source reversed, then EOS, then padding.
  lengths = jnp.sum(src != PAD, axis=1)
  pos = jnp.arange(7)[None, :]
  rev = jnp.take_along_axis(src, jnp.clip(lengths[:, None] - 1 - pos, 0, 5), axis=1)
  tgt = jnp.where(pos < lengths[:, None], rev, jnp.where(pos == lengths[:, None], EOS, PAD))
  losses = overfit(model, lambda m: xent(m(src, shift_right(tgt)), tgt, tgt != PAD), steps=300, lr=1e-2)
  assert losses[-1] <= 0.1 * losses[0], (losses[0], losses[-1])
  np.testing.assert_array_equal(model.generate(src, max_length=7), tgt)
  np.testing.assert_array_equal(model.generate(src, max_length=7, beam_size=3, alpha=0.6), tgt)


# ---------------------------------------------------------------------------------------------- decoder
def test_decoder_lm_outputs_have_zero_gradient_with_respect_to_future_inputs():
  model = tr.DecoderLM(config(num_decoder_layers=2), rngs=nnx.Rngs(5))
  x = tokens(12, (2, 8))

  def out_at_3(embeddings):
    return jnp.sum(model.decoder(embeddings, x != PAD)[:, 3])
  g = jax.grad(out_at_3)(model.embed(x))
  assert float(jnp.max(jnp.abs(g[:, 4:]))) == 0.0 and float(jnp.max(jnp.abs(g[:, :4]))) > 0.0


@pytest.mark.parametrize('positional', POSITIONAL)
def test_decoder_lm_is_causal_ignores_padding_and_caches_exactly(positional):
  model = tr.DecoderLM(config(positional=positional, num_decoder_layers=2), rngs=nnx.Rngs(6))
  x = shift_right(tokens(14, (2, 8)))
  full = model(x)
  np.testing.assert_allclose(model(x.at[:, 5:].set(tokens(13, (2, 3))))[:, :5], full[:, :5], atol=1e-5)
  np.testing.assert_allclose(model(pad(x, 3))[:, :8], full, atol=1e-5)
  np.testing.assert_allclose(cached_logits(model, x), full, atol=1e-4, rtol=1e-4)


def test_decoder_lm_generation_from_a_prompt():
  model = tr.DecoderLM(config(positional='learned'), rngs=nnx.Rngs(7))
  prompt = shift_right(tokens(15, (2, 3)))
  out = model.generate(prompt, max_new_tokens=5)
  assert out.shape == (2, 8)
  np.testing.assert_array_equal(out[:, :3], prompt)
  argmax_consistent(model(out)[:, 2:-1], out[:, 3:])
  np.testing.assert_array_equal(model.generate(prompt, max_new_tokens=5, beam_size=1, alpha=0.0), out)
  beams = model.generate(prompt, max_new_tokens=5, beam_size=3)
  assert beams.shape == (2, 8) and bool(jnp.all(beams[:, :3] == prompt))
  with pytest.raises(ValueError, match='17'):
    model.generate(prompt, max_new_tokens=15)
  with pytest.raises(ValueError, match='prompt'):
    model.generate(prompt[:, :0], max_new_tokens=2)


def test_decoder_lm_overfits_a_tiny_batch():
  model = tr.DecoderLM(config(num_decoder_layers=2, positional='rope'), rngs=nnx.Rngs(0))
  # Distinct first tokens, so that everything after them is determined by the row.
  x = jnp.concatenate([jnp.full((8, 1), BOS), jnp.arange(3, 11)[:, None], tokens(16, (8, 7))], axis=1)
  inputs, labels = x[:, :-1], x[:, 1:]
  weights = jnp.ones(labels.shape).at[:, 0].set(0.0)
  losses = overfit(model, lambda m: xent(m(inputs), labels, weights), steps=200, lr=1e-2)
  assert losses[-1] <= 0.1 * losses[0], (losses[0], losses[-1])


def test_dropout_is_active_only_when_not_deterministic():
  model = tr.DecoderLM(config(dropout_rate=0.3), rngs=nnx.Rngs(0))
  x = tokens(17, (2, 8))
  np.testing.assert_array_equal(model(x), model(x))
  assert not np.allclose(model(x, deterministic=False), model(x))


# ------------------------------------------------------------------------------ every variant, every model
@pytest.mark.parametrize('variant', ALL_VARIANTS)
def test_every_variant_runs_through_every_model(variant):
  """Forward and gradient of each model with the variant (grouped-query heads, padded batches); decoders
  only for variants that support causal attention, where causality and cached decoding are checked too."""
  opts = VARIANT_OPTIONS.get(variant, {})
  causal = attention.get(variant).causal
  src = tokens(18, (2, 8), lengths=[8, 5])
  tgt = tokens(19, (2, 6), lengths=[6, 4])

  encoder = tr.Encoder(config(attention=variant, attention_options=opts, pooling='cls', positional='rope'),
                       rngs=nnx.Rngs(0))
  loss_and_finite_grads(encoder, lambda m, x: (xent(m(x), jnp.arange(2)), None), src)

  # Self-attention too when it can be causal; cross-attention whenever the variant has a cross form
  # (local's window relates positions of one sequence, so it has none).
  cross = attention.get(variant).cross
  seq2seq = tr.EncoderDecoder(config(attention=variant if causal else 'dot_product',
                                     attention_options=opts if causal else {},
                                     cross_attention=variant if cross else 'dot_product',
                                     cross_attention_options=opts if cross else {}), rngs=nnx.Rngs(0))
  def seq2seq_loss(m, s, t):
    logits = m(s, shift_right(t))
    # The full pass's logits and the encoder's memory come out of the gradient's program: no compile of their own.
    return xent(logits, t, t != PAD), (logits, m.encode(s))
  full, memory = loss_and_finite_grads(seq2seq, seq2seq_loss, src, tgt)
  real = (shift_right(tgt) != PAD)[..., None]  # the cache holds no target padding mask
  np.testing.assert_allclose(cached_logits(seq2seq, shift_right(tgt), *memory) * real, full * real,
                             atol=2e-4, rtol=2e-4)
  if not causal:
    return

  lm = tr.DecoderLM(config(attention=variant, attention_options=opts, positional='rope'), rngs=nnx.Rngs(0))
  def lm_loss(m, x):
    logits = m(x)
    return xent(logits[:, :-1], x[:, 1:]), logits
  x = shift_right(tokens(20, (2, 8)))
  full = loss_and_finite_grads(lm, lm_loss, x)
  changed = loss_and_finite_grads(lm, lm_loss, x.at[:, 5:].set(3))
  np.testing.assert_allclose(changed[:, :5], full[:, :5], atol=1e-5)  # no look-ahead
  np.testing.assert_allclose(cached_logits(lm, x), full, atol=2e-4, rtol=2e-4)


def test_grouped_and_multi_query_heads_run():
  for kv in (1, 2, 4):
    model = tr.DecoderLM(config(num_kv_heads=kv), rngs=nnx.Rngs(0))
    assert model.decoder.blocks[0].self_attention.key.kernel.shape == (16, kv * 4)
    assert model(tokens(20, (2, 8))).shape == (2, 8, V)


# ------------------------------------------------------------------------------------- recurrent and hybrid
RECURRENT = [n for n in ALL_VARIANTS if attention.get(n).decode_recurrent]


@pytest.mark.parametrize('variant', RECURRENT)
def test_recurrent_decoder_lm_greedy_generation_is_the_teacher_forced_argmax(variant):
  model = tr.DecoderLM(config(attention=variant, positional='rope', num_decoder_layers=2), rngs=nnx.Rngs(3))
  prompt = shift_right(tokens(21, (2, 3)))
  out = model.generate(prompt, max_new_tokens=5)
  argmax_consistent(model(out)[:, 2:-1], out[:, 3:])
  model.init_cache(2, 1000)
  attn = model.decoder.blocks[0].self_attention
  assert attn.cached_key is None and attn.decode_state.shape == (2, 2, 4, 4)  # [B, K, H, V] whatever the length


@pytest.mark.parametrize('spec', [('gated_delta', 'dot_product', 'gated_delta'), 'gla+gla+dot_product'])
def test_hybrid_decoder_lm_trains_one_step_and_decodes_consistently(spec):
  cfg = config(attention=spec, num_decoder_layers=3, positional='rope')
  names = spec if isinstance(spec, tuple) else tuple(spec.split('+'))
  assert cfg.attention == names and hash(cfg)
  model = tr.DecoderLM(cfg, rngs=nnx.Rngs(0))
  assert tuple(b.self_attention.variant for b in model.decoder.blocks) == names
  x = shift_right(tokens(22, (2, 8)))
  losses = overfit(model, lambda m: xent(m(x)[:, :-1], x[:, 1:]), steps=2)
  assert np.all(np.isfinite(losses)) and losses[1] < losses[0]
  full = model(x)
  np.testing.assert_allclose(cached_logits(model, x), full, atol=2e-4, rtol=2e-4)
  prompt = x[:, :2]
  out = model.generate(prompt, max_new_tokens=4)
  argmax_consistent(model(out)[:, 1:-1], out[:, 2:])


def test_hybrid_per_layer_options_and_bad_lengths():
  cfg = config(attention=('gla', 'dot_product'), attention_options=({'gate_rank': 2, 'chunk_size': 4}, {}),
               num_encoder_layers=2, num_decoder_layers=2)
  model = tr.DecoderLM(cfg, rngs=nnx.Rngs(0))
  first, second = (b.self_attention for b in model.decoder.blocks)
  assert first.gate_down.shape == (16, 2) and dict(first.variant_options) == {'chunk_size': 4}
  assert second.variant == 'dot_product' and not second.variant_options
  assert model(tokens(23, (2, 8))).shape == (2, 8, V)
  with pytest.raises(ValueError, match='3 per-layer variants'):
    config(attention='linear+linear+dot_product', num_encoder_layers=2, num_decoder_layers=2)
  with pytest.raises(ValueError, match='stack of 1 layers'):
    tr.Encoder(config(attention='linear+dot_product', num_encoder_layers=1, num_decoder_layers=2), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='per-layer attention_options'):
    config(attention='linear', attention_options=({}, {}))
  with pytest.raises(ValueError, match='linear'):
    config(attention=('dot_product', 'linear'), positional='alibi')
  with pytest.raises(ValueError, match='bogus'):
    config(attention='dot_product+bogus')


def test_hybrid_vit_runs_and_checks_its_length():
  from attention_research.models import vit  # pylint: disable=g-import-not-at-top
  cfg = vit.ViTConfig(image_size=4, patch_size=2, channels=1, num_classes=C, d_model=16, num_heads=4, num_layers=2,
                      attention=['gated_delta', 'dot_product'], pooling='mean')
  model = vit.ViT(cfg, rngs=nnx.Rngs(0))
  image = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 1))
  loss_and_finite_grads(model, lambda m, x: (xent(m(x), jnp.arange(2)), None), image)
  with pytest.raises(ValueError, match='3 per-layer variants'):
    vit.ViTConfig(num_layers=2, attention='linear+linear+linear')


# ------------------------------------------------------------------------------- layer refinements from configs
REFINEMENTS = [('output_gate', 'elementwise', 'dot_product'), ('qk_norm', True, 'dot_product'),
               ('sinks', True, 'dot_product'), ('short_conv', 3, 'dot_product'), ('short_conv', 3, 'gated_delta')]


@pytest.mark.parametrize('option, value, variant', REFINEMENTS)
def test_config_layer_options_reach_the_attention_layers_and_decode_consistently(option, value, variant):
  plain = tr.DecoderLM(config(attention=variant, positional='rope'), rngs=nnx.Rngs(0))
  model = tr.DecoderLM(config(attention=variant, attention_options={option: value}, positional='rope'),
                       rngs=nnx.Rngs(0))
  attn = model.decoder.blocks[0].self_attention
  assert attn.variant == variant and not attn.variant_options  # a layer option, not a variant function option
  x = shift_right(tokens(24, (2, 8)))
  full = model(x)
  assert not np.allclose(full, plain(x), atol=1e-4)
  np.testing.assert_allclose(cached_logits(model, x), full, atol=2e-4, rtol=2e-4)
  # The encoder-decoder's cross-attention gets the options but not the convolution over one sequence.
  seq2seq = tr.EncoderDecoder(config(attention=variant, attention_options={option: value}), rngs=nnx.Rngs(0))
  block = seq2seq.decoder.blocks[0]
  assert block.cross_attention.short_conv is None
  assert (block.self_attention.short_conv is not None) == (option == 'short_conv')
  assert seq2seq(tokens(25, (2, 8)), x).shape == (2, 8, V)


@pytest.mark.parametrize('option, value', [('output_gate', 'headwise'), ('qk_norm', True), ('sinks', True),
                                           ('short_conv', 2)])
def test_vit_layer_options_change_the_model(option, value):
  from attention_research.models import vit  # pylint: disable=g-import-not-at-top
  base = dict(image_size=4, patch_size=2, channels=1, num_classes=C, d_model=16, num_heads=4, num_layers=1)
  image = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 1))
  plain = vit.ViT(vit.ViTConfig(**base), rngs=nnx.Rngs(0))
  model = vit.ViT(vit.ViTConfig(**base, attention_options={option: value}), rngs=nnx.Rngs(0))
  attn = model.encoder.blocks[0].self_attention
  assert getattr(attn, {'output_gate': 'gate', 'qk_norm': 'query_norm', 'sinks': 'sink_logits',
                        'short_conv': 'short_conv'}[option]) is not None
  assert not np.allclose(model(image), plain(image), atol=1e-4)
