"""What the recall builders share: sequences of token ids tagged with a target id per position.

Every task here is token classification: 'inputs' and 'targets' of `seq_len` ids, target 0 where nothing
is asked. Ids 0..3 are the shared specials; each task names its own tokens after them (blank fillers,
markers, keys, values, noise), so a target is always an input id and one tokenizer reads both.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Ragged
from attention_research.data.task import Task
from attention_research.data.tokenizers import SPECIALS, WordTokenizer, from_json

FIRST_ID = len(SPECIALS)


@dataclasses.dataclass(eq=False)
class TaggingConfig(_base.TaskConfig):
  seq_len: int = 128

  def check(self) -> None:
    """Raises ValueError when the config cannot generate a sequence."""

  def vocabulary(self) -> list[str]:
    """Token strings of ids FIRST_ID, FIRST_ID + 1, ..."""
    raise NotImplementedError


def ids(first: int, n: int) -> np.ndarray:
  return np.arange(first, first + n, dtype=np.int32)


class TaggingBuilder(_base.InMemoryBuilder, skip_registration=True):
  """Draws distinct sequences per split from `make_example(gen, config) -> (inputs, targets)`."""

  @abc.abstractmethod
  def make_example(self, gen: np.random.Generator, c) -> tuple[np.ndarray, np.ndarray]:
    ...

  def features(self):
    c = self.builder_config
    return tfds.features.FeaturesDict({
        'inputs': tfds.features.Tensor(shape=(c.seq_len,), dtype=np.int32),
        'targets': tfds.features.Tensor(shape=(c.seq_len,), dtype=np.int32),
    })

  def metadata(self):
    return {'tokenizer': WordTokenizer(self.builder_config.vocabulary()).to_json()}

  def make_splits(self):
    c = self.builder_config
    c.check()
    sizes = c.sizes()
    draws = sampling.UniqueDraws()
    out = {}
    for split in sampling.SPLITS:
      gen = sampling.rng(c.seed, self.name, split)
      examples = [draws.draw(lambda: self.make_example(gen, c), lambda ex: ex[0].tobytes())
                  for _ in range(sizes[split])]
      out[split] = [{'inputs': x.astype(np.int32), 'targets': y.astype(np.int32)} for x, y in examples]
    return out


def make_tagging_task(name: str, builder, examples, **extra_info) -> Task:
  c = builder.builder_config
  tokenizer = from_json(builder.info.metadata['tokenizer'])
  columns = {split: {'inputs': Ragged(ex['inputs'], dtype=np.int32), 'targets': Ragged(ex['targets'], dtype=np.int32)}
             for split, ex in examples.items()}
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'max_length': c.seq_len, 'pad_lengths': {'inputs': c.seq_len, 'targets': c.seq_len},
          'metrics': ('accuracy',), **extra_info}
  return Task(name=name, kind='token_classification', info=info, tokenizers={'inputs': tokenizer},
              columns=columns, length_key='inputs')
