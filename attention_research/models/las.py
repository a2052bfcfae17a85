"""Listen, attend and spell (Chan et al. 2016), with an optional CTC branch (Kim et al. 2017; Watanabe et al. 2017).

    audio [B, N] -> log-mel [B, n, M] -> per-utterance normalisation -> SpecAugment (training)
      -> listener: bidirectional LSTM layers, the top pyramid_layers of them reading pairs of the frames below
         concatenated (time / 2 each) -> encoder frames [B, F, A]
      -> CTC head [B, F, V] (when ctc_weight > 0)   and   speller [B, T, V]:
         s_i = LSTM(s_i-1, [E y_i-1; c_i-1]),  c_i = attend(s_i, frames),  logits_i = W_o tanh(W_p [s_i; c_i])
The speller's attention is chosen by name (layers.las_attention): dot, additive, location, coverage or mocha.

Padded frames neither update an LSTM's state nor appear as attention keys, and the pyramid pairs frames from the
start, so padding a batch does not change the outputs on the real frames.

The front end (features) and the decoding entry points (decode, decode_with_alignments) are the hybrid ASR
model's (models.asr): they read only the config and this model's encode, ctc_head, decode_targets and its
search_init / search_step, which models.asr_search's search runs through models.decoding.search. So every
decoding method of ASR works here: CTC greedy and prefix beam search, attention greedy and beam search, attention
rescoring and joint CTC/attention beam search (the CTC methods need ctc_weight > 0). The search steps the speller
with MoChA's hard monotonic attention; teacher forcing (training, evaluation loss, the alignments of
decode_with_alignments and of frame agreement) uses its expected, soft alignment.

The alignment is sown after the speller's scan (a sow inside the scan body would leak tracers) from the top
speller layer's cross_attention, so layers.capture_attention reads it as the ASR model's cross-attention:
{'cross': [[B, 1, T, F]]} (one layer, one head).

Dimension letters: B batch, N samples, n feature frames, M mel bins, F encoder frames, A encoder features
(2 * encoder_hidden), T target length, V vocabulary, E embedding, H speller state, R decoding rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from attention_research.layers.capture import NAME, sow_if_capturing
from attention_research.layers.las_attention import LASAttention
from attention_research.models import asr_search
from attention_research.models.asr import ASR, hybrid_loss
from attention_research.models.asr_frontend import SpecAugment, _stream
from attention_research.models.las_config import LASConfig
from attention_research.models.seq2seq_rnn import _make_cell, _scan, _zero_carry

__all__ = ['LAS', 'LASConfig', 'PyramidalBLSTM', 'CTC_METHODS']

CTC_METHODS = ('ctc_greedy', 'ctc_prefix_beam', 'rescoring', 'joint')


class PyramidalBLSTM(nnx.Module):
  """Bidirectional LSTM layers; the top `pyramid_layers` first concatenate pairs of frames (time halved).

  x [B, n, M], lengths [B] -> (frames [B, n // 2^p, 2 H], lengths // 2^p); an odd last frame is dropped."""

  def __init__(self, in_features: int, hidden: int, num_layers: int, pyramid_layers: int, dropout_rate: float, *,
               rngs: nnx.Rngs):
    self.hidden = hidden
    self.pyramid = tuple(i >= num_layers - pyramid_layers for i in range(num_layers))
    sizes = [in_features] + [2 * hidden] * (num_layers - 1)
    self.fwd = nnx.List([_make_cell('lstm', d * (2 if p else 1), hidden, rngs) for d, p in zip(sizes, self.pyramid)])
    self.bwd = nnx.List([_make_cell('lstm', d * (2 if p else 1), hidden, rngs) for d, p in zip(sizes, self.pyramid)])
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

  def __call__(self, x_BnM, lengths_B, *, deterministic: bool = True):
    B = x_BnM.shape[0]
    for fwd, bwd, pyramid in zip(self.fwd, self.bwd, self.pyramid):
      if pyramid:
        n = x_BnM.shape[1] // 2
        x_BnM = x_BnM[:, :2 * n].reshape(B, n, 2 * x_BnM.shape[-1])
        lengths_B = lengths_B // 2
      valid_nB = (jnp.arange(x_BnM.shape[1])[:, None] < lengths_B[None, :])
      x_nBM = jnp.swapaxes(x_BnM, 0, 1)
      zero = _zero_carry('lstm', B, self.hidden)
      _, f_nBH = _scan(fwd, zero, x_nBM, valid_nB)
      _, b_nBH = _scan(bwd, zero, x_nBM, valid_nB, reverse=True)
      x_BnM = self.dropout(jnp.swapaxes(jnp.concatenate([f_nBH, b_nBH], -1), 0, 1), deterministic=deterministic)
    return x_BnM, lengths_B


class SpellerLayer(nnx.Module):
  """One LSTM layer of the speller; the top one also holds the attention over the encoder frames."""

  def __init__(self, in_features: int, hidden: int, cross_attention: LASAttention | None, *, rngs: nnx.Rngs):
    self.cell = _make_cell('lstm', in_features, hidden, rngs)
    self.cross_attention = cross_attention


class LAS(nnx.Module):
  """Listen-attend-spell recogniser: audio [B, N] -> CTC logits [B, F, V] (optional) and speller logits [B, T, V]."""

  Config = LASConfig

  def __init__(self, cfg: LASConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    A, H, V = 2 * cfg.encoder_hidden, cfg.decoder_hidden, cfg.vocab_size
    self.specaugment = SpecAugment(cfg.num_freq_masks, cfg.freq_mask_width, cfg.num_time_masks, cfg.time_mask_width,
                                   cfg.time_mask_ratio, rngs=rngs) if cfg.specaugment else None
    self.encoder = PyramidalBLSTM(cfg.num_mel_bins, cfg.encoder_hidden, cfg.num_encoder_layers, cfg.pyramid_layers,
                                  cfg.dropout_rate, rngs=rngs)
    self.ctc_head = nnx.Linear(A, V, rngs=rngs) if cfg.ctc_weight > 0 else None
    self.embed = nnx.Embed(V, cfg.embed_size, rngs=rngs)
    attend = LASAttention(cfg.attention, H, A, cfg.attention_size, location_filters=cfg.location_filters,
                          location_kernel=cfg.location_kernel, chunk_size=cfg.chunk_size, mocha_bias=cfg.mocha_bias,
                          rngs=rngs)
    L = cfg.num_decoder_layers
    self.decoder = nnx.List([SpellerLayer(cfg.embed_size + A if i == 0 else H, H, attend if i == L - 1 else None,
                                          rngs=rngs) for i in range(L)])
    self.pre_output = nnx.Linear(H + A, H, rngs=rngs)
    self.output = nnx.Linear(H, V, rngs=rngs)
    self.dropout = nnx.Dropout(cfg.dropout_rate, rngs=rngs)
    self.noise_rngs = _stream(rngs, ('dropout', 'default')) if cfg.attention == 'mocha' and cfg.mocha_noise else None

  # The hybrid ASR model's front end and decoding entry points (see the module docstring).
  features = ASR.features
  decode = ASR.decode
  decode_with_alignments = ASR.decode_with_alignments

  @property
  def attention(self) -> LASAttention:
    return self.decoder[-1].cross_attention

  def _transcribe(self, audio, audio_lengths, *, method, **kwargs):
    if self.ctc_head is None and method in CTC_METHODS:
      raise ValueError(f'decoding method {method!r} needs the CTC branch, which this model has not '
                       f'(ctc_weight=0); attention-only methods: attention_greedy, attention_beam.')
    return ASR._transcribe(self, audio, audio_lengths, method=method, **kwargs)  # pylint: disable=protected-access

  # -- listener
  def encode(self, audio, audio_lengths, *, deterministic: bool = True):
    """audio [B, N], audio_lengths [B] -> (encoder frames [B, F, A], frame_lengths [B])."""
    feats, lengths = self.features(audio, audio_lengths, deterministic=deterministic)
    if feats.shape[1] < self.cfg.reduction:
      raise ValueError(f'audio of {audio.shape[1]} samples gives {feats.shape[1]} feature frames; the pyramid '
                       f'needs at least {self.cfg.reduction}.')
    memory, frame_lengths = self.encoder(feats, lengths, deterministic=deterministic)
    return memory, frame_lengths.astype(jnp.int32)

  # -- speller
  def _memory(self, memory, frame_lengths):
    mask = jnp.arange(memory.shape[1])[None, :] < frame_lengths[:, None]
    return {'values': memory, 'keys': self.attention.project_keys(memory), 'mask': mask}

  def _initial_state(self, mem):
    B, _, A = mem['values'].shape
    carry = tuple(_zero_carry('lstm', B, self.cfg.decoder_hidden) for _ in self.decoder)
    return {'carry': carry, 'context': jnp.zeros((B, A), mem['values'].dtype),
            'attention': self.attention.initial_state(mem['mask'])}

  def _step(self, state, y_emb_BE, mem, *, hard=False, noise_BS=None):
    """One speller step -> (state, output features [B, H + A], alignment [B, F])."""
    x, carry = jnp.concatenate([y_emb_BE, state['context']], -1), []
    for layer, c in zip(self.decoder, state['carry']):
      c, x = layer.cell(c, x)
      carry.append(c)
    context, w_BF, att = self.attention.step(x, mem['keys'], mem['values'], mem['mask'], state['attention'],
                                             hard=hard, noise_BS=noise_BS)
    return {'carry': tuple(carry), 'context': context, 'attention': att}, jnp.concatenate([x, context], -1), w_BF

  def _logits(self, features, *, deterministic=True):
    return self.output(jnp.tanh(self.pre_output(self.dropout(features, deterministic=deterministic))))

  def decode_targets(self, targets_in, memory, frame_lengths, *, deterministic: bool = True, hard: bool = False):
    """Teacher-forced speller: targets_in [B, T] (BOS + targets[:-1]) -> logits [B, T, V]; layers.capture_attention
    reads {'cross': [[B, 1, T, F]]}. hard: MoChA's hard monotonic attention instead of its expected alignment."""
    cfg = self.cfg
    T = targets_in.shape[1]
    if T > cfg.max_target_length:
      raise ValueError(f'{T} target positions exceed max_target_length={cfg.max_target_length}.')
    mem = self._memory(memory, frame_lengths)
    y_TBE = jnp.swapaxes(self.dropout(self.embed(targets_in), deterministic=deterministic), 0, 1)
    noise = None
    if self.noise_rngs is not None and not deterministic:
      noise = cfg.mocha_noise * jax.random.normal(self.noise_rngs(), (T,) + mem['mask'].shape, jnp.float32)

    def body(state, xs):
      y_BE, noise_BF = xs
      state, features, w_BF = self._step(state, y_BE, mem, hard=hard, noise_BS=noise_BF)
      return state, (features, w_BF)

    _, (features_TBF, w_TBF) = jax.lax.scan(body, self._initial_state(mem), (y_TBE, noise))
    sow_if_capturing(self.attention, NAME, jnp.swapaxes(w_TBF, 0, 1)[:, None])
    return self._logits(jnp.swapaxes(features_TBF, 0, 1), deterministic=deterministic)

  def __call__(self, audio, audio_lengths, targets_in, *, deterministic: bool = True):
    """audio [B, N] float samples, audio_lengths [B], targets_in [B, T] (BOS + targets[:-1], 0-padded).

    Returns {'ctc_logits': [B, F, V] (with the CTC branch), 'frame_lengths': [B], 'logits': [B, T, V]}."""
    memory, frame_lengths = self.encode(audio, audio_lengths, deterministic=deterministic)
    out = {'frame_lengths': frame_lengths}
    if self.ctc_head is not None:
      out['ctc_logits'] = self.ctc_head(memory)
    out['logits'] = self.decode_targets(targets_in, memory, frame_lengths, deterministic=deterministic)
    return out

  def loss(self, outputs, targets, *, ctc_weight: float | None = None, label_smoothing: float = 0.0):
    """models.asr.hybrid_loss with this model's ids and ctc_weight; without the CTC branch the speller's
    cross-entropy alone (summed over an utterance, averaged over the batch; 'ctc' reported as 0)."""
    cfg = self.cfg
    if self.ctc_head is not None:
      return hybrid_loss(outputs, targets, ctc_weight=cfg.ctc_weight if ctc_weight is None else ctc_weight,
                         blank_id=cfg.blank_id, pad_id=cfg.pad_id, eos_id=cfg.eos_id, label_smoothing=label_smoothing)
    logits = outputs['logits'].astype(jnp.float32)
    targets = jnp.asarray(targets, jnp.int32)
    labels = optax.smooth_labels(jax.nn.one_hot(targets, logits.shape[-1]), label_smoothing)
    nll = optax.softmax_cross_entropy(logits, labels)
    att = jnp.mean(jnp.sum(jnp.where(targets != cfg.pad_id, nll, 0.0), axis=-1))
    return att, {'ctc': jnp.zeros((), jnp.float32), 'attention': att}

  # -- the step-function contract of models.decoding.search (through models.asr_search.search)
  def search_init(self, memory, frame_lengths, ctc_logp, ctc_weight, *, max_length, pre_beam=None, margin=None):
    """The search state: the speller's state and memory and, for joint decoding, the CTC prefix scorer."""
    del max_length  # the speller keeps no cache that grows with the output
    mem = self._memory(memory, frame_lengths)
    state = {'memory': mem, 'speller': self._initial_state(mem)}
    return asr_search.with_joint_ctc(self.cfg, state, ctc_logp, frame_lengths, ctc_weight, pre_beam=pre_beam,
                                     margin=margin)

  def search_step(self, tokens, state):
    """One speller step with hard monotonic attention for MoChA: (log-probabilities or joint scores [R, V], state)."""
    speller, features, _ = self._step(state['speller'], self.embed(tokens), state['memory'], hard=True)
    att = jax.nn.log_softmax(self._logits(features).astype(jnp.float32), axis=-1)
    return asr_search.joint_ctc_scores(self.cfg, att, tokens, dict(state, speller=speller))
