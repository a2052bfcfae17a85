"""Cross-attention read as an alignment during evaluation: AER against a task's gold word alignment
(translation) and frame agreement with the model's own CTC forced alignment (speech recognition).

Both are teacher-forced on the reference: decoder position t emits target token t, so row t of the
cross-attention is target t's attention over the source (or encoder frames). Links are argmax links of the
heads' average, one per target token (analysis.alignment_error.attention_links); the EOS row is left out
(the gold alignment has no EOS), and so are the source's EOS and padding columns.

Gold alignments travel in batches as 'alignment' [B, 2K]: the links (target, source) flattened as
(t0, s0, t1, s1, ...) and padded with -1 (see data.builders.number_phrases).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

ALIGNMENT_KEY = 'alignment'


def has_gold_alignment(task) -> bool:
  """Whether any split of the task carries a gold 'alignment' column."""
  return any(ALIGNMENT_KEY in cols for cols in (getattr(task, 'columns', None) or {}).values())


def _alignment_error():
  # Imported when first scored: the analysis package loads its figure modules, which evaluation rarely needs.
  from attention_research.analysis import alignment_error  # pylint: disable=g-import-not-at-top
  return alignment_error


def gold_links(flat) -> frozenset[tuple[int, int]]:
  """One row of batch['alignment'] (flattened pairs padded with -1) -> its links {(t, s)}."""
  flat = np.asarray(flat).reshape(-1)
  if flat.size % 2:
    raise ValueError(f'a flattened alignment row needs an even length (pairs t, s); got {flat.size}.')
  pairs = flat.reshape(-1, 2)
  return _alignment_error().links(pairs[(pairs >= 0).all(-1)].astype(np.int64))


def cross_attention_maps(maps) -> list | None:
  """The cross-attention of each decoder layer, heads averaged, [B, T, S] each (first layer first); None for a
  model without any (an RNN without attention). Transformer: the 'cross' group [B, N, T, S] per layer; RNN
  seq2seq: its one alignment 'attention' [B, T, S]."""
  if maps.get('cross'):
    return [jnp.asarray(w, jnp.float32).mean(1) for w in maps['cross']]
  if 'attention' in maps:
    return [jnp.asarray(maps['attention'], jnp.float32)]
  return None


def argmax_links(maps, inputs_BS, *, pad_id: int, eos_id: int):
  """Argmax source position of every target position per decoder layer [B, L, T] (int32), over the real source
  pieces (EOS and padding left out); None without cross-attention. Runs inside the compiled evaluation."""
  layers = cross_attention_maps(maps)
  if layers is None:
    return None
  w_BLTS = jnp.stack(layers, 1)
  real_BS = (inputs_BS != pad_id) & (inputs_BS != eos_id)
  return jnp.argmax(jnp.where(real_BS[:, None, None, :], w_BLTS, -1.0), -1).astype(jnp.int32)


def target_lengths(targets_BT, *, pad_id: int, eos_id: int) -> np.ndarray:
  """Target tokens per row [B] without padding and the final EOS."""
  targets_BT = np.asarray(targets_BT)
  return (targets_BT != pad_id).sum(-1) - (targets_BT == eos_id).any(-1)


class AERScorer:
  """Collects argmax links and gold links batch by batch; `metrics()` gives corpus AER (Och and Ney 2003):
  'aer' of the last decoder layer, 'aer_best' of the layer with the lowest AER on these examples (chosen on
  them, so an optimistic figure) and 'aer_best_layer' (0-based). Only sure links are annotated (P = S)."""

  def __init__(self, *, pad_id: int, eos_id: int):
    self.pad_id, self.eos_id = pad_id, eos_id
    self.predicted: list[list] = []  # per layer, per sentence
    self.sure: list = []

  def add(self, batch, n: int, links_BLT=None):
    if links_BLT is None or ALIGNMENT_KEY not in batch:
      return
    links_BLT = np.asarray(links_BLT)[:n]
    lengths = target_lengths(np.asarray(batch['targets'])[:n], pad_id=self.pad_id, eos_id=self.eos_id)
    gold = np.asarray(batch[ALIGNMENT_KEY])[:n]
    if not self.predicted:
      self.predicted = [[] for _ in range(links_BLT.shape[1])]
    for i in range(n):
      self.sure.append(gold_links(gold[i]))
      for layer, predicted in enumerate(self.predicted):
        predicted.append(frozenset((t, int(s)) for t, s in enumerate(links_BLT[i, layer, :lengths[i]])))

  def metrics(self) -> dict[str, float]:
    if not self.sure or (not any(self.sure) and not any(self.predicted[-1])):  # AER of nothing is undefined
      return {}
    aer = [_alignment_error().corpus_alignment_error_rate(p, self.sure) for p in self.predicted]
    best = int(np.argmin(aer))
    return {'aer': aer[-1], 'aer_best': aer[best], 'aer_best_layer': float(best)}


class FrameAgreementScorer:
  """Share of output tokens whose cross-attention peak (last decoder layer, heads averaged) lies inside the
  token's segment of the CTC forced alignment of the model's own CTC head, over the first `limit` examples.
  An example whose frames cannot hold its tokens under CTC is skipped."""

  def __init__(self, *, limit: int, pad_id: int, eos_id: int, blank_id: int):
    self.limit, self.pad_id, self.eos_id, self.blank_id = limit, pad_id, eos_id, blank_id
    self.examples = self.hits = self.tokens = 0

  @property
  def full(self) -> bool:
    return self.examples >= self.limit

  def add(self, targets_BT, cross_BTF, ctc_logits_BFV, frame_lengths_B, n: int):
    targets_BT, cross_BTF = np.asarray(targets_BT), np.asarray(cross_BTF)
    ctc_logits_BFV, frame_lengths_B = np.asarray(ctc_logits_BFV), np.asarray(frame_lengths_B)
    lengths = target_lengths(targets_BT, pad_id=self.pad_id, eos_id=self.eos_id)
    for i in range(min(n, self.limit - self.examples)):
      self.examples += 1
      T, F = int(lengths[i]), int(frame_lengths_B[i])
      if T == 0 or F == 0:
        continue
      try:
        segments = _alignment_error().ctc_forced_alignment(ctc_logits_BFV[i, :F], targets_BT[i, :T],
                                                        blank_id=self.blank_id)
      except ValueError:
        continue
      distance = _alignment_error().peak_frame_distance(cross_BTF[i, :T, :F], segments)
      self.hits += int((distance == 0).sum())
      self.tokens += T

  def metrics(self) -> dict[str, float]:
    return {'frame_agreement': self.hits / self.tokens} if self.tokens else {}
