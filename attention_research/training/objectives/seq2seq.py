"""Sequence to sequence (translation): teacher-forced cross-entropy; greedy or beam decoding scored with
the task's text metrics (exact match, BLEU, chrF); where the task has a gold word alignment, the alignment
error rate of the cross-attention (objectives.alignment)."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np
import optax

from attention_research.layers import capture_attention
from attention_research.training.objectives import alignment, base

TEXT_METRICS = ('exact_match', 'bleu', 'chrf', 'cer', 'wer')


@dataclasses.dataclass(frozen=True)
class GenerationOptions:
  label_smoothing: float = 0.0
  beam_size: int = 1  # evaluation decoding; 1 = greedy
  length_penalty: float = 0.6  # GNMT alpha of beam search
  max_decode_length: int = 0  # 0: the task's longest target (EOS included)

  def __post_init__(self):
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f'config.objective.label_smoothing must be in [0, 1), got {self.label_smoothing!r}.')
    if not isinstance(self.beam_size, int) or self.beam_size < 1:
      raise ValueError(f'config.objective.beam_size must be >= 1, got {self.beam_size!r}.')
    if not isinstance(self.max_decode_length, int) or self.max_decode_length < 0:
      raise ValueError(f'config.objective.max_decode_length must be >= 0, got {self.max_decode_length!r}.')


def shift_right(targets, bos_id: int):
  """targets [B, T] (ending in EOS) -> decoder inputs [B, T]: BOS then targets[:-1]."""
  return jnp.concatenate([jnp.full(targets[:, :1].shape, bos_id, targets.dtype), targets[:, :-1]], axis=1)


def text_metrics(names: Sequence[str], hypotheses: list[str], references: list[str], *,
                 segment: Callable[[str], str] | None = None) -> dict[str, float]:
  """Scores with `names`; BLEU on segment(text) (space-separated units, tokenize='none') when given."""
  from attention_research.data import metrics  # pylint: disable=g-import-not-at-top
  out = {}
  for name in names:
    if name not in TEXT_METRICS or not hypotheses:
      continue
    if name == 'bleu' and segment is not None:
      out[name] = metrics.bleu([segment(h) for h in hypotheses], [segment(r) for r in references],
                               tokenize='none')
    else:
      out[name] = getattr(metrics, name)(hypotheses, references)
  return out


# How a task's info['bleu_units'] makes BLEU split text: 'words' (the default) is sacrebleu's standard 13a
# tokenisation of the text; 'pieces' scores the output tokenizer's pieces, for languages whose words are
# compounds (German numbers, 'dreiundzwanzig', are one word: word BLEU has no 3- and 4-grams to count).
BLEU_UNITS = ('words', 'pieces')


def _bleu_units(info) -> str:
  units = info.get('bleu_units', 'words')
  if units not in BLEU_UNITS:
    raise ValueError(f"task info bleu_units={units!r}; known: {BLEU_UNITS}.")
  return units


def bleu_segmenter(info, tokenizer) -> Callable[[str], str] | None:
  """The text -> space-separated units function BLEU scores with, or None for sacrebleu's 13a words.

  Pieces come from re-encoding the decoded text, so equal texts always get equal units."""
  if _bleu_units(info) == 'words':
    return None
  if not hasattr(tokenizer, 'pieces'):
    raise ValueError(f"bleu_units='pieces' needs a tokenizer with pieces(); got {type(tokenizer).__name__}.")
  return lambda text: ' '.join(p.strip() for p in tokenizer.pieces(text) if p.strip())


def bleu_note(info) -> str:
  """One line for a result table: how BLEU was tokenised, and sacrebleu's signature."""
  from attention_research.data import metrics  # pylint: disable=g-import-not-at-top
  if _bleu_units(info) == 'pieces':
    how, tokenize = "the output tokenizer's pieces (morphemes of compounds) joined by spaces", 'none'
  else:
    how, tokenize = "words (sacrebleu's 13a tokenisation)", '13a'
  return f'bleu: sacrebleu corpus BLEU over {how}; signature {metrics.bleu_signature(tokenize)}.'


def source_length(inputs_BS, info) -> np.ndarray:
  """Source tokens per row [B], without padding and the final EOS."""
  real = (inputs_BS != info.get('pad_id', 0)).sum(-1)
  return real - (inputs_BS == info.get('eos_id', 2)).any(-1)


BUCKET_METRICS = ('exact_match', 'bleu')


def bucket_key(metric: str, low: int, high: int) -> str:
  """'bleu_len_011_020': `metric` over sources of low..high tokens (sorted names sort by length)."""
  return f'{metric}_len_{low:03d}_{high:03d}'


