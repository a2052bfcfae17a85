"""Hybrid CTC/attention ASR: training, the hybrid loss, CTC decoding and prefix scores, beam searches, padding,
every attention variant in the encoder, frame lengths and config validation. Tiny shapes: 0.3 s of audio gives
28 feature frames and 6 encoder frames."""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attention_research import attention, layers
from attention_research.layers import audio_frontend
from attention_research.models import asr, ctc

N = 4800  # 0.3 s at 16 kHz
V = 12
CFG = asr.ASRConfig(vocab_size=V, num_mel_bins=20, d_model=32, num_heads=4, num_encoder_layers=1,
                    num_decoder_layers=1, mlp_dim=64, conv_kernel_size=5, dropout_rate=0.0, ctc_weight=0.3,
                    max_frames=64, max_target_length=16)
TARGETS = np.array([[3, 4, 5, 2], [6, 7, 2, 0]])  # tokens, EOS, padding
TARGETS_IN = np.array([[1, 3, 4, 5], [1, 6, 7, 0]])  # BOS + targets[:-1]


def tones(lengths=(N, 4000), total=N):
  """Two utterances of two tones each, zero-padded to `total` samples."""
  t = np.arange(total) / 16000
  audio = np.stack([np.sin(2 * np.pi * (300 + 500 * (t > 0.15)) * t),
                    np.sin(2 * np.pi * (900 - 400 * (t > 0.1)) * t)]).astype(np.float32)
  for row, n in enumerate(lengths):
    audio[row, n:] = 0.0
  return audio, np.asarray(lengths, np.int32)


@nnx.jit
def forward(model, audio, lengths, targets_in):
  outputs, maps = layers.capture_attention(lambda m: m(audio, lengths, targets_in), model)
  return dict(outputs, cross_attention=maps['cross'][-1])


