"""Extractive span QA (SQuAD-style): a start and an end logit per token, span exact match and F1, baselines.

batch {'inputs' [B, L] ([cls] question [sep] passage), 'offset' [B] (the passage's first position), 'start',
'end' [B] (the answer, inclusive, in input positions), 'support' [B, L] (1 on the sentence that holds the answer),
'question_type' [B]}. The model is a token Encoder with a per-token head of two classes (transformer.Encoder,
head='tagging', num_classes=2): class 0 is the start logit, class 1 the end logit.

Loss: cross-entropy of the start and of the end position, each a softmax over the passage's positions only
(question, separators and padding masked with a large finite negative, in float32). Decoding: the span
start <= end < start + max_answer_length with the largest summed log-probability.

Metrics: exact_match and f1 as the official SQuAD v1.1 evaluation script defines them, and exact_match_<type>
per question type; support_mass, the attention mass the last layer puts from the question's words on the sentence
that holds the answer (mean over heads and question words), with support_share, uniform attention's mass there;
reader_mass, the other direction: the mass the answer sentence's tokens put on the question's words (mean over
layers, heads and those tokens), with reader_share, uniform attention's. A span head reads its logits at passage
positions, so it is there, not at the question, that the model must gather the question.
Beside the model, on the same questions: window_f1 / window_exact_match (the sliding-window baseline of Richardson
et al. 2013 as used by Rajpurkar et al. 2016) and majority_f1 / majority_exact_match (always the most frequent
training answer).
"""

from __future__ import annotations

import collections
import dataclasses
import re
import string

import jax
import jax.numpy as jnp
import numpy as np

from attention_research.layers.capture import capture_attention
from attention_research.training.objectives import base, classification

NEG = -1e9  # a large finite negative: masked logits, never -inf (no NaN in softmax or its gradient)


# ------------------------------------------------------------------------------------- SQuAD v1.1 metrics
def normalize_answer(s: str) -> str:
  """The SQuAD v1.1 evaluation script's normalisation: lower case, no punctuation, no articles (a, an, the),
  single spaces."""
  s = ''.join(ch for ch in s.lower() if ch not in set(string.punctuation))
  return ' '.join(re.sub(r'\b(a|an|the)\b', ' ', s).split())


def exact_match_score(prediction: str, truth: str) -> float:
  return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
  """Token-overlap F1 of the normalised answers, as in the SQuAD v1.1 evaluation script (0 without overlap)."""
  pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
  same = sum((collections.Counter(pred) & collections.Counter(gold)).values())
  if same == 0:
    return 0.0
  precision, recall = same / len(pred), same / len(gold)
  return 2 * precision * recall / (precision + recall)


# ------------------------------------------------------------------------------------- decoding
def passage_mask(inputs_BL, offset_B, pad_id: int = 0):
  """[B, L] True on the passage's real tokens: the positions an answer may start or end at."""
  positions = jnp.arange(inputs_BL.shape[1])[None, :]
  return (positions >= offset_B[:, None]) & (inputs_BL != pad_id)


def span_log_probs(logits_BLC, valid_BL):
  """Start and end log-probabilities [B, L] each, softmax in float32 over the valid positions only."""
  logits = jnp.where(valid_BL[..., None], logits_BLC.astype(jnp.float32), NEG)
  logp = jax.nn.log_softmax(logits, axis=1)
  return logp[..., 0], logp[..., 1]


def best_spans(start_logp_BL, end_logp_BL, valid_BL, max_answer_length: int):
  """argmax over start <= end < start + max_answer_length (both valid) of start_logp + end_logp -> (start, end)."""
  L = start_logp_BL.shape[1]
  s, e = jnp.arange(L)[:, None], jnp.arange(L)[None, :]
  band_SE = (e >= s) & (e - s < max_answer_length)
  allowed_BSE = band_SE[None] & valid_BL[:, :, None] & valid_BL[:, None, :]
  score_BSE = jnp.where(allowed_BSE, start_logp_BL[:, :, None] + end_logp_BL[:, None, :], 4 * NEG)
  best = jnp.argmax(score_BSE.reshape(score_BSE.shape[0], -1), -1)
  return best // L, best % L


# ------------------------------------------------------------------------------------- baselines
def window_span(question: list, passage: list, max_answer_length: int, window: int,
                excluded=()) -> tuple[int, int]:
  """The sliding-window baseline (Richardson et al. 2013; Rajpurkar et al. 2016): among spans of at most
  max_answer_length tokens that hold no question word and no `excluded` token (function words and punctuation,
  standing in for the constituents a parser would propose), the one whose window (the `window` tokens on each
  side) shares the most distinct words with the question; ties go to the earliest, then the shortest span.
  Returns (start, end) in passage positions, inclusive ((0, 0) if no span qualifies)."""
  q = set(question)
  stop = q | set(excluded)
  best, best_score = (0, 0), -1
  for s in range(len(passage)):
    for e in range(s, min(s + max_answer_length, len(passage))):
      if passage[e] in stop:
        break
      score = len(q & set(passage[max(0, s - window):s] + passage[e + 1:e + 1 + window]))
      if score > best_score:
        best, best_score = (s, e), score
  return best


@dataclasses.dataclass(frozen=True)
class SpanQAOptions:
  max_answer_length: int = 4  # longest span decoding and the window baseline consider, in tokens
  window: int = 4  # words on each side of a candidate span the window baseline compares with the question

  def __post_init__(self):
    for name in ('max_answer_length', 'window'):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'config.objective.{name} must be an int >= 1, got {value!r}.')