def parse_bucket_key(key: str) -> tuple[str, int, int] | None:
  """bucket_key's inverse: (metric, low, high), or None for another metric name."""
  metric, sep, rest = key.partition('_len_')
  parts = rest.split('_')
  if not sep or len(parts) != 2 or not all(p.isdigit() for p in parts):
    return None
  return metric, int(parts[0]), int(parts[1])


def bucket_metrics(names: Sequence[str], hypotheses: list[str], references: list[str], source_lengths,
                   bounds: Sequence[int], segment=None) -> dict[str, float]:
  """Exact match and BLEU per source-length bucket (Bahdanau et al. 2015, Fig. 2), and each bucket's number of
  examples ('examples_len_...'). bounds are the buckets' upper ends: (10, 20) is 1..10 and 11..20 tokens;
  longer sources fall in no bucket. Empty buckets are left out."""
  lengths = np.asarray(source_lengths)
  if len(lengths) != len(hypotheses):
    raise ValueError(f'{len(lengths)} source lengths for {len(hypotheses)} hypotheses.')
  if list(bounds) != sorted(set(bounds)) or (len(bounds) and bounds[0] < 1):
    raise ValueError(f'length buckets must be increasing positive upper bounds; got {list(bounds)}.')
  out = {}
  low = 1
  for high in bounds:
    rows = np.flatnonzero((lengths >= low) & (lengths <= high))
    if len(rows):
      scores = text_metrics([m for m in names if m in BUCKET_METRICS], [hypotheses[i] for i in rows],
                            [references[i] for i in rows], segment=segment)
      out.update({bucket_key(m, low, high): v for m, v in scores.items()})
      out[bucket_key('examples', low, high)] = float(len(rows))
    low = high + 1
  return out


def teacher_forced(logits, targets):
  """Per-row sums for a token loss and accuracy over targets != 0: (ce [B], correct [B], count [B])."""
  logits = logits.astype(jnp.float32)
  w = (targets != 0).astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return (ce * w).sum(-1), (correct * w).sum(-1), w.sum(-1)


def score_generations(objective: base.Objective, model, batches, *, name: str, fn, target_key: str,
                      metrics: Sequence[str], on_batch=None) -> dict[str, float]:
  """Decodes every batch with fn(model, batch) -> (tokens, *teacher_forced(...), *extra), compiled once,
  and scores the decoded text against batch[target_key] with `metrics`, plus the teacher-forced token
  accuracy and loss. on_batch(batch, n, *extra) sees each batch's extra outputs (first n rows real)."""
  tokenizer = objective.task.tokenizer
  hyps, refs, source_lengths = [], [], []
  ce = correct = count = 0.0
  compiled = None
  for batch, n in objective.iterate_padded(batches):
    if compiled is None:
      compiled, state = objective.compiled(name, model, fn)
    tokens, ce_b, correct_b, count_b, *extra = (np.asarray(x)[:n] for x in compiled(state, batch))
    hyps += [tokenizer.decode(t) for t in tokens]
    refs += [tokenizer.decode(t) for t in np.asarray(batch[target_key])[:n]]
    if 'inputs' in batch:
      source_lengths += source_length(np.asarray(batch['inputs'])[:n], objective.info).tolist()
    ce, correct, count = ce + ce_b.sum(), correct + correct_b.sum(), count + count_b.sum()
    if on_batch is not None:
      on_batch(batch, n, *extra)
  segment = bleu_segmenter(objective.info, tokenizer)
  out = text_metrics(metrics, hyps, refs, segment=segment)
  if objective.info.get('length_buckets') and len(source_lengths) == len(hyps):
    out.update(bucket_metrics(metrics, hyps, refs, source_lengths, objective.info['length_buckets'], segment))
  out.update(token_accuracy=float(correct / max(count, 1)), loss=float(ce / max(count, 1)), examples=len(hyps))
  return out


