"""Where a summarizer reads: cross-attention from summary words to the source's sentences.

A report's sentences end in '.'; the attention a summary word puts on the tokens of one sentence is summed into
that sentence's mass, so the map reads 'which sentence did the decoder consult for this word'. For match reports
(the `reports` task) a goal sentence is '<player> scored for <team> ...', and the k-th scorer named in the summary
is the scorer of the k-th goal sentence: `scorer_mass` measures whether each scorer's name is written while
attending to its own goal.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from attention_research.analysis import _checks, _plot, heatmaps

SENTENCE_END = '.'


def sentence_spans(source_tokens: Sequence[str]) -> list[tuple[int, int]]:
  """[start, end) of each sentence: tokens up to and including each '.', and a last span for any tail (EOS)."""
  spans, start = [], 0
  for i, token in enumerate(source_tokens):
    if token == SENTENCE_END:
      spans.append((start, i + 1))
      start = i + 1
  if start < len(source_tokens):
    spans.append((start, len(source_tokens)))
  return spans


def sentence_mass(weights, source_tokens: Sequence[str]) -> np.ndarray:
  """[T, M] attention mass per source sentence (heads averaged) from [T, S] or [N, T, S] weights."""
  w = _checks.as_array(weights, 'weights', ranks=(2, 3), layout='[T, S] or [N, T, S]')
  w = w.mean(0) if w.ndim == 3 else w
  source = _checks.labels(source_tokens, w.shape[-1], 'source_tokens', 'source positions (S)', w.shape)
  return np.stack([w[:, a:b].sum(-1) for a, b in sentence_spans(source)], axis=1)


def goal_sentences(source_tokens: Sequence[str]) -> list[int]:
  """Indices (into sentence_spans) of the goal sentences, '<player> scored for <team> ...', in report order."""
  out = []
  for k, (a, b) in enumerate(sentence_spans(source_tokens)):
    words = list(source_tokens[a:b])
    if any(words[i:i + 2] == ['scored', 'for'] for i in range(len(words) - 1)):
      out.append(k)
  return out


def scorer_positions(target_tokens: Sequence[str]) -> list[int]:
  """Positions of the scorers' names in a summary '... goals : a , b , c .' (none for 'no goals .')."""
  tokens = list(target_tokens)
  if 'goals' not in tokens or ':' not in tokens:
    return []
  start = tokens.index(':') + 1
  return [i for i in range(start, len(tokens)) if tokens[i] not in (',', SENTENCE_END, '</s>')]


def scorer_mass(weights, source_tokens: Sequence[str], target_tokens: Sequence[str]) -> dict[str, float]:
  """Mean over the summary's scorer names of the mass on their own goal sentence ('own_goal') and on any goal
  sentence ('any_goal'), beside the share of source tokens in those sentences (uniform attention's mass). NaN
  when the summary names no scorer or the report's goals do not match the names."""
  mass = sentence_mass(weights, source_tokens)
  t = _checks.labels(target_tokens, mass.shape[0], 'target_tokens', 'target positions (T)', mass.shape)
  goals, names = goal_sentences(source_tokens), scorer_positions(t)
  spans = sentence_spans(list(source_tokens))
  if not names or len(names) != len(goals):
    return {k: float('nan') for k in ('own_goal', 'any_goal', 'own_goal_share', 'any_goal_share')}
  size = np.asarray([b - a for a, b in spans], np.float64) / len(source_tokens)
  return {'own_goal': float(np.mean([mass[p, g] for p, g in zip(names, goals)])),
          'any_goal': float(np.mean([mass[p, goals].sum() for p in names])),
          'own_goal_share': float(np.mean(size[goals])), 'any_goal_share': float(size[goals].sum())}


def sentence_figure(weights, source_tokens: Sequence[str], target_tokens: Sequence[str], *, words: int = 8,
                    title: str | None = None, cmap: str = 'Greys', path=None, dpi: int = 100,
                    highlight: Sequence[int] | None = None, row_label: str = 'summary word'):
  """Summary words (rows) against the report's sentences (columns, labelled by their first `words` words; goal
  sentences in red), each cell the attention mass the word puts on the sentence.

  highlight: indices of the sentences to label in red instead of the goal sentences (for other tasks: the
  sentence that holds a question's answer); row_label names the rows."""
  mass = sentence_mass(weights, source_tokens)
  t = _checks.labels(target_tokens, mass.shape[0], 'target_tokens', 'target positions (T)', mass.shape)
  spans = sentence_spans(list(source_tokens))
  labels = [' '.join(source_tokens[a:min(b, a + words)]) + (' ...' if b - a > words else '') for a, b in spans]
  T, M = mass.shape
  fig = _plot.new_figure((float(np.clip(0.34 * M + 2.5, 4.0, 16.0)), float(np.clip(0.3 * T + 2.8, 3.0, 14.0))), dpi)
  ax = fig.add_subplot()
  im = heatmaps.draw_heatmap(ax, mass, x_labels=labels, y_labels=t, vmin=0.0, vmax=1.0, cmap=cmap, x_rotation=60.0)
  ax.xaxis.tick_top()
  for lbl in ax.get_xticklabels():
    lbl.set_ha('left')
  ticks = ax.get_xticklabels()
  if len(ticks) == M:  # every sentence labelled (not thinned out)
    for k in goal_sentences(list(source_tokens)) if highlight is None else highlight:
      ticks[k].set_color('tab:red')
  ax.plot(mass.argmax(-1), np.arange(T), 'o', color='tab:red', markersize=3)
  ax.set_ylabel(row_label)
  if title:
    ax.set_title(title, fontsize=10, pad=12)
  fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label='attention mass on the sentence')
  _plot.save(fig, path)
  return fig
