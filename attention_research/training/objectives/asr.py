"""Speech recognition with the hybrid CTC/attention loss; transcripts decoded by the configured method
(CTC greedy, attention greedy or beam, joint CTC/attention) and scored by CER and WER."""

from __future__ import annotations

import dataclasses

import numpy as np

from attention_research.layers import capture_attention
from attention_research.training.objectives import base
from attention_research.training.objectives.seq2seq import score_generations, shift_right, teacher_forced

METHODS = ('ctc_greedy', 'attention_greedy', 'attention_beam', 'joint')


@dataclasses.dataclass(frozen=True)
class ASROptions:
  label_smoothing: float = 0.0
  decode_method: str = 'ctc_greedy'
  beam_size: int = 4
  length_penalty: float = 0.0
  max_decode_length: int = 0  # 0: the task's longest transcript (EOS included)

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


class SpeechRecognition(base.Objective):
  """batch {'audio' [B, N] float, 'audio_lengths' [B], 'targets' [B, T] (characters, EOS, padding)}."""

  kind = 'asr'
  Options = ASROptions
  metric_names = (('cer', 'min'), ('wer', 'min'), ('token_accuracy', 'max'), ('loss', 'min'))

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

  def evaluate(self, model, batches):
    return score_generations(self, model, batches, name='transcribe', fn=self._eval_fn, target_key='targets',
                             metrics=self.info.get('metrics', ('cer', 'wer')))

  def _weights_fn(self, model, batch):
    targets_in = shift_right(batch['targets'], self.info.get('bos_id', 1))
    outputs, weights = capture_attention(lambda m: m(batch['audio'], batch['audio_lengths'], targets_in), model)
    features, feature_lengths = model.features(batch['audio'], batch['audio_lengths'])
    return {'weights': weights, 'ctc_logits': outputs['ctc_logits'],
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
            'spectrogram': np.asarray(out['features'])[:, :frames], 'ctc_logits': np.asarray(out['ctc_logits'])[:, :f],
            'vocab': base.token_labels(tokenizer, np.arange(int(model.cfg.vocab_size))),
            'blank_id': int(model.cfg.blank_id), 'causal': ('self',), 'cross': ('cross',)}