class Seq2Seq(base.Objective):
  """batch {'inputs' [B, S], 'targets' [B, T]} (targets end in EOS, no BOS)."""

  kind = 'seq2seq'
  Options = GenerationOptions
  metric_names = (('exact_match', 'max'), ('bleu', 'max'), ('chrf', 'max'), ('token_accuracy', 'max'),
                  ('loss', 'min'))
  aer_metric_names = (('aer', 'min'), ('aer_best', 'min'))

  def __init__(self, task, options=None):
    super().__init__(task, options)
    if alignment.has_gold_alignment(task):
      self.metric_names = type(self).metric_names + self.aer_metric_names

  def model_defaults(self):
    info = self.info
    out = {k: info[k] for k in ('bos_id', 'eos_id', 'pad_id') if k in info}
    out['vocab_size'] = info.get('input_vocab_size', info.get('vocab_size'))
    if 'target_vocab_size' in info:
      out['target_vocab_size'] = info['target_vocab_size']
    lengths = [info[k] for k in ('max_input_length', 'max_target_length') if k in info]
    if lengths:
      out['max_length'] = max(lengths)
    return out

  @property
  def decode_length(self) -> int:
    return self.options.max_decode_length or int(self.info['max_target_length'])

  def loss(self, model, batch, rng):
    targets = batch['targets']
    logits = model(batch['inputs'], shift_right(targets, self.info.get('bos_id', 1)), deterministic=False)
    w = (targets != 0).astype(jnp.float32)
    loss, _ = base.cross_entropy(logits, targets, w, self.options.label_smoothing)
    return loss, {'token_accuracy': base.masked_accuracy(logits, targets, w)}

  def _eval_fn(self, model, batch):
    """(tokens, *teacher_forced), and with a gold alignment in the batch the argmax links [B, L, T] of each
    decoder layer's cross-attention (none for a model without attention)."""
    links = None
    if alignment.ALIGNMENT_KEY in batch:
      logits, maps, tokens = self._forward_and_generate(model, batch, capture=True)
      links = alignment.argmax_links(maps, batch['inputs'], pad_id=self.info.get('pad_id', 0),
                                     eos_id=self.info.get('eos_id', 2))
    else:
      logits, _, tokens = self._forward_and_generate(model, batch, capture=False)
    return (tokens,) + teacher_forced(logits, batch['targets']) + (() if links is None else (links,))

  def _forward_and_generate(self, model, batch, *, capture: bool):
    """(logits teacher-forced on the reference, the attention maps they sowed (None unless capture), the
    decoded tokens)."""
    targets_in = shift_right(batch['targets'], self.info.get('bos_id', 1))
    call = lambda m: m(batch['inputs'], targets_in, deterministic=True)
    logits, maps = capture_attention(call, model) if capture else (call(model), None)
    tokens = model.generate(batch['inputs'], max_length=self.decode_length, beam_size=self.options.beam_size,
                            alpha=self.options.length_penalty)
    return logits, maps, tokens

  def evaluate(self, model, batches):
    """Text metrics of the decoded outputs; with a gold alignment also corpus AER of the cross-attention's
    argmax links, teacher-forced on the reference: 'aer' from the last decoder layer (heads averaged; the RNN's
    one alignment), 'aer_best' and 'aer_best_layer' from the layer with the lowest AER (objectives.alignment)."""
    aer = alignment.AERScorer(pad_id=self.info.get('pad_id', 0), eos_id=self.info.get('eos_id', 2))
    out = score_generations(self, model, batches, name='generate', fn=self._eval_fn, target_key='targets',
                            metrics=self.info.get('metrics', ('exact_match', 'bleu', 'chrf')), on_batch=aer.add)
    out.update(aer.metrics())
    return out

  def _weights_fn(self, model, batch):
    targets_in = shift_right(batch['targets'], self.info.get('bos_id', 1))
    return base.attention_maps(model, lambda m: m(batch['inputs'], targets_in, deterministic=True))

  def attention_for_plot(self, model, batch):
    """Teacher-forced on the reference: decoder position t is labelled with the word it emits (target t).

    Transformer: {'encoder', 'self' (causal), 'cross'} maps per layer; RNN: its alignment [1, T, S].
    """
    weights = self.run_for_plot('seq2seq', model, self._weights_fn, batch)
    pad = self.info.get('pad_id', 0)
    src, tgt = np.asarray(batch['inputs'])[0], np.asarray(batch['targets'])[0]
    s, t = base.real_length(src, pad), base.real_length(tgt, pad)
    labels = dict(source_tokens=base.token_labels(self.tokenizer_for('inputs'), src[:s]),
                  target_tokens=base.token_labels(self.tokenizer_for('targets'), tgt[:t]))
    if 'attention' in weights:  # the RNN's one alignment [B, T, S]
      return {'kind': 'rnn', 'weights': np.asarray(weights['attention'])[:, :t, :s], **labels, 'causal': (),
              'cross': ('attention',)}
    cropped = {'encoder': base.crop_maps(weights.get('encoder'), s, s),
               'self': base.crop_maps(weights.get('self'), t, t),
               'cross': base.crop_maps(weights.get('cross'), t, s)}
    return {'kind': 'transformer', 'weights': {k: v for k, v in cropped.items() if v is not None}, **labels,
            'causal': ('self',), 'cross': ('cross',)}
