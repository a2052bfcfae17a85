"""Listen-attend-spell: padding invariance, the sown alignment, the loss without CTC, and bad names."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research.layers import capture_attention
from attention_research.models.las import LAS, LASConfig

SMALL = dict(vocab_size=9, num_mel_bins=8, encoder_hidden=4, num_encoder_layers=2, pyramid_layers=1, embed_size=4,
             decoder_hidden=6, attention_size=4, location_filters=2, location_kernel=3, chunk_size=2,
             max_target_length=8, dropout_rate=0.0)


@nnx.jit
def _forward(model, audio, lengths, targets_in):
  return capture_attention(lambda m: m(audio, lengths, targets_in), model)


def test_padding_does_not_reach_the_real_frames_and_the_alignment_is_the_cross_attention():
  model = LAS(LASConfig(attention='mocha', **SMALL), rngs=nnx.Rngs(0))
  rng = np.random.RandomState(0)
  audio = rng.randn(2, 2240).astype(np.float32)
  lengths, targets_in = jnp.asarray([1600, 2240]), jnp.asarray([[1, 3, 4], [1, 5, 6]])
  out, maps = _forward(model, jnp.asarray(audio), lengths, targets_in)
  audio[0, 1600:] = 10 * rng.randn(640)  # other padding
  other, _ = _forward(model, jnp.asarray(audio), lengths, targets_in)
  F = 4  # 8 feature frames, halved once
  assert out['frame_lengths'].tolist() == [F, 6] and out['ctc_logits'].shape[1] == 6
  np.testing.assert_allclose(other['ctc_logits'][0, :F], out['ctc_logits'][0, :F], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(other['logits'], out['logits'], rtol=1e-5, atol=1e-6)
  (cross,) = maps['cross']  # one layer, one head, as the Transformer recogniser's [B, H, T, F]
  assert cross.shape == (2, 1, 3, 6) and float(jnp.abs(cross[0, 0, :, F:]).max()) == 0.0
  assert float(cross.sum(-1).max()) <= 1 + 1e-5  # MoChA's chunkwise weights lose the mass that runs off the end


def test_without_ctc_branch_the_loss_is_the_spellers_and_ctc_decoding_refuses():
  model = LAS(LASConfig(attention='dot', ctc_weight=0.0, **SMALL), rngs=nnx.Rngs(0))
  assert model.ctc_head is None
  logits = np.random.RandomState(0).randn(1, 2, 9)
  loss, parts = model.loss({'logits': jnp.asarray(logits, jnp.float32), 'frame_lengths': jnp.asarray([4])},
                           jnp.asarray([[3, 2]]))
  logp = logits[0] - np.log(np.exp(logits[0]).sum(-1, keepdims=True))
  np.testing.assert_allclose(loss, -(logp[0, 3] + logp[1, 2]), rtol=1e-5)
  assert float(parts['ctc']) == 0.0
  with pytest.raises(ValueError, match="'joint' needs the CTC branch"):
    model.decode(jnp.ones((1, 1600)), jnp.asarray([1600]), method='joint')


def test_unknown_attention_and_bad_sizes_raise():
  with pytest.raises(ValueError, match=r"unknown LAS attention 'bahdanau'; known: \['dot', 'additive', 'location', "
                                       r"'coverage', 'mocha'\]"):
    LASConfig(vocab_size=9, attention='bahdanau')
  with pytest.raises(ValueError, match='pyramid_layers=3 exceeds num_encoder_layers=2'):
    LASConfig(vocab_size=9, num_encoder_layers=2, pyramid_layers=3)
