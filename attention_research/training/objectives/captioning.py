"""Image captioning (Show, Attend and Tell): cross-entropy plus the model's doubly stochastic attention
regulariser; generated captions scored with the task's text metrics, and the attention of each word
that names a digit scored against the cell where that digit really is.

Attention metrics, teacher-forced, over the caption words that name a digit:
  attention_hit         how often the word's attention peaks on a region whose centre lies in the digit's cell
  attention_hit_chance  the same for a peak drawn uniformly over the regions: the mean share of regions in the cell
  attention_hit_before  attention_hit of the step before the word's (the glimpse a decoder that feeds its glimpse
                        back reads the digit from; an LSTM decoder learns to look there, docs/vision.md)
  attention_entropy     entropy of the word's attention over the R regions / log R (1 = uniform)
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from attention_research.training.objectives import base
from attention_research.training.objectives.seq2seq import (GenerationOptions, score_generations, shift_right,
                                                             teacher_forced)


class Captioning(base.Objective):
  """batch {'image' [B, H, W, C], 'caption' [B, T] (ends in EOS), optional 'token_cells' [B, T]}."""

  kind = 'captioning'
  Options = GenerationOptions
  metric_names = (('bleu', 'max'), ('exact_match', 'max'), ('attention_hit', 'max'),
                  ('attention_hit_chance', 'max'), ('attention_hit_before', 'max'), ('attention_entropy', 'min'),
                  ('token_accuracy', 'max'), ('loss', 'min'))

  def model_defaults(self):
    info = self.info
    out = {k: info[k] for k in ('vocab_size', 'bos_id', 'eos_id', 'pad_id') if k in info}
    if 'image_shape' in info:
      h, _, c = info['image_shape']
      out.update(image_size=h, channels=c)
    if 'max_caption_length' in info:
      out['max_length'] = info['max_caption_length']
    return out

  @property
  def decode_length(self) -> int:
    return self.options.max_decode_length or int(self.info['max_caption_length'])

  def loss(self, model, batch, rng):
    caption = batch['caption']
    logits, alphas = model(batch['image'], shift_right(caption, self.info.get('bos_id', 1)), deterministic=False)
    w = (caption != 0).astype(jnp.float32)
    ce, _ = base.cross_entropy(logits, caption, w, self.options.label_smoothing)
    reg = model.regularizer(alphas, w)
    return ce + reg, {'cross_entropy': ce, 'attention_penalty': reg,
                      'token_accuracy': base.masked_accuracy(logits, caption, w)}

  def _eval_fn(self, model, batch):
    caption = batch['caption']
    logits, alphas = model(batch['image'], shift_right(caption, self.info.get('bos_id', 1)), deterministic=True)
    tokens, _ = model.generate(batch['image'], max_length=self.decode_length, beam_size=self.options.beam_size,
                               alpha=self.options.length_penalty)
    alphas = alphas.astype(jnp.float32)
    entropy_BT = -jnp.sum(alphas * jnp.log(jnp.maximum(alphas, 1e-30)), -1) / jnp.log(jnp.float32(alphas.shape[-1]))
    return (tokens,) + teacher_forced(logits, caption) + (jnp.argmax(alphas, -1), entropy_BT)

  def region_cells(self, model) -> np.ndarray | None:
    """The data grid cell that holds the centre of each of the model's regions (both row-major)."""
    g, data_grid = getattr(model.cfg, 'grid', None), self.info.get('grid')
    if not g or not data_grid:
      return None
    centre = (np.arange(g) + 0.5) / g
    rows = np.floor(centre * data_grid).astype(int)
    return (rows[:, None] * data_grid + rows[None, :]).reshape(-1)

  def evaluate(self, model, batches):
    to_cell = self.region_cells(model)
    # Sums over the words that name a digit: peaks on its cell, chance of that, entropy, the count, and the
    # previous step's peaks on its cell.
    sums = np.zeros(5)

    def score_attention(batch, n, focus, entropy):
      if 'token_cells' in batch and to_cell is not None:
        # Teacher-forced: the word at t is predicted while attending most to region focus[t].
        true_cells = np.asarray(batch['token_cells'])[:n]
        named = true_cells >= 0
        share = (to_cell[None, :] == true_cells[named][:, None]).mean(-1)  # regions lying in each word's cell
        before = np.concatenate([np.full_like(focus[:, :1], -1), to_cell[focus[:, :-1]]], axis=1)
        sums[:] += (float(((to_cell[focus] == true_cells) & named).sum()), float(share.sum()),
                    float(entropy[named].sum()), float(named.sum()), float(((before == true_cells) & named).sum()))

    out = score_generations(self, model, batches, name='caption', fn=self._eval_fn, target_key='caption',
                            metrics=self.info.get('metrics', ('exact_match', 'bleu')), on_batch=score_attention)
    hits, chance, entropy, words, before = sums
    if words:
      out.update(attention_hit=float(hits / words), attention_hit_chance=float(chance / words),
                 attention_hit_before=float(before / words), attention_entropy=float(entropy / words))
    return out

  def _alphas_fn(self, model, batch):
    return model(batch['image'], shift_right(batch['caption'], self.info.get('bos_id', 1)), deterministic=True)[1]

  def attention_for_plot(self, model, batch):
    """Teacher-forced on the reference caption: each word's attention over the regions, on the image."""
    alphas = self.run_for_plot('caption', model, self._alphas_fn, batch)  # [1, T, R]
    caption = np.asarray(batch['caption'])[0]
    n = base.real_length(caption, self.info.get('pad_id', 0))
    g = getattr(model.cfg, 'grid', None)
    out = {'kind': 'captioner', 'weights': np.asarray(alphas)[:, :n],
           'tokens': base.token_labels(self.tokenizer_for('caption'), caption[:n]),
           'image': np.asarray(batch['image'])[:1], 'grid': (g, g) if isinstance(g, int) else g,
           'causal': (), 'cross': ('attention',)}
    if 'token_cells' in batch and self.info.get('grid'):
      out.update(token_cells=np.asarray(batch['token_cells'])[:1, :n], cells=int(self.info['grid']))
    return out
