"""What every built-in builder shares: a seeded config and in-memory generation.

Each built-in task draws all of its splits at once from one seed, then cuts
them into train/validation/test, so distinctness across splits is decided in
one place instead of being hoped for.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect

import tensorflow_datasets as tfds
from etils import epath

from attention_research.data import sampling


@dataclasses.dataclass(eq=False)
class TaskConfig(tfds.core.BuilderConfig):
  seed: int = 0
  num_train: int = 1000
  num_validation: int = 100
  num_test: int = 100

  def sizes(self) -> dict[str, int]:
    return sampling.split_sizes(self)


class InMemoryBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Builds every split in memory with `make_splits`, then writes them."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  DEFAULT_CONFIG_NAME = 'default'

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # tfds finds it through importlib_resources, which is not a dependency of
    # this project; the source file is all tfds needs (to look for checksums).
    return epath.Path(inspect.getfile(cls))

  @abc.abstractmethod
  def make_splits(self) -> dict[str, list[dict]]:
    """Returns {split: [example, ...]} for 'train', 'validation', 'test'."""

  def metadata(self) -> dict:
    """JSON-serialisable facts saved beside the data (vocabularies...)."""
    return {}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=self.features(),
        metadata=tfds.core.MetadataDict(self.metadata()),
    )

  @abc.abstractmethod
  def features(self) -> tfds.features.FeaturesDict:
    ...

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is generated offline
    splits = self.make_splits()
    return {split: self._generate_examples(examples) for split, examples in splits.items()}

  def _generate_examples(self, examples):
    for i, example in enumerate(examples):
      yield i, example
