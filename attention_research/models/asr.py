"""Hybrid CTC/attention speech recognition (Watanabe et al. 2017; Gulati et al. 2020 for the Conformer).

    audio [B, N] -> log-mel [B, n, M] -> per-utterance mean/variance normalisation -> SpecAugment (training)
      -> two stride-2 3x3 convolutions (x4 in time) -> Transformer or Conformer encoder [B, F, D]
      -> CTC head [B, F, V]   and   attention decoder (causal self-attention + cross-attention) [B, T, V]

The encoder's self-attention and the decoder's attention are any registered variants. Padding is a key-padding
mask built from frame lengths, so the linear-time variants (masks == 'key_padding') run in the encoder.

Framing: the front end frames without padding the signal (tf.signal.stft's pad_end=False), so feature frame i
covers samples [i * step, i * step + frame_length) and a padded utterance's first n(length) frames are exactly
the unpadded utterance's frames. The subsampling convolutions are unpadded too ('VALID'), so encoder frame f
sees feature frames [4f, 4f + 7); the encoder's frame count is ((n - 1) // 2 - 1) // 2. Nothing after the
front end lets padded frames reach real ones (masked attention, zeroed inputs to the depthwise convolution,
LayerNorm rather than BatchNorm), so padding a batch does not change the outputs on the real frames.

Decoding (`ASR.decode`): CTC greedy, attention greedy or beam search, and joint CTC/attention beam search,
which ranks hypotheses by (1 - ctc_weight) log p_att + ctc_weight log p_ctc-prefix (ctc.prefix_scores).

Files: asr_config (ASRConfig and its checks), asr_frontend (normalisation, SpecAugment, subsampling),
layers.audio_frontend (log-mel), layers.conformer (the Conformer encoder), asr_search (decoding), and this one
(the model and its loss). The public names of all of them are importable from here.

Dimension letters: B batch, N samples, n feature frames, M mel bins, F encoder frames, D d_model, T target
length, V vocabulary (the CTC blank included), H heads, R decoding rows (B * beam), K scored candidates.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from attention_research.attention import masks
from attention_research.layers import audio_frontend
from attention_research.layers.conformer import ConformerStack
from attention_research.models import asr_search
from attention_research.models._checks import check_positive
from attention_research.models.asr_config import ENCODERS, METHODS, POSITIONAL, ASRConfig, check_ctc_weight
from attention_research.models.asr_frontend import ConvSubsampling, SpecAugment, normalize, subsampled_length
from attention_research.models.transformer import TransformerStack

__all__ = ['ASR', 'ASRConfig', 'ConvSubsampling', 'ENCODERS', 'METHODS', 'POSITIONAL', 'SpecAugment',
           'check_ctc_weight', 'hybrid_loss', 'normalize', 'subsampled_length']


# --------------------------------------------------------------------------------------------------- model
class ASR(nnx.Module):
  """Hybrid CTC/attention recogniser: audio [B, N] -> CTC logits [B, F, V] and decoder logits [B, T, V]."""

  def __init__(self, cfg: ASRConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.specaugment = SpecAugment(cfg.num_freq_masks, cfg.freq_mask_width, cfg.num_time_masks, cfg.time_mask_width,
                                   cfg.time_mask_ratio, rngs=rngs) if cfg.specaugment else None
    self.subsampling = ConvSubsampling(cfg.num_mel_bins, cfg.channels, cfg.d_model, rngs=rngs)
    if cfg.encoder == 'conformer':
      self.encoder = ConformerStack(cfg.num_encoder_layers, cfg.d_model, cfg.num_heads, cfg.mlp_features,
                                    cfg.conv_kernel_size, cfg.dropout_rate, positional=cfg.positional,
                                    max_length=cfg.max_frames,
                                    attention_kwargs=cfg.encoder_config().attention_kwargs(), rngs=rngs)
    else:
      self.encoder = TransformerStack(cfg.encoder_config(), cfg.num_encoder_layers, rngs=rngs)
    self.ctc_head = nnx.Linear(cfg.d_model, cfg.vocab_size, rngs=rngs)
    self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs)
    self.decoder = TransformerStack(cfg.decoder_config(), cfg.num_decoder_layers, causal=True, cross=True,
                                    rngs=rngs)
    self.output = nnx.Linear(cfg.d_model, cfg.vocab_size, rngs=rngs)

  # -- front end and encoder
  def features(self, audio, audio_lengths, *, deterministic: bool = True):
    """audio [B, N] float, audio_lengths [B] samples -> (normalised log-mel [B, n, M], frame counts [B])."""
    cfg = self.cfg
    audio = jnp.asarray(audio, jnp.float32)
    if audio.ndim != 2:
      raise ValueError(f'audio must be [B, N] samples; got shape {audio.shape}.')
    feats = audio_frontend.log_mel_spectrogram(
        audio, sample_rate=cfg.sample_rate, frame_length=cfg.frame_length, frame_step=cfg.frame_step,
        fft_length=cfg.fft_length, num_mel_bins=cfg.num_mel_bins,
        upper_edge_hertz=min(7600.0, cfg.sample_rate / 2))
    lengths = jnp.minimum(cfg.feature_frames(jnp.asarray(audio_lengths)), feats.shape[1])
    feats = normalize(feats, lengths)
    if self.specaugment is not None and not deterministic:
      feats = self.specaugment(feats, lengths)
    return feats, lengths

  def encode(self, audio, audio_lengths, *, deterministic: bool = True):
    """audio [B, N], audio_lengths [B] -> (encoder frames [B, F, D], frame_lengths [B])."""
    cfg = self.cfg
    feats, lengths = self.features(audio, audio_lengths, deterministic=deterministic)
    if feats.shape[1] < 7:
      raise ValueError(f'audio of {audio.shape[1]} samples gives {feats.shape[1]} feature frames; the x4 '
                       f'subsampling needs at least 7 (about {cfg.frame_length + 6 * cfg.frame_step} samples).')
    x = self.subsampling(feats)
    F = x.shape[1]
    if F > cfg.max_frames:
      raise ValueError(f'{F} encoder frames exceed max_frames={cfg.max_frames}.')
    frame_lengths = jnp.minimum(subsampled_length(lengths), F).astype(jnp.int32)
    valid = jnp.arange(F)[None, :] < frame_lengths[:, None]
    x = jnp.where(valid[..., None], x, 0.0)
    return self.encoder(x, valid, deterministic=deterministic), frame_lengths

  # -- decoder
  def _embed_targets(self, tokens):
    return self.embed(tokens) * math.sqrt(self.cfg.d_model)

  def decode_targets(self, targets_in, memory, frame_lengths, *, deterministic: bool = True):
    """Teacher-forced decoder: targets_in [B, T] (BOS + targets[:-1]) -> logits [B, T, V]; layers.capture_attention
    reads {'self': [per-layer [B, H, T, T]], 'cross': [per-layer [B, H, T, F]]}."""
    T = targets_in.shape[1]
    if T > self.cfg.max_target_length:
      raise ValueError(f'{T} target positions exceed max_target_length={self.cfg.max_target_length}.')
    memory_mask = masks.padding(frame_lengths, memory.shape[1])
    h = self.decoder(self._embed_targets(targets_in), targets_in != self.cfg.pad_id, memory=memory,
                     memory_mask=memory_mask, deterministic=deterministic)
    return self.output(h)

  def decode_step(self, tokens, memory, memory_mask):
    """One cached decoder step: tokens [R] -> logits [R, V]. Needs decoder.init_cache(R, length)."""
    h = self.decoder(self._embed_targets(tokens[:, None]), memory=memory, memory_mask=memory_mask, decode=True)
    return self.output(h[:, 0])

  def __call__(self, audio, audio_lengths, targets_in, *, deterministic: bool = True):
    """audio [B, N] float samples, audio_lengths [B], targets_in [B, T] (BOS + targets[:-1], 0-padded).

    Returns {'ctc_logits': [B, F, V], 'frame_lengths': [B], 'logits': [B, T, V]}; layers.capture_attention
    reads {'encoder': [...], 'self': [...], 'cross': [...]} (one array per layer; the last 'cross' is the
    decoder's alignment over encoder frames).
    """
    memory, frame_lengths = self.encode(audio, audio_lengths, deterministic=deterministic)
    # The CTC head is traced before the decoder: the order fixes how the two gradients into `memory` are summed,
    # and with it the last bits of every run (results stay comparable to earlier versions).
    ctc_logits = self.ctc_head(memory)
    logits = self.decode_targets(targets_in, memory, frame_lengths, deterministic=deterministic)
    return {'ctc_logits': ctc_logits, 'frame_lengths': frame_lengths, 'logits': logits}

  def loss(self, outputs, targets, *, ctc_weight: float | None = None, label_smoothing: float = 0.0):
    """hybrid_loss with this model's ids and, by default, its configured ctc_weight."""
    cfg = self.cfg
    return hybrid_loss(outputs, targets, ctc_weight=cfg.ctc_weight if ctc_weight is None else ctc_weight,
                       blank_id=cfg.blank_id, pad_id=cfg.pad_id, eos_id=cfg.eos_id,
                       label_smoothing=label_smoothing)

  # -- inference
  def decode(self, audio, audio_lengths, *, method: str = 'joint', beam_size: int = 4,
             max_length: int | None = None, ctc_weight: float | None = None, alpha: float = 0.0,
             pre_beam: int | None = None, ctc_margin: int | None = None):
    """Transcribes audio [B, N] (audio_lengths [B] samples) -> token ids [B, L].

    method: 'ctc_greedy' (best path: repeats merged, blanks removed; no EOS), 'attention_greedy',
      'attention_beam' (beam search over the decoder), 'ctc_prefix_beam' (beam search over CTC prefix
      probabilities alone), 'rescoring' (its n-best ranked by (1 - ctc_weight) log p_att + ctc_weight log p_ctc),
      or 'joint' (beam search scored by (1 - ctc_weight) log p_att + ctc_weight log p_ctc with CTC prefix
      scores). Every method but ctc_greedy ends a hypothesis with eos_id; every method pads with 0.
    max_length: L, default the number of encoder frames F (at most max_target_length for the decoder).
    ctc_weight: joint decoding's and rescoring's weight (default cfg.ctc_weight). alpha: GNMT length penalty exponent.
    pre_beam: joint decoding scores only the pre_beam best tokens of the attention decoder per hypothesis
      with CTC (ESPnet's pre-beam, for large vocabularies); default: every token. With pre_beam >= 2 *
      beam_size and ctc_weight = 0 the search equals 'attention_beam'.
    ctc_margin: windowed CTC prefix scores (ctc.py): a label may start only within ctc_margin encoder frames of
      the previous label's start; default: anywhere.
    decode_with_alignments also returns the alignments.
    """
    return self._transcribe(audio, audio_lengths, method=method, beam_size=beam_size, max_length=max_length,
                            ctc_weight=ctc_weight, alpha=alpha, pre_beam=pre_beam, alignments=False,
                            ctc_margin=ctc_margin)[0]

  def decode_with_alignments(self, audio, audio_lengths, *, method: str = 'joint', beam_size: int = 4,
                             max_length: int | None = None, ctc_weight: float | None = None, alpha: float = 0.0,
                             pre_beam: int | None = None):
    """`decode`, and the decoder's cross-attention [B, H, L, F] of each output token over the encoder frames
    (last layer, teacher-forced on the output; 0 at padding), for alignment plots: (tokens, weights)."""
    return self._transcribe(audio, audio_lengths, method=method, beam_size=beam_size, max_length=max_length,
                            ctc_weight=ctc_weight, alpha=alpha, pre_beam=pre_beam, alignments=True)

  def _transcribe(self, audio, audio_lengths, *, method, beam_size, max_length, ctc_weight, alpha, pre_beam,
                  alignments, ctc_margin=None):
    cfg = self.cfg
    if method not in METHODS:
      raise ValueError(f'unknown decoding method {method!r}; known: {METHODS}.')
    check_positive('beam_size', beam_size)
    check_positive('max_length', max_length, allow_none=True)
    check_positive('pre_beam', pre_beam, allow_none=True)
    if ctc_margin is not None and (isinstance(ctc_margin, bool) or not isinstance(ctc_margin, int) or ctc_margin < 0):
      raise ValueError(f'ctc_margin must be None or a number of frames >= 0; got {ctc_margin!r}.')
    ctc_weight = cfg.ctc_weight if ctc_weight is None else ctc_weight
    check_ctc_weight(ctc_weight)
    audio = jnp.asarray(audio, jnp.float32)
    audio_lengths = jnp.asarray(audio_lengths, jnp.int32)
    F = int(self.cfg.encoder_frames(audio.shape[1]))
    if max_length is None:
      max_length = F if method == 'ctc_greedy' else min(F, cfg.max_target_length)
    if method not in ('ctc_greedy', 'ctc_prefix_beam') and max_length > cfg.max_target_length:
      raise ValueError(f'max_length={max_length} exceeds max_target_length={cfg.max_target_length}.')
    pre_beam = None if pre_beam is None or pre_beam >= cfg.vocab_size else pre_beam
    graphdef, state = nnx.split(self)
    return asr_search.decode(graphdef, state, audio, audio_lengths, method=method, beam_size=beam_size,
                             max_length=max_length, ctc_weight=jnp.float32(ctc_weight), alpha=float(alpha),
                             pre_beam=pre_beam, alignments=alignments, margin=ctc_margin)


def hybrid_loss(outputs, targets, *, ctc_weight: float, blank_id: int = 0, pad_id: int = 0, eos_id: int = 2,
                label_smoothing: float = 0.0):
  """ctc_weight * CTC + (1 - ctc_weight) * attention cross-entropy, each summed over an utterance and
  averaged over the batch (so the two terms are on the same scale).

  outputs: ASR's dict (ctc_logits [B, F, V], frame_lengths [B], logits [B, T, V]).
  targets [B, T]: the decoder's outputs (tokens, eos_id, then pad_id). The CTC labels are the same tokens
    without EOS and padding. Returns (loss, {'ctc': ..., 'attention': ...}).
  """
  check_ctc_weight(ctc_weight)
  targets = jnp.asarray(targets, jnp.int32)
  ctc_logits = outputs['ctc_logits'].astype(jnp.float32)
  F = ctc_logits.shape[1]
  logit_paddings = (jnp.arange(F)[None, :] >= outputs['frame_lengths'][:, None]).astype(jnp.float32)
  label_paddings = ((targets == pad_id) | (targets == eos_id)).astype(jnp.float32)
  per_utterance = optax.ctc_loss(ctc_logits, logit_paddings, targets, label_paddings, blank_id=blank_id)
  # An utterance with fewer frames than its labels need (one per label, one more per repeated pair) has no
  # CTC path; optax then returns a huge finite loss that would swamp the batch. Such utterances are left out
  # of the CTC term, as torch's zero_infinity does, and still train the attention decoder.
  real = label_paddings == 0
  repeats = jnp.sum(real[:, 1:] & (targets[:, 1:] == targets[:, :-1]), axis=-1)
  feasible = jnp.sum(real, axis=-1) + repeats <= outputs['frame_lengths']
  ctc_loss = jnp.sum(jnp.where(feasible, per_utterance, 0.0)) / jnp.maximum(jnp.sum(feasible), 1)
  logits = outputs['logits'].astype(jnp.float32)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  if label_smoothing:
    nll = (1.0 - label_smoothing) * nll - label_smoothing * jnp.mean(jax.nn.log_softmax(logits), axis=-1)
  att_loss = jnp.mean(jnp.sum(jnp.where(targets != pad_id, nll, 0.0), axis=-1))
  loss = ctc_weight * ctc_loss + (1.0 - ctc_weight) * att_loss
  return loss, {'ctc': ctc_loss, 'attention': att_loss}