@pytest.fixture(scope='module')
def trained():
  """The shared config overfitted on the two-utterance batch: (model, initial loss, final loss)."""
  model = asr.ASR(CFG, rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

  @nnx.jit
  def step(model, opt, audio, lengths, targets_in, targets):
    def loss_fn(model):
      return model.loss(model(audio, lengths, targets_in, deterministic=False), targets)[0]
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss

  audio, lengths = tones()
  losses = [float(step(model, opt, audio, lengths, TARGETS_IN, TARGETS)) for _ in range(150)]
  return model, losses[0], losses[-1]


def test_overfits_tiny_batch(trained):
  _, first, last = trained
  print(f'hybrid loss {first:.4f} -> {last:.4f}')
  assert np.isfinite(last) and last <= 0.1 * first


def test_trained_model_decodes_its_targets_by_every_method(trained):
  model, _, _ = trained
  audio, lengths = tones()
  np.testing.assert_array_equal(model.decode(audio, lengths, method='ctc_greedy', max_length=4),
                                np.where(TARGETS == 2, 0, TARGETS))
  for method, kw in (('attention_greedy', {}), ('attention_beam', {'beam_size': 2}),
                     ('joint', {'beam_size': 2, 'ctc_weight': 0.5})):
    np.testing.assert_array_equal(model.decode(audio, lengths, method=method, max_length=4, **kw), TARGETS)


def test_decode_returns_alignment_weights(trained):
  model, _, _ = trained
  audio, lengths = tones()
  tokens, weights = model.decode_with_alignments(audio, lengths, method='joint', beam_size=2, max_length=5)
  F = CFG.encoder_frames(N)
  assert weights.shape == (2, CFG.num_heads, 5, F)
  frame_lengths = CFG.encoder_frames(lengths)
  real = np.asarray(tokens) != 0  # [B, L]: output tokens, EOS included
  sums = np.asarray(weights).sum(-1).transpose(0, 2, 1)  # [B, L, H]
  np.testing.assert_allclose(sums[real], 1.0, rtol=1e-5)
  assert np.all(sums[~real] == 0.0)
  for b, f in enumerate(frame_lengths):
    assert np.all(np.asarray(weights)[b, :, :, f:] == 0.0)


# ------------------------------------------------------------------------------------------------ the loss
@pytest.fixture(scope='module')
def outputs():
  audio, lengths = tones()
  return forward(asr.ASR(CFG, rngs=nnx.Rngs(1)), audio, lengths, TARGETS_IN)


def test_hybrid_loss_with_ctc_weight_one_is_optax_ctc(outputs):
  loss, parts = asr.hybrid_loss(outputs, TARGETS, ctc_weight=1.0)
  F = outputs['ctc_logits'].shape[1]
  logit_paddings = (np.arange(F)[None, :] >= np.asarray(outputs['frame_lengths'])[:, None]).astype(np.float32)
  labels = np.array([[3, 4, 5], [6, 7, 0]])
  label_paddings = np.array([[0, 0, 0], [0, 0, 1]], np.float32)
  direct = jnp.mean(optax.ctc_loss(outputs['ctc_logits'], logit_paddings, labels, label_paddings, blank_id=0))
  np.testing.assert_allclose(loss, direct, rtol=1e-6)
  np.testing.assert_allclose(parts['ctc'], direct, rtol=1e-6)


def test_hybrid_loss_with_ctc_weight_zero_is_the_attention_loss(outputs):
  loss, parts = asr.hybrid_loss(outputs, TARGETS, ctc_weight=0.0)
  logp = np.asarray(jax.nn.log_softmax(outputs['logits'], -1))
  nll = -np.take_along_axis(logp, TARGETS[..., None], -1)[..., 0]
  direct = np.mean(np.sum(nll * (TARGETS != 0), -1))
  np.testing.assert_allclose(loss, direct, rtol=1e-5)
  np.testing.assert_allclose(parts['attention'], direct, rtol=1e-5)
  mixed, _ = asr.hybrid_loss(outputs, TARGETS, ctc_weight=0.25)
  np.testing.assert_allclose(mixed, 0.25 * parts['ctc'] + 0.75 * parts['attention'], rtol=1e-6)


def test_utterances_without_a_ctc_path_are_left_out_of_the_ctc_term(outputs):
  """Row 0 needs 3 frames for its 3 labels; with 2 it has no CTC path and must not swamp row 1's loss."""
  short = dict(outputs, frame_lengths=jnp.asarray(outputs['frame_lengths']).at[0].set(2))
  _, parts = asr.hybrid_loss(short, TARGETS, ctc_weight=1.0)
  F = outputs['ctc_logits'].shape[1]
  row1 = optax.ctc_loss(outputs['ctc_logits'][1:], (np.arange(F) >= int(short['frame_lengths'][1]))[None].astype(
      np.float32), np.array([[6, 7, 0]]), np.array([[0, 0, 1]], np.float32), blank_id=0)
  np.testing.assert_allclose(parts['ctc'], row1[0], rtol=1e-6)


# -------------------------------------------------------------------------------------------------- CTC
def test_ctc_greedy_collapses_repeats_and_removes_blanks():
  ids = np.array([[0, 3, 3, 0, 3, 4, 4, 0, 5, 5],
                  [7, 7, 7, 0, 0, 7, 2, 2, 9, 9]])
  tokens, counts = ctc.greedy_collapse(ids, lengths=[10, 8])
  np.testing.assert_array_equal(tokens, [[3, 3, 4, 5, 0, 0, 0, 0, 0, 0],
                                         [7, 7, 2, 0, 0, 0, 0, 0, 0, 0]])  # frames 8, 9 of row 1 dropped
  np.testing.assert_array_equal(counts, [4, 3])
  logits = 5.0 * jax.nn.one_hot(ids, 10)
  np.testing.assert_array_equal(ctc.greedy(logits, [10, 8])[0], tokens)


def _collapse(path, blank=0):
  return tuple(p for i, p in enumerate(path) if p != blank and (i == 0 or path[i - 1] != p))


@pytest.mark.parametrize('length', [5, 3])
def test_ctc_prefix_scores_match_brute_force(length):
  """psi(g + c) = sum over all alignments (V^F of them) whose labels start with g + c; psi(g + eos) =
  sum over those whose labels are exactly g. Frames past `length` are padding."""
  F, eos = 5, 3
  log_probs = jax.nn.log_softmax(1.5 * jax.random.normal(jax.random.PRNGKey(0), (1, F, 4)), -1)
  lp = np.asarray(log_probs, np.float64)[0, :length]
  paths = [(p, _collapse(p), np.exp(sum(lp[t, s] for t, s in enumerate(p))))
           for p in itertools.product(range(4), repeat=length)]

  def brute(prefix, exact):
    total = sum(pr for _, labels, pr in paths if (labels == prefix if exact else labels[:len(prefix)] == prefix))
    return np.log(total) if total > 0 else -np.inf

  cand = jnp.arange(4)[None]
  for prefix in [(), (1,), (1, 1), (2, 1), (1, 2, 1)]:
    state = ctc.init_state(log_probs, jnp.array([length]))
    for tok in prefix:
      psi, r = ctc.prefix_scores(state, cand, eos_id=eos)
      state = ctc.advance(state, cand, psi, r, jnp.array([tok]))
    psi, _ = ctc.prefix_scores(state, cand, eos_id=eos)
    for c in (1, 2):
      want = brute(prefix + (c,), exact=False)
      if np.isfinite(want):
        np.testing.assert_allclose(psi[0, c], want, rtol=1e-5, atol=1e-5)
      else:
        assert psi[0, c] <= ctc.LOG_ZERO / 2
    np.testing.assert_allclose(psi[0, eos], brute(prefix, exact=True), rtol=1e-5, atol=1e-5)
    assert psi[0, 0] == ctc.LOG_ZERO  # the blank is never a label


# --------------------------------------------------------------------------------------------- searches
@pytest.fixture(scope='module')
def untrained():
  return asr.ASR(CFG, rngs=nnx.Rngs(2))


def test_attention_beam_of_one_equals_greedy(untrained):
  audio, lengths = tones()
  greedy = untrained.decode(audio, lengths, method='attention_greedy', max_length=6)
  beam = untrained.decode(audio, lengths, method='attention_beam', beam_size=1, max_length=6)
  np.testing.assert_array_equal(greedy, beam)


def test_joint_without_ctc_equals_attention_beam(untrained):
  audio, lengths = tones()
  beam = untrained.decode(audio, lengths, method='attention_beam', beam_size=3, max_length=6)
  joint = untrained.decode(audio, lengths, method='joint', beam_size=3, max_length=6, ctc_weight=0.0)
  np.testing.assert_array_equal(beam, joint)
  # With a pre-beam of 2 * beam_size candidates, nothing the attention beam could pick is left out.
  joint = untrained.decode(audio, lengths, method='joint', beam_size=3, max_length=6, ctc_weight=0.0, pre_beam=6)
  np.testing.assert_array_equal(beam, joint)


def test_no_search_lets_the_blank_into_a_hypothesis():
  # With a CTC weight above 0.1 and a beam of at least V - 1, the blank once took a live beam slot and the next
  # step's psi(g + c) - psi(g) added about ctc_weight * 1e10: the transcript became [blank, EOS].
  model = asr.ASR(dataclasses.replace(CFG, vocab_size=6), rngs=nnx.Rngs(2))
  audio, lengths = tones()
  runs = [('attention_greedy', 1, 0.0)] + [('attention_beam', W, 0.0) for W in (3, 6)]
  runs += [('joint', W, w) for W in (1, 3, 5, 6) for w in (0.0, 0.3, 1.0)]
  for method, W, w in runs:
    tokens = np.asarray(model.decode(audio, lengths, method=method, beam_size=W, ctc_weight=w, max_length=4))
    for row in tokens.tolist():
      end = row.index(CFG.eos_id) if CFG.eos_id in row else len(row)
      assert 0 not in row[:end] and all(t == 0 for t in row[end + 1:]), (method, W, w, tokens)


# ---------------------------------------------------------------------------------------------- padding
@pytest.mark.parametrize('encoder', ['conformer', 'transformer'])
def test_padding_does_not_change_real_frames(encoder):
  """Row 1 alone (3200 samples) and padded to 4800 in a batch: same CTC logits on its real frames, same
  decoder logits, and cross-attention only over its real frames. Framing has no end padding, so the first
  num_frames(3200) feature frames are the same either way."""
  cfg = CFG if encoder == 'conformer' else dataclasses.replace(CFG, encoder='transformer')
  model = asr.ASR(cfg, rngs=nnx.Rngs(3))
  audio, lengths = tones((N, 3200))
  batch = forward(model, audio, lengths, TARGETS_IN)
  alone = forward(model, audio[1:, :3200], lengths[1:], TARGETS_IN[1:])
  F = int(alone['frame_lengths'][0])
  assert F == cfg.encoder_frames(3200) == alone['ctc_logits'].shape[1] and int(batch['frame_lengths'][1]) == F
  np.testing.assert_allclose(batch['ctc_logits'][1, :F], alone['ctc_logits'][0], atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(batch['logits'][1], alone['logits'][0], atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(batch['cross_attention'][1, ..., :F], alone['cross_attention'][0], atol=1e-5)
  assert np.all(np.asarray(batch['cross_attention'][1, ..., F:]) == 0.0)


# ----------------------------------------------------------------------------------------------- variants
VARIANT_OPTIONS = {
    'local': {'window': (2, 2)},
    'block_sparse': {'block_size': 2, 'num_window_blocks': 3, 'num_global_blocks': 1, 'num_random_blocks': 1},
    'linformer': {'rank': 4},
    'performer': {'num_features': 16},
    'additive': {'hidden': 8},
}


@pytest.mark.parametrize('variant', sorted(v.name for v in attention.VARIANTS.values()
                                           if v.masks in ('full', 'key_padding')))
def test_every_key_padding_variant_runs_in_the_encoder(variant):
  cfg = asr.ASRConfig(vocab_size=V, num_mel_bins=12, d_model=16, num_heads=2, num_encoder_layers=1,
                      num_decoder_layers=1, mlp_dim=32, conv_kernel_size=3, dropout_rate=0.0, max_frames=8,
                      encoder_attention=variant, encoder_attention_options=VARIANT_OPTIONS.get(variant, {}))
  model = asr.ASR(cfg, rngs=nnx.Rngs(0))
  audio, lengths = tones()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def ctc_loss(params):
    model = nnx.merge(graphdef, params, rest)
    memory, frame_lengths = model.encode(audio, lengths)
    outputs = {'ctc_logits': model.ctc_head(memory), 'frame_lengths': frame_lengths}
    F = memory.shape[1]
    paddings = (jnp.arange(F)[None, :] >= frame_lengths[:, None]).astype(jnp.float32)
    return jnp.mean(optax.ctc_loss(outputs['ctc_logits'], paddings, TARGETS[:, :2], jnp.zeros((2, 2))))

  loss, grads = jax.jit(jax.value_and_grad(ctc_loss))(params)  # one program: grad of a jitted loss compiles two
  assert np.isfinite(loss)
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  attn_grads = jax.tree.leaves(nnx.state(nnx.merge(graphdef, grads, rest).encoder.blocks[0].self_attention,
                                         nnx.Param))
  assert any(np.any(g != 0) for g in attn_grads)


# ---------------------------------------------------------------------------------------------- lengths
@pytest.mark.parametrize('encoder', ['conformer', 'transformer'])
def test_subsampled_frame_lengths(encoder):
  cfg = dataclasses.replace(CFG, encoder=encoder)
  model = asr.ASR(cfg, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  for total in (2000, 4800, 8160):
    lengths = np.array([total, total - 160, total - 1000, 1360])
    audio = np.zeros((4, total), np.float32)
    memory, frame_lengths = jax.eval_shape(lambda s, a, l: nnx.merge(graphdef, s).encode(a, l), state, audio,
                                           lengths)
    n = audio_frontend.num_frames(total)
    assert memory.shape == (4, ((n - 1) // 2 - 1) // 2, cfg.d_model) == (4, cfg.encoder_frames(total), 32)
    got = model.encode(audio, lengths)[1] if total == 4800 else None
    if got is not None:
      want = [((audio_frontend.num_frames(int(m)) - 1) // 2 - 1) // 2 for m in lengths]
      np.testing.assert_array_equal(got, want)
  # 0.3 s: 28 feature frames (25 ms windows every 10 ms) -> 13 -> 6 encoder frames.
  assert (audio_frontend.num_frames(4800), asr.subsampled_length(28), cfg.encoder_frames(4800)) == (28, 6, 6)
  np.testing.assert_array_equal(asr.subsampled_length(np.array([7, 8, 10, 11, 3])), [1, 1, 1, 2, 0])


# --------------------------------------------------------------------------------------------- SpecAugment
def test_specaugment_masks_only_in_training():
  cfg = dataclasses.replace(CFG, specaugment=True, freq_mask_width=4, time_mask_width=5,
                            time_mask_ratio=0.2)
  model = asr.ASR(cfg, rngs=nnx.Rngs(0, specaugment=5))
  audio, lengths = tones()
  clean, n = model.features(audio, lengths)
  np.testing.assert_array_equal(model.features(audio, lengths, deterministic=True)[0], clean)
  masked, _ = model.features(audio, lengths, deterministic=False)
  masked2, _ = model.features(audio, lengths, deterministic=False)
  zeroed = np.asarray(masked) == 0.0
  changed = np.asarray(masked) != np.asarray(clean)
  assert changed.any() and np.all(zeroed[changed])  # masking sets values to 0 (the mean), nothing else
  assert not np.array_equal(masked, masked2)  # a fresh draw each call
  for b, frames in enumerate(np.asarray(n)):
    assert np.all(zeroed[b, frames:])  # padded frames stay 0 (they were 0 already)
    bins = zeroed[b, :frames].all(0).sum()  # fully masked mel bins
    assert bins <= cfg.num_freq_masks * cfg.freq_mask_width


# ------------------------------------------------------------------------------------------ bad configs
@pytest.mark.parametrize('kwargs, value', [
    ({'encoder_attention': 'softmax_v2'}, "'softmax_v2'"),
    ({'decoder_attention': 'linformer'}, "'linformer'"),
    ({'cross_attention': 'nope'}, "'nope'"),
    ({'d_model': 30}, 'd_model=30'),
    ({'ctc_weight': 1.5}, '1.5'),
    ({'ctc_weight': -0.1}, '-0.1'),
    ({'encoder': 'lstm'}, "'lstm'"),
    ({'conv_kernel_size': 4}, '4'),
    ({'dropout_rate': 1.0}, '1.0'),
    ({'blank_id': 1}, 'blank_id=1'),
    ({'eos_id': 12}, 'eos_id=12'),
    ({'num_mel_bins': 5}, 'num_mel_bins=5'),
    ({'vocab_size': 0}, 'vocab_size'),
    ({'positional': 'alibi'}, "'alibi'"),
])
def test_bad_configs_raise_with_the_value(kwargs, value):
  with pytest.raises(ValueError) as err:
    dataclasses.replace(CFG, **kwargs)
  assert value in str(err.value)


def test_bad_calls_raise(outputs, untrained):
  with pytest.raises(ValueError, match='2.0'):
    asr.hybrid_loss(outputs, TARGETS, ctc_weight=2.0)
  audio, lengths = tones()
  with pytest.raises(ValueError, match="'beam'"):
    untrained.decode(audio, lengths, method='beam')
  with pytest.raises(ValueError, match='-1'):
    untrained.decode(audio, lengths, ctc_weight=-1.0)
  with pytest.raises(ValueError, match='feature frames'):
    untrained.encode(audio[:, :1200], np.array([1200, 1200]))
