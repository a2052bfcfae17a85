"""ASR alignments: output tokens against encoder frames, drawn over the log-mel spectrogram on one time axis,
with the CTC head's alignment of the same tokens beside the attention decoder's.

The encoder subsamples the input frames (x4 by default in the models), so encoder frame f covers input
frames [f r, (f + 1) r) with r = input frames / encoder frames; every panel is drawn in input-frame units.
"""

from __future__ import annotations

import numpy as np

from attention_research.analysis import _checks, _plot


def log_softmax(logits: np.ndarray) -> np.ndarray:
  z = logits - logits.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def ctc_greedy_segments(ctc_logits, *, blank_id: int = 0) -> list[tuple[int, int, int]]:
  """Per-frame argmax, repeats merged and blanks dropped: [(token_id, first_frame, last_frame + 1), ...]."""
  lp = _checks.as_array(ctc_logits, 'ctc_logits', ranks=(2,), layout='[F, V]')
  best = lp.argmax(-1)
  segments, start = [], 0
  for f in range(1, len(best) + 1):
    if f == len(best) or best[f] != best[start]:
      if best[start] != blank_id:
        segments.append((int(best[start]), start, f))
      start = f
  return segments


def _match_segments(segments, token_ids):
  """Greedy monotonic matching of emitted CTC tokens to the plotted tokens: [(row, first, end), ...]."""
  out, row = [], 0
  for tok, first, end in segments:
    j = row
    while j < len(token_ids) and token_ids[j] != tok:
      j += 1
    if j < len(token_ids):
      out.append((j, first, end))
      row = j + 1
  return out


def _attention_rows(weights, name='weights'):
  w = _checks.as_array(weights, name, ranks=(2, 3), layout='[T, F] or [N, T, F]')
  return w.mean(0) if w.ndim == 3 else w


def asr_figure(spectrogram, weights, token_ids, ctc_logits=None, *, vocab=None, blank_id: int = 0,
               title: str | None = None, cmap: str = 'viridis', path=None, figsize=None, dpi: int = 100):
  """Three panels on one time axis: the log-mel spectrogram, the attention alignment of each output token
  over the encoder frames (mean over heads), and the CTC alignment of the same tokens.

  Args:
    spectrogram: [frames, mels] log-mel features of one utterance (time first, as the data pipeline gives).
    weights: [T, F] or [N, T, F] cross-attention of the T output tokens over the F encoder frames.
    token_ids: T token ids (the decoder's output or the reference), used for the CTC rows and the labels.
    ctc_logits: [F, V] CTC logits (or log-probabilities) per encoder frame; the CTC panel shows the
      posterior P(token_t | frame) of each plotted token, a '<blank>' row, and white dots where the
      per-frame argmax emits that token (matched to the rows in order). Omitted: two panels only.
    vocab: id -> label (a sequence or a dict); default the id itself.
    blank_id: the CTC blank.
    path, figsize, dpi: as in `heatmaps.heatmap`.

  Returns:
    the matplotlib Figure.
  """
  spec = _checks.as_array(spectrogram, 'spectrogram', ranks=(2,), layout='[frames, mels]')
  att = _attention_rows(weights)
  T, F = att.shape
  ids = np.asarray(token_ids).reshape(-1)
  if ids.shape[0] != T or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f'token_ids must be {T} integer ids to match weights of shape {np.shape(weights)}; '
                     f'got shape {np.shape(token_ids)} and dtype {ids.dtype}.')
  labels = [str(vocab[int(i)]) if vocab is not None else str(int(i)) for i in ids]
  frames = spec.shape[0]
  if frames < F:
    raise ValueError(f'spectrogram has {frames} frames, fewer than the {F} encoder frames of weights '
                     f'{np.shape(weights)}; pass the input features [frames, mels] of the same utterance.')
  rate = frames / F
  panels = 2
  lp = None
  if ctc_logits is not None:
    lp = _checks.as_array(ctc_logits, 'ctc_logits', ranks=(2,), layout='[F, V]')
    if lp.shape[0] != F:
      raise ValueError(f'ctc_logits of shape {lp.shape} must have F={F} frames like weights {np.shape(weights)}.')
    if ids.size and (ids.max() >= lp.shape[1] or ids.min() < 0) or not 0 <= blank_id < lp.shape[1]:
      raise ValueError(f'token ids (range [{ids.min()}, {ids.max()}]) and blank_id={blank_id} must index the '
                       f'V={lp.shape[1]} CTC classes of ctc_logits {lp.shape}.')
    lp = log_softmax(lp)
    panels = 3
  row_h = float(np.clip(0.16 * T + 0.9, 1.6, 6.0))
  fig = _plot.new_figure(figsize or (float(np.clip(frames / 25 + 3.0, 6.0, 16.0)), 1.9 + row_h * (panels - 1)),
                         dpi)
  axes = fig.subplots(panels, 1, sharex=True, height_ratios=[1.9] + [row_h] * (panels - 1))
  extent = (0, frames, T - 0.5, -0.5)
  im = axes[0].imshow(spec.T, origin='lower', aspect='auto', cmap='magma', interpolation='nearest',
                      extent=(0, frames, -0.5, spec.shape[1] - 0.5))
  axes[0].set_ylabel('mel bin')
  axes[0].set_title('log-mel spectrogram', fontsize=9)
  fig.colorbar(im, ax=axes[0], label='log energy', pad=0.01)
  im = axes[1].imshow(att, aspect='auto', cmap=cmap, interpolation='nearest', extent=extent, vmin=0.0)
  _plot.set_tick_labels(axes[1], 'y', labels, T)
  axes[1].set_ylabel('token')
  axes[1].set_title(f'attention decoder: weights over {F} encoder frames (x{rate:g} subsampled)'
                    + (f', mean of {np.shape(weights)[0]} heads' if np.ndim(weights) == 3 else ''), fontsize=9)
  fig.colorbar(im, ax=axes[1], label='attention weight', pad=0.01)
  if lp is not None:
    post = np.exp(lp)
    rows = np.concatenate([post[:, ids].T, post[:, blank_id][None]], 0)  # [T + 1, F]
    im = axes[2].imshow(rows, aspect='auto', cmap=cmap, interpolation='nearest', vmin=0.0, vmax=1.0,
                        extent=(0, frames, T + 0.5, -0.5))
    _plot.set_tick_labels(axes[2], 'y', labels + ['<blank>'], T + 1)
    for row, first, end in _match_segments(ctc_greedy_segments(lp, blank_id=blank_id), ids):
      centres = (np.arange(first, end) + 0.5) * rate
      axes[2].plot(centres, np.full_like(centres, row), 'o', color='white', markersize=3, mec='black', mew=0.4)
    axes[2].set_ylabel('token')
    axes[2].set_title('CTC: posterior of each token per encoder frame; dots = greedy (argmax) CTC path',
                      fontsize=9)
    fig.colorbar(im, ax=axes[2], label='CTC posterior', pad=0.01)
  axes[-1].set_xlabel('input frame')
  if title:
    fig.suptitle(_plot.wrap(title, fig))
  _plot.save(fig, path)
  return fig
