"""A tiny task and model with the interfaces of attention_research.data and .models, for fast loop tests."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attention_research import attention


POISON_TOKEN = 5  # a batch containing it has a NaN loss (the data never has it otherwise)


class _Iterator:
  """Seeded, resumable iterator over the rows of one split (the data package's BatchIterator contract)."""

  def __init__(self, x, y, *, batch_size, seed, shuffle, repeat, drop_remainder, poison_after=None):
    self.x, self.y = x, y
    self.poison_after, self.served = poison_after, 0
    self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
    self.repeat, self.drop_remainder = repeat, drop_remainder
    self.epoch, self.index = 0, 0

  def _order(self):
    n = len(self.x)
    return np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)

  def __iter__(self):
    return self

  def __next__(self):
    n = len(self.x)
    if self.index >= n or (self.drop_remainder and self.index + self.batch_size > n):
      if not self.repeat:
        raise StopIteration
      self.epoch, self.index = self.epoch + 1, 0
    idx = self._order()[self.index:self.index + self.batch_size]
    self.index += self.batch_size
    self.served += 1
    x = self.x[idx]
    if self.poison_after is not None and self.served > self.poison_after:
      x = x.copy()
      x[:, 0] = POISON_TOKEN
    return {'inputs': x, 'label': self.y[idx]}

  def get_state(self):
    return {'epoch': self.epoch, 'index': self.index, 'served': self.served}

  def set_state(self, state):
    self.epoch, self.index, self.served = int(state['epoch']), int(state['index']), int(state['served'])


class ParityTask:
  """Label = whether token 1 occurs more often than token 2 in a padded sequence."""

  kind = 'classification'
  name = 'fake_counting'
  splits = ('train', 'validation', 'test')

  def __init__(self, n=(256, 64, 64), length=12, vocab=6, seed=0, poison_after=None):
    self.poison_after = poison_after  # train batches after this many carry POISON_TOKEN (NaN tests)
    rng = np.random.default_rng(seed)
    self.info = {'vocab_size': vocab, 'num_classes': 2, 'pad_id': 0}
    self._data = {}
    for split, size in zip(self.splits, n):
      x = rng.integers(1, vocab - 1, (size, length)).astype(np.int32)  # POISON_TOKEN (vocab - 1) never occurs
      lengths = rng.integers(length // 2, length + 1, size)
      x[np.arange(length)[None] >= lengths[:, None]] = 0
      y = ((x == 1).sum(1) > (x == 2).sum(1)).astype(np.int32)
      self._data[split] = (x, y)

  def batches(self, split, *, batch_size, seed, shuffle=True, repeat=True, drop_remainder=True, pad_scope='task'):
    del pad_scope  # dense fixed-length data: every split has one length
    if split not in self._data:
      raise ValueError(f'unknown split {split!r}')
    x, y = self._data[split]
    return _Iterator(x, y, batch_size=batch_size, seed=seed, shuffle=shuffle, repeat=repeat,
                     drop_remainder=drop_remainder, poison_after=self.poison_after if split == 'train' else None)


@dataclasses.dataclass(frozen=True)
class TinyConfig:
  vocab_size: int | None = None
  num_classes: int | None = None
  width: int = 16
  heads: int = 2
  attention: str = 'dot_product'
  dropout: float = 0.1

  def __post_init__(self):
    attention.get(self.attention)
    if self.width % self.heads:
      raise ValueError(f'width {self.width} is not divisible by heads {self.heads}.')


class TinyClassifier(nnx.Module):
  """Embedding, one attention layer (pure function from the registry), masked mean pool, linear head."""

  def __init__(self, cfg: TinyConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embed = nnx.Embed(cfg.vocab_size, cfg.width, rngs=rngs)
    self.qkv = nnx.Linear(cfg.width, 3 * cfg.width, rngs=rngs)
    self.drop = nnx.Dropout(cfg.dropout, rngs=rngs)
    self.head = nnx.Linear(cfg.width, cfg.num_classes, rngs=rngs)

  def __call__(self, tokens_BL, *, deterministic: bool = True):
    cfg = self.cfg
    B, L = tokens_BL.shape
    valid_BL = tokens_BL != 0
    x = self.embed(tokens_BL)
    q, k, v = jnp.split(self.qkv(x).reshape(B, L, 3 * cfg.heads, -1), 3, axis=2)
    mask = valid_BL[:, None, None, :]
    x = x + attention.get(cfg.attention).fn(q, k, v, mask=mask).reshape(B, L, cfg.width)
    x = self.drop(x, deterministic=deterministic)
    pooled = (x * valid_BL[..., None]).sum(1) / jnp.maximum(valid_BL.sum(1, keepdims=True), 1)
    pooled = pooled + jnp.where((tokens_BL == POISON_TOKEN).any(), jnp.nan, 0.0)
    return self.head(jax.nn.gelu(pooled))


def tiny_config(**overrides):
  """A locked ConfigDict (built like the config files') for the tiny model on the fake task.

  overrides: dotted fields, e.g. tiny_config(**{'train.steps': 20}).
  """
  from attention_research.training.config_files import make_config
  sections = dict(
      model={'name': 'training_fakes:TinyClassifier', 'width': 16, 'heads': 2, 'attention': 'dot_product',
             'dropout': 0.1},
      data={'size': 'small', 'eval_batch_size': 32},
      train={'steps': 40, 'batch_size': 16, 'log_every': 10, 'checkpoint_every': 10},
      optim={'learning_rate': 3e-3, 'warmup_steps': 5, 'weight_decay': 0.01},
      compare={'variants': 'dot_product,linear', 'seeds': 2})
  for key, value in overrides.items():
    section, field = key.split('.', 1)
    sections[section][field] = value
  return make_config(task='fake_counting', name='tiny', **sections)
