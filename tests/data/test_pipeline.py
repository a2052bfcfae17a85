"""BatchIterator: deterministic order, exact resume, padding and bucketing."""

import json

import numpy as np
import pytest

from attention_research.data.pipeline import BatchIterator, Dense, Ragged


def _columns(n=23):
  rng = np.random.default_rng(0)
  seqs = [rng.integers(1, 50, size=rng.integers(1, 12)).astype(np.int32) for _ in range(n)]
  return {'inputs': Ragged(seqs, dtype=np.int32), 'label': Dense(np.arange(n, dtype=np.int32))}


def _take(iterator, k):
  return [next(iterator) for _ in range(k)]


def _same(batches_a, batches_b):
  return len(batches_a) == len(batches_b) and all(
      a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) for a, b in zip(batches_a, batches_b))


@pytest.mark.parametrize('bucket_window', [0, 2])
def test_resume_gives_exactly_the_batches_of_an_uninterrupted_run(bucket_window):
  kwargs = dict(batch_size=4, seed=7, bucket_window=bucket_window, length_key='inputs', pad='batch')
  reference = _take(BatchIterator(_columns(), **kwargs), 20)  # spans several epochs
  interrupted = BatchIterator(_columns(), **kwargs)
  first = _take(interrupted, 7)
  state = json.loads(json.dumps(interrupted.get_state()))  # as stored in a checkpoint
  resumed = BatchIterator(_columns(), **kwargs)
  resumed.set_state(state)
  assert _same(first + _take(resumed, 13), reference)


def test_same_seed_same_order_other_seed_other_order():
  a = _take(BatchIterator(_columns(), batch_size=4, seed=1), 5)
  b = _take(BatchIterator(_columns(), batch_size=4, seed=1), 5)
  c = _take(BatchIterator(_columns(), batch_size=4, seed=2), 5)
  assert _same(a, b) and not _same(a, c)


def test_each_epoch_is_a_new_permutation_of_all_examples():
  it = BatchIterator(_columns(24), batch_size=4, seed=0)
  epochs = [np.concatenate([b['label'] for b in _take(it, 6)]) for _ in range(2)]
  for labels in epochs:
    assert sorted(labels.tolist()) == list(range(24))
  assert not np.array_equal(epochs[0], epochs[1])


def test_no_shuffle_no_repeat_keeps_the_remainder():
  batches = list(BatchIterator(_columns(10), batch_size=4, shuffle=False, repeat=False, drop_remainder=False))
  assert [b['label'].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
  dropped = list(BatchIterator(_columns(10), batch_size=4, shuffle=False, repeat=False))
  assert len(dropped) == 2


def test_padding_modes():
  cols = _columns()
  fixed = next(BatchIterator(cols, batch_size=5, pad='max', pad_lengths={'inputs': 16}))
  assert fixed['inputs'].shape == (5, 16)
  per_batch = next(BatchIterator(cols, batch_size=5, pad='batch', pad_multiple=8))
  assert per_batch['inputs'].shape[1] % 8 == 0
  for row, i in zip(fixed['inputs'], fixed['label']):
    seq = cols['inputs'].values[cols['inputs'].offsets[i]:cols['inputs'].offsets[i + 1]]
    assert np.array_equal(row[:len(seq)], seq) and (row[len(seq):] == 0).all()


def test_bucketing_reduces_padding():
  cols = _columns(200)
  plain = _take(BatchIterator(cols, batch_size=8, pad='batch', seed=0), 25)
  bucketed = _take(BatchIterator(cols, batch_size=8, pad='batch', seed=0, bucket_window=25,
                                 length_key='inputs'), 25)
  assert sum(b['inputs'].size for b in bucketed) < sum(b['inputs'].size for b in plain)


def test_bad_arguments_and_states():
  with pytest.raises(ValueError, match='larger than the split'):
    BatchIterator(_columns(3), batch_size=4)
  it = BatchIterator(_columns(), batch_size=4, seed=0)
  with pytest.raises(ValueError, match='seed'):
    it.set_state({'epoch': 0, 'batch': 1, 'seed': 5})
  with pytest.raises(ValueError, match='pad'):
    BatchIterator(_columns(), batch_size=4, pad='longest')


def test_task_batches_resume(build):
  task = build('number_translation').task
  reference = _take(task.batches('train', batch_size=32, seed=3), 30)
  it = task.batches('train', batch_size=32, seed=3)
  _take(it, 11)
  state = it.get_state()
  resumed = task.batches('train', batch_size=32, seed=3)
  resumed.set_state(state)
  assert _same(reference[11:], _take(resumed, 19))


def test_task_pad_scope_split_pads_each_split_to_its_own_longest():
  from attention_research.data.task import Task, pad_lengths
  rng = np.random.default_rng(1)
  columns = {split: {'inputs': Ragged([rng.integers(1, 9, size=n).astype(np.int32) for n in sizes], dtype=np.int32),
                     'label': Dense(np.zeros(len(sizes), np.int32))}
             for split, sizes in (('train', [2, 5, 3, 4]), ('test_ood', [9, 12]))}
  task = Task(name='toy', kind='classification', info={'pad_lengths': pad_lengths(columns)}, tokenizers={},
              columns=columns)
  assert next(task.batches('train', batch_size=2))['inputs'].shape == (2, 12)
  assert next(task.batches('train', batch_size=2, pad_scope='split'))['inputs'].shape == (2, 5)
  assert next(task.batches('test_ood', batch_size=2, pad_scope='split'))['inputs'].shape == (2, 12)
  with pytest.raises(ValueError, match='pad_scope'):
    task.batches('train', batch_size=2, pad_scope='batch')
