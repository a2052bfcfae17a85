"""Speech recognition with the hybrid CTC/attention loss; transcripts decoded by the configured method
(CTC greedy, attention greedy or beam, joint CTC/attention) and scored by CER and WER.

objective.decoding_modes (comma-separated, default none) adds WER, CER and decoding speed for more modes:
metrics wer_<mode>, cer_<mode> and utt_s_<mode> (utterances per second, compilation excluded), with `joint`
run once per CTC weight of objective.joint_ctc_weights (mode names joint0.3, joint0.5, ...).

frame_agreement: on the first objective.alignment_examples evaluated utterances, teacher-forced on the reference,
the share of transcript tokens whose cross-attention peak (last decoder layer, heads averaged) falls inside the
token's segment of the CTC forced alignment of the model's own CTC head (objectives.alignment)."""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from attention_research.data.speech import noise
from attention_research.layers import capture_attention
from attention_research.training.objectives import alignment, base
from attention_research.training.objectives.seq2seq import score_generations, shift_right, teacher_forced, text_metrics

METHODS = ('ctc_greedy', 'attention_greedy', 'attention_beam', 'ctc_prefix_beam', 'rescoring', 'joint')
ALL_MODES = ','.join(METHODS)


def _split(text: str) -> list[str]:
  return [t.strip() for t in str(text).split(',') if t.strip()]


@dataclasses.dataclass(frozen=True)
class ASROptions:
  label_smoothing: float = 0.0
  decode_method: str = 'ctc_greedy'
  beam_size: int = 4
  length_penalty: float = 0.0
  max_decode_length: int = 0  # 0: the task's longest transcript (EOS included)
  decoding_modes: str = ''  # comma-separated METHODS scored besides decode_method ('all': every one)
  joint_ctc_weights: str = '0.3,0.5'  # the CTC weights `joint` runs with among decoding_modes
  snr_db: str = ''  # comma-separated SNRs (dB): also score decode_method on noisy test audio (wer_snr<db>)
  noise_seed: int = 0
  ctc_margin: int = -1  # windowed CTC prefix scores in joint/prefix-beam decoding (frames); -1: every frame
  alignment_examples: int = 64  # frame_agreement over the first this many evaluated utterances; 0: none

  def __post_init__(self):
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f'config.objective.label_smoothing must be in [0, 1), got {self.label_smoothing!r}.')
    if self.decode_method not in METHODS:
      raise ValueError(f'config.objective.decode_method must be one of {list(METHODS)}, got '
                       f'{self.decode_method!r}.')
    if not isinstance(self.beam_size, int) or self.beam_size < 1:
      raise ValueError(f'config.objective.beam_size must be >= 1, got {self.beam_size!r}.')
    if not isinstance(self.max_decode_length, int) or self.max_decode_length < 0:
      raise ValueError(f'config.objective.max_decode_length must be >= 0, got {self.max_decode_length!r}.')
    for mode in self.modes():
      if mode not in METHODS:
        raise ValueError(f'config.objective.decoding_modes: unknown mode {mode!r}; known: {list(METHODS)}.')
    for db in _split(self.snr_db):
      float(db)  # a ValueError names a bad entry
    if not isinstance(self.alignment_examples, int) or self.alignment_examples < 0:
      raise ValueError(f'config.objective.alignment_examples must be >= 0, got {self.alignment_examples!r}.')
    for w in _split(self.joint_ctc_weights):
      if not 0.0 <= float(w) <= 1.0:
        raise ValueError(f'config.objective.joint_ctc_weights must be in [0, 1], got {w!r}.')

  def modes(self) -> list[str]:
    return list(METHODS) if self.decoding_modes == 'all' else _split(self.decoding_modes)

  def mode_runs(self) -> list[tuple[str, str, float | None]]:
    """(metric label, decoding method, CTC weight or None) for every extra decoding run."""
    runs = []
    for mode in self.modes():
      if mode == 'joint':
        runs += [(f'joint{float(w):g}', 'joint', float(w)) for w in _split(self.joint_ctc_weights)]
      else:
        runs.append((mode, mode, None))
    return runs


