"""Visual question answering (scene_vqa): answer accuracy overall and per question type, and where the question
looks in the image.

batch {'image' [B, H, W, C], 'question' [B, L], 'label' [B], 'question_type' [B] (index into the task's
info['question_types']), 'question_cells' [B, M] (cells of the 3x3 grid the question refers to, -1 padded)};
model(image, question) -> logits [B, C] (models.vqa.VQA, image=False for the question-only baseline).

Metrics: accuracy, loss, accuracy_<type> for each question type; for models that read the image,
attention_hit: the share of questions (those that refer to at least one cell) whose attention peak, summed over
the hops and averaged over heads, lies in a cell the question refers to, attention_hit_hop<k> the same for hop k
alone, and attention_hit_chance: the expected hit of a peak drawn uniformly over the regions (the share of
regions, by centre, inside the referred cells), the level a model that ignores the image's content would get.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import optax

from attention_research.training.objectives import base


@dataclasses.dataclass(frozen=True)
class VQAOptions:
  label_smoothing: float = 0.0

  def __post_init__(self):
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f'config.objective.label_smoothing must be in [0, 1), got {self.label_smoothing!r}.')


def region_cells(grid: int, cells: int) -> np.ndarray:
  """[grid * grid]: the cell (row-major, of a cells x cells partition) holding each region's centre."""
  idx = np.floor((np.arange(grid) + 0.5) / grid * cells).astype(int)
  return (idx[:, None] * cells + idx[None, :]).reshape(-1)


def peak_hits(weights_BR, question_cells_BM, to_cell) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(hit [B], chance [B], counted [B]): whether the peak region's cell is referred to, the share of regions
  in referred cells, and whether the question refers to any cell at all."""
  refs = np.asarray(question_cells_BM)
  peak_cells = to_cell[np.asarray(weights_BR).argmax(-1)]
  hit = (refs == peak_cells[:, None]).any(-1)
  in_refs = (to_cell[None, :, None] == refs[:, None, :]).any(-1)  # [B, R]
  return hit, in_refs.mean(-1), (refs >= 0).any(-1)


class VisualQA(base.Objective):
  kind = 'vqa'
  Options = VQAOptions

  def __init__(self, task, options=None):
    super().__init__(task, options)
    self.types = tuple(self.info['question_types'])
    self.metric_names = (('accuracy', 'max'), ('loss', 'min'),
                         *((f'accuracy_{t}', 'max') for t in self._present_types()),
                         ('attention_hit', 'max'), ('attention_hit_chance', 'max'))

  def _present_types(self) -> tuple[str, ...]:
    columns = getattr(self.task, 'columns', {}).get('test', {})
    if 'question_type' not in columns:
      return self.types
    present = set(np.unique(columns['question_type'].array).tolist())
    return tuple(t for i, t in enumerate(self.types) if i in present)

  def model_defaults(self):
    info = self.info
    out = {k: info[k] for k in ('vocab_size', 'num_classes', 'pad_id', 'max_length') if k in info}
    if 'image_shape' in info:
      h, _, c = info['image_shape']
      out.update(image_size=h, channels=c)
    return out

  def loss(self, model, batch, rng):
    logits = model(batch['image'], batch['question'], deterministic=False)
    weights = jnp.ones(batch['label'].shape, jnp.float32)
    loss, _ = base.cross_entropy(logits, batch['label'], weights, self.options.label_smoothing)
    return loss, {'accuracy': base.masked_accuracy(logits, batch['label'], weights)}

  @staticmethod
  def _reads_image(model) -> bool:
    return bool(getattr(model.cfg, 'image', True))

  def _eval_fn(self, model, batch):
    if self._reads_image(model):
      logits, hops_BKR = model.hop_attention(batch['image'], batch['question'])
    else:
      logits, hops_BKR = model(batch['image'], batch['question'], deterministic=True), None
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch['label'])
    return jnp.argmax(logits, -1), ce, hops_BKR

  def evaluate(self, model, batches):
    to_cell = None
    if self._reads_image(model) and self.info.get('grid'):
      to_cell = region_cells(model.cfg.grid, int(self.info['grid']))
    sums = {'correct': 0.0, 'loss': 0.0, 'rows': 0, 'hit': 0.0, 'chance': 0.0, 'counted': 0.0}
    per_type = np.zeros((len(self.types), 2))  # correct, total
    hop_hits = None
    fn = None
    for batch, n in self.iterate_padded(batches):
      if fn is None:
        fn, state = self.compiled('vqa', model, self._eval_fn)
      pred, ce, hops = fn(state, batch)
      labels, types = np.asarray(batch['label'])[:n], np.asarray(batch['question_type'])[:n]
      correct = np.asarray(pred)[:n] == labels
      sums['correct'] += float(correct.sum())
      sums['loss'] += float(np.asarray(ce)[:n].sum())
      sums['rows'] += n
      np.add.at(per_type, (types, 0), correct)
      np.add.at(per_type, (types, 1), 1)
      if hops is not None and to_cell is not None:
        hops, refs = np.asarray(hops)[:n], np.asarray(batch['question_cells'])[:n]
        hit, chance, counted = peak_hits(hops.sum(1), refs, to_cell)
        sums['hit'] += float((hit & counted).sum())
        sums['chance'] += float((chance * counted).sum())
        sums['counted'] += float(counted.sum())
        per_hop = [float((peak_hits(hops[:, k], refs, to_cell)[0] & counted).sum()) for k in range(hops.shape[1])]
        hop_hits = per_hop if hop_hits is None else [a + b for a, b in zip(hop_hits, per_hop)]
    rows = max(sums['rows'], 1)
    out = {'accuracy': sums['correct'] / rows, 'loss': sums['loss'] / rows, 'examples': sums['rows']}
    for (correct, total), name in zip(per_type, self.types):
      if total:
        out[f'accuracy_{name}'] = float(correct / total)
    if sums['counted']:
      out['attention_hit'] = sums['hit'] / sums['counted']
      out['attention_hit_chance'] = sums['chance'] / sums['counted']
      out.update({f'attention_hit_hop{k + 1}': h / sums['counted'] for k, h in enumerate(hop_hits)})
    return out

  def _hops_fn(self, model, batch):
    return model.hop_attention(batch['image'], batch['question'])[1]

  def attention_for_plot(self, model, batch):
    """Each hop's attention over the regions (mean over heads) on the image, for the batch's first question."""
    if not self._reads_image(model):
      raise NotImplementedError('the question-only model (image=False) has no attention over the image to plot.')
    hops = self.run_for_plot('hops', model, self._hops_fn, batch)  # [1, K, R]
    g = model.cfg.grid
    return {'kind': 'captioner', 'weights': np.asarray(hops), 'tokens': [f'hop {k + 1}' for k in range(hops.shape[1])],
            'image': np.asarray(batch['image'])[:1], 'grid': (g, g), 'cells': int(self.info.get('grid', 3)),
            'causal': (), 'cross': ('attention',)}