class SpanQA(base.Objective):
  kind = 'span_qa'
  Options = SpanQAOptions
  metric_names = (('f1', 'max'), ('exact_match', 'max'), ('loss', 'min'), ('support_mass', 'max'),
                  ('support_share', 'min'), ('reader_mass', 'max'), ('reader_share', 'min'), ('window_f1', 'max'),
                  ('majority_f1', 'max'))

  def __init__(self, task, options=None):
    super().__init__(task, options)
    self._majority = None

  def model_defaults(self):
    return {**classification.common_defaults(self.info), 'num_classes': 2}

  def _valid(self, batch):
    return passage_mask(batch['inputs'], batch['offset'], self.info.get('pad_id', 0))

  def _nll(self, logits, batch):
    """Per row: the mean of the start and end cross-entropies over passage positions [B]; the log-probs."""
    start_logp, end_logp = span_log_probs(logits, self._valid(batch))
    take = lambda logp, i: jnp.take_along_axis(logp, i[:, None], 1)[:, 0]
    return -0.5 * (take(start_logp, batch['start']) + take(end_logp, batch['end'])), start_logp, end_logp

  def loss(self, model, batch, rng):
    nll, start_logp, end_logp = self._nll(model(batch['inputs'], deterministic=False), batch)
    hit = (jnp.argmax(start_logp, -1) == batch['start']) & (jnp.argmax(end_logp, -1) == batch['end'])
    return nll.mean(), {'exact_match': hit.astype(jnp.float32).mean()}

  def _eval_fn(self, model, batch):
    tokens = batch['inputs']
    logits, maps = capture_attention(lambda m: m(tokens, deterministic=True), model)
    nll, start_logp, end_logp = self._nll(logits, batch)
    start, end = best_spans(start_logp, end_logp, self._valid(batch), self.options.max_answer_length)
    last = base.last_layer(maps, 'self')
    if last is None:  # a variant without attention weights
      return start, end, nll, jnp.full(nll.shape, jnp.nan), jnp.full(nll.shape, jnp.nan)
    positions = jnp.arange(tokens.shape[1])[None, :]
    question_BQ = (positions >= 1) & (positions < batch['offset'][:, None] - 1)  # between [cls] and [sep]
    mass = base.salient_mass(last, batch['support'], question_BQ, use_cls=False)
    layers = maps['self'] if isinstance(maps['self'], (list, tuple)) else [maps['self']]
    reader = sum(base.salient_mass(w, question_BQ, batch['support'], use_cls=False) for w in layers) / len(layers)
    return start, end, nll, mass, reader

  def _text(self, ids) -> str:
    return self.tokenizer_for('inputs').decode(np.asarray(ids))

  def majority_answer(self) -> str:
    if self._majority is None:
      train = self.task.columns['train']
      inputs, start, end = train['inputs'], train['start'].array, train['end'].array
      answers = [self._text(inputs.values[inputs.offsets[i] + start[i]:inputs.offsets[i] + end[i] + 1])
                 for i in range(len(inputs))]
      self._majority = collections.Counter(answers).most_common(1)[0][0]
    return self._majority

  def evaluate(self, model, batches):
    types = self.info['question_types']
    sums, per_type = collections.defaultdict(float), collections.defaultdict(float)
    counts = collections.Counter()
    rows = 0
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('span_qa', model, self._eval_fn)
      start, end, nll, mass, reader = (np.asarray(x)[:n] for x in fn(state, batch))
      inputs, offset = np.asarray(batch['inputs'])[:n], np.asarray(batch['offset'])[:n]
      gold_s, gold_e = np.asarray(batch['start'])[:n], np.asarray(batch['end'])[:n]
      support, qtype = np.asarray(batch['support'])[:n], np.asarray(batch['question_type'])[:n]
      for i in range(n):
        row = inputs[i]
        gold = self._text(row[gold_s[i]:gold_e[i] + 1])
        question, passage = row[1:offset[i] - 1].tolist(), row[offset[i]:base.real_length(row)].tolist()
        ws, we = window_span(question, passage, self.options.max_answer_length, self.options.window,
                             excluded=self.info.get('function_ids', ()))
        guesses = {'': self._text(row[start[i]:end[i] + 1]), 'window_': self._text(passage[ws:we + 1]),
                   'majority_': self.majority_answer()}
        for prefix, guess in guesses.items():
          sums[f'{prefix}exact_match'] += exact_match_score(guess, gold)
          sums[f'{prefix}f1'] += f1_score(guess, gold)
        per_type[types[qtype[i]]] += exact_match_score(guesses[''], gold)
        counts[types[qtype[i]]] += 1
      sums['loss'] += float(nll.sum())
      sums['support_mass'] += float(mass.sum())
      lengths = np.maximum((inputs != 0).sum(-1), 1)
      sums['support_share'] += float((support.sum(-1) / lengths).sum())
      sums['reader_mass'] += float(reader.sum())
      sums['reader_share'] += float(((offset - 2) / lengths).sum())
      rows += n
    out = {k: v / max(rows, 1) for k, v in sums.items()}
    out.update({f'exact_match_{t}': v / counts[t] for t, v in per_type.items()})
    for name in ('support_mass', 'reader_mass'):
      if not np.isfinite(out.get(name, 0.0)):
        del out[name]
    out['examples'] = rows
    return out

  def attention_for_plot(self, model, batch):
    return classification.encoder_attention(self, model, batch)