class SpeechRecognition(base.Objective):
  """batch {'audio' [B, N] float, 'audio_lengths' [B], 'targets' [B, T] (characters, EOS, padding)}."""

  kind = 'asr'
  Options = ASROptions
  metric_names = (('cer', 'min'), ('wer', 'min'), ('token_accuracy', 'max'), ('loss', 'min'))

  def __init__(self, task, options=None):
    super().__init__(task, options)
    extra = [((f'{m}_{label}', 'max' if m == 'utt_s' else 'min')) for label, _, _ in self.options.mode_runs()
             for m in ('wer', 'cer', 'utt_s')]
    extra += [(f'{m}_snr{float(db):g}', 'min') for db in _split(self.options.snr_db) for m in ('wer', 'cer')]
    agreement = (('frame_agreement', 'max'),) if self.options.alignment_examples else ()
    self.metric_names = type(self).metric_names + agreement + tuple(extra)

  def model_defaults(self):
    info = self.info
    out = {k: info[k] for k in ('vocab_size', 'bos_id', 'eos_id', 'pad_id', 'sample_rate') if k in info}
    if 'max_target_length' in info:
      out['max_target_length'] = info['max_target_length']
    return out

  @property
  def decode_length(self) -> int:
    return self.options.max_decode_length or int(self.info['max_target_length'])

  def _forward(self, model, batch, deterministic):
    targets = batch['targets']
    outputs = model(batch['audio'], batch['audio_lengths'], shift_right(targets, self.info.get('bos_id', 1)),
                    deterministic=deterministic)
    return outputs, targets

  def loss(self, model, batch, rng):
    outputs, targets = self._forward(model, batch, deterministic=False)
    loss, parts = model.loss(outputs, targets, label_smoothing=self.options.label_smoothing)
    w = (targets != 0)
    return loss, {'ctc_loss': parts['ctc'], 'attention_loss': parts['attention'],
                  'token_accuracy': base.masked_accuracy(outputs['logits'], targets, w)}

  def _eval_fn(self, model, batch):
    outputs, targets = self._forward(model, batch, deterministic=True)
    tokens = model.decode(batch['audio'], batch['audio_lengths'], method=self.options.decode_method,
                          beam_size=self.options.beam_size, max_length=self.decode_length,
                          alpha=self.options.length_penalty)
    return (tokens,) + teacher_forced(outputs['logits'], targets)

  def _margin(self):
    return None if self.options.ctc_margin < 0 else self.options.ctc_margin

  def evaluate(self, model, batches):
    runs = self.options.mode_runs()
    if runs or self.options.snr_db:
      batches = list(batches)  # iterated once per decoding mode
    agreement = self._frame_agreement(model)
    out = score_generations(self, model, batches, name='transcribe', fn=self._eval_fn, target_key='targets',
                            metrics=self.info.get('metrics', ('cer', 'wer')), on_batch=agreement)
    out.update(agreement.scorer.metrics())
    for label, method, weight in runs:
      out.update({f'{k}_{label}': v for k, v in self.decode_mode(model, batches, method, weight).items()})
    for db in _split(self.options.snr_db):
      noisy = [dict(b, audio=noise.add_noise(b['audio'], b['audio_lengths'], float(db),
                                             seed=(self.options.noise_seed, i))) for i, b in enumerate(batches)]
      res = self.decode_mode(model, noisy, self.options.decode_method)
      out.update({f'wer_snr{float(db):g}': res['wer'], f'cer_snr{float(db):g}': res['cer']})
    return out

  def decode_mode(self, model, batches, method: str, ctc_weight: float | None = None) -> dict[str, float]:
    """{'wer', 'cer', 'utt_s'} of one decoding method over the batches; utt_s: utterances per second of the
    compiled decoder (the first batch is decoded once before timing, so compilation is excluded)."""
    opts = self.options
    fn = lambda m, b: m.decode(b['audio'], b['audio_lengths'], method=method, beam_size=opts.beam_size,
                               max_length=self.decode_length, alpha=opts.length_penalty, ctc_weight=ctc_weight,
                               ctc_margin=self._margin())
    padded = list(self.iterate_padded(batches))
    if not padded:
      return {}
    compiled, state = self.compiled(f'transcribe_{method}_{ctc_weight}', model, fn)
    jax.block_until_ready(compiled(state, padded[0][0]))
    tokenizer = self.task.tokenizer
    hyps, refs = [], []
    t0 = time.perf_counter()
    outputs = [(compiled(state, batch), batch, n) for batch, n in padded]
    jax.block_until_ready([o for o, _, _ in outputs])
    seconds = time.perf_counter() - t0
    for tokens, batch, n in outputs:
      hyps += [tokenizer.decode(t) for t in np.asarray(tokens)[:n]]
      refs += [tokenizer.decode(t) for t in np.asarray(batch['targets'])[:n]]
    out = text_metrics(('wer', 'cer'), hyps, refs)
    return {'wer': out['wer'], 'cer': out['cer'], 'utt_s': len(hyps) / max(seconds, 1e-9)}

  def _alignment_fn(self, model, batch):
    """Teacher-forced: the last decoder layer's cross-attention [B, T, F] (heads averaged) and the CTC head."""
    targets_in = shift_right(batch['targets'], self.info.get('bos_id', 1))
    outputs, maps = capture_attention(lambda m: m(batch['audio'], batch['audio_lengths'], targets_in), model)
    layers = alignment.cross_attention_maps(maps)
    if layers is None or 'ctc_logits' not in outputs:  # no alignment, or no CTC head to compare it with
      return None, None, None
    return layers[-1], outputs['ctc_logits'], outputs['frame_lengths']

  def _frame_agreement(self, model):
    """An on_batch hook of score_generations that feeds the first utterances to a FrameAgreementScorer."""
    scorer = alignment.FrameAgreementScorer(limit=self.options.alignment_examples, pad_id=self.info.get('pad_id', 0),
                                            eos_id=self.info.get('eos_id', 2),
                                            blank_id=int(getattr(model.cfg, 'blank_id', 0)))

    def on_batch(batch, n, *_):
      if scorer.full:
        return
      compiled, state = self.compiled('frame_agreement', model, self._alignment_fn)
      cross, ctc_logits, frame_lengths = compiled(state, batch)
      if cross is not None:
        scorer.add(batch['targets'], cross, ctc_logits, frame_lengths, n)

    on_batch.scorer = scorer
    return on_batch

  def _weights_fn(self, model, batch):
    targets_in = shift_right(batch['targets'], self.info.get('bos_id', 1))
    outputs, weights = capture_attention(lambda m: m(batch['audio'], batch['audio_lengths'], targets_in), model)
    features, feature_lengths = model.features(batch['audio'], batch['audio_lengths'])
    return {'weights': weights, 'ctc_logits': outputs.get('ctc_logits'),
            'frame_lengths': outputs['frame_lengths'], 'features': features, 'feature_lengths': feature_lengths}

  def attention_for_plot(self, model, batch):
    """Teacher-forced on the reference transcript: tokens against encoder frames, over the spectrogram, with
    the CTC head's alignment; plus the encoder's and decoder's own attention per layer."""
    out = self.run_for_plot('asr', model, self._weights_fn, batch)
    targets = np.asarray(batch['targets'])[0]
    t = base.real_length(targets, self.info.get('pad_id', 0))
    f, frames = int(out['frame_lengths'][0]), int(out['feature_lengths'][0])
    w = out['weights']
    weights = {'encoder': base.crop_maps(w.get('encoder'), f, f), 'self': base.crop_maps(w.get('self'), t, t),
               'cross': base.crop_maps(w.get('cross'), t, f)}
    tokenizer = self.tokenizer_for('targets')
    return {'kind': 'asr', 'weights': {k: v for k, v in weights.items() if v is not None},
            'tokens': base.token_labels(tokenizer, targets[:t]), 'token_ids': targets[None, :t],
            'spectrogram': np.asarray(out['features'])[:, :frames],
            'ctc_logits': None if out['ctc_logits'] is None else np.asarray(out['ctc_logits'])[:, :f],
            'vocab': base.token_labels(tokenizer, np.arange(int(model.cfg.vocab_size))),
            'blank_id': int(model.cfg.blank_id), 'causal': ('self',), 'cross': ('cross',)}
