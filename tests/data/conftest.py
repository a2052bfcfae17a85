"""Built-in datasets at `small` size, built once per test session into tmp dirs."""

import os

import numpy as np
import pytest

from attention_research.data import cache, loading


class Built:
  """One build of a built-in task: the tfds builder, raw examples and the Task."""

  def __init__(self, name, seed, data_dir):
    config = loading.builtin_config(name, 'small', **({'seed': seed} if seed else {}))
    self.builder, self.examples = cache.load_builtin(name, config, str(data_dir))
    self.task = loading._builtin_modules()[name].make_task(self.builder, self.examples)
    self.data_dir = data_dir


@pytest.fixture(scope='session')
def build(tmp_path_factory):
  """build(name, seed=0, copy=0): cached per (name, seed, copy); copies use separate data_dirs."""
  built = {}

  def get(name, seed=0, copy=0):
    key = (name, seed, copy)
    if key not in built:
      built[key] = Built(name, seed, tmp_path_factory.mktemp(f'{name}_seed{seed}_copy{copy}'))
    return built[key]

  return get


def _canonical(examples):
  """Split examples as a comparable, order-independent structure."""
  out = {}
  for split, columns in examples.items():
    keys = sorted(columns)
    rows = []
    for i in range(len(columns[keys[0]])):
      rows.append(tuple((k, np.asarray(columns[k][i]).tobytes() if not isinstance(columns[k][i], str)
                         else columns[k][i]) for k in keys))
    out[split] = sorted(rows)
  return out


@pytest.fixture(scope='session')
def canonical():
  return _canonical


@pytest.fixture(scope='session', autouse=True)
def _no_default_data_dir(tmp_path_factory):
  """Anything that forgets data_dir lands in a tmp dir, never in ~/tensorflow_datasets."""
  old = os.environ.get('TFDS_DATA_DIR')
  os.environ['TFDS_DATA_DIR'] = str(tmp_path_factory.mktemp('default_data_dir'))
  yield
  if old is None:
    os.environ.pop('TFDS_DATA_DIR', None)
  else:
    os.environ['TFDS_DATA_DIR'] = old


class BuiltStory(Built):
  def __init__(self, task_id, data_dir):  # pylint: disable=super-init-not-called
    config = loading.builtin_config('story_qa', 'small', task=task_id)
    self.builder, self.examples = cache.load_builtin('story_qa', config, str(data_dir))
    self.task = loading._builtin_modules()['story_qa'].make_task(self.builder, self.examples)
    self.data_dir = data_dir


@pytest.fixture(scope='session')
def build_story(tmp_path_factory):
  """build_story(task_id): the small story_qa build of one bAbI task, cached per session."""
  built = {}

  def get(task_id):
    if task_id not in built:
      built[task_id] = BuiltStory(task_id, tmp_path_factory.mktemp(f'story_qa_{task_id}'))
    return built[task_id]

  return get
