"""The recall family: every answer is recovered from the sequence by a checker written apart from the builders."""

import numpy as np
import pytest

from attention_research.data import cache, loading
from attention_research.data.builders import _tagging, compression, fuzzy_recall, memorization, mqar, noisy_recall
from attention_research.data.builders import selective_copying

MQAR_OPTIONS = [{'rebind': 2}, {'compositional': True}, {'rebind': 2, 'compositional': True}]


def _build(tmp_path_factory, name, **overrides):
  config = loading.builtin_config(name, 'small', **overrides)
  builder, examples = cache.load_builtin(name, config, str(tmp_path_factory.mktemp(name)))
  return builder.builder_config, examples


def _rows(examples):
  for split in examples:
    yield from zip(examples[split]['inputs'], examples[split]['targets'])


@pytest.fixture(scope='module', params=MQAR_OPTIONS, ids=lambda o: ','.join(f'{k}={v}' for k, v in o.items()))
def mqar_variant(request, tmp_path_factory):
  return request.param, _build(tmp_path_factory, 'mqar', **request.param)


def test_mqar_variants_answer_the_latest_binding(mqar_variant):
  options, (c, examples) = mqar_variant
  k = 2 if options.get('compositional') else 1
  context = (c.num_kv_pairs + options.get('rebind', 0)) * (k + 1)
  rebound_somewhere = False
  for inputs, targets in _rows(examples):
    items = [tuple(inputs[j:j + k + 1].tolist()) for j in range(0, context, k + 1)]
    latest = {item[:k]: item[k] for item in items}
    assert len(latest) == c.num_kv_pairs
    rebound_somewhere |= len(items) > len(latest)
    queries = np.flatnonzero(targets)
    assert len(queries) == c.num_queries and (queries >= context).all()
    for q in queries:
      assert targets[q] == latest[tuple(inputs[q - k + 1:q + 1].tolist())]
    if k == 2:  # each key token alone is ambiguous: it starts or ends more than one key (grid of 2 x 2)
      firsts = [key[0] for key in latest]
      assert max(firsts.count(f) for f in firsts) > 1
  assert rebound_somewhere == bool(options.get('rebind'))


def test_mqar_variants_are_deterministic_and_splits_disjoint(mqar_variant, tmp_path_factory):
  options, (_, examples) = mqar_variant
  _, again = _build(tmp_path_factory, 'mqar', **options)
  for split in examples:
    assert np.array_equal(np.stack(examples[split]['inputs']), np.stack(again[split]['inputs']))
  seen = [{np.asarray(x).tobytes() for x in examples[s]['inputs']} for s in examples]
  assert sum(map(len, seen)) == len(set().union(*seen))


def test_mqar_default_layout_is_unchanged():
  """The options off keep the original generator (and so the data every earlier result used)."""
  c = mqar.MqarConfig(name='x', vocab_size=36, seq_len=32, num_kv_pairs=4, num_queries=4)
  inputs, _ = mqar.make_example(np.random.default_rng(0), c)
  assert inputs[:8].tolist() == [8, 20, 11, 32, 15, 22, 12, 30]  # what the generator gave before the options


@pytest.mark.parametrize('overrides, message', [({'rebind': 5}, 'rebind'), ({'rebind': 4, 'vocab_size': 18}, 'rebinds'),
                                                ({'seq_len': 20, 'rebind': 4}, 'room')])
def test_mqar_option_errors(overrides, message):
  c = mqar.MqarConfig(name='x', **{'vocab_size': 36, 'seq_len': 32, 'num_kv_pairs': 4, 'num_queries': 4, **overrides})
  with pytest.raises(ValueError, match=message):
    c.check()


def test_selective_copying_targets_are_the_tokens_in_order(build):
  built = build('selective_copying')
  c = built.builder.builder_config
  tokens = built.task.tokenizers['inputs']
  for inputs, targets in _rows(built.examples):
    words = [tokens.decode([i]) for i in inputs]
    content = [i for i, w in zip(inputs, words) if w not in ('_', '?')]
    assert words[-c.num_tokens:] == ['?'] * c.num_tokens
    assert np.array_equal(targets[-c.num_tokens:], content)
    assert not targets[:-c.num_tokens].any()


def _spans(inputs, is_key):
  """Maximal runs of key tokens and of value tokens, in order."""
  runs, start = [], 0
  for t in range(1, len(inputs) + 1):
    if t == len(inputs) or is_key(inputs[t]) != is_key(inputs[start]):
      runs.append((start, tuple(inputs[start:t].tolist())))
      start = t
  return runs


def test_fuzzy_recall_targets_continue_a_pair_seen_before(build):
  built = build('fuzzy_recall')
  c = built.builder.builder_config
  blank = built.task.tokenizers['inputs'].encode('_')[0]
  first_value = blank + 1 + c.num_keys
  for inputs, targets in _rows(built.examples):
    end = len(inputs) if blank not in inputs else int(np.flatnonzero(inputs == blank)[0])
    runs = _spans(inputs[:end], lambda i: i < first_value)
    expected, binding = np.zeros_like(targets), {}
    for (k_start, key), (v_start, value) in zip(runs[0::2], runs[1::2]):
      assert key[0] < first_value <= value[0]
      if key in binding:
        assert binding[key] == value
        expected[v_start - 1:v_start + len(value) - 1] = value
      binding[key] = value
    assert np.array_equal(targets, expected)
    keys = list(binding)
    assert all(a == b or a[:len(b)] != b for a in keys for b in keys), 'keys are prefix-free'


def test_noisy_recall_targets_ignore_the_noise(build):
  built = build('noisy_recall')
  c = built.builder.builder_config
  noise = noisy_recall.first_noise_id(c)
  assert sum((np.asarray(x) >= noise).sum() for x, _ in _rows(built.examples)) > 0
  for inputs, targets in _rows(built.examples):
    clean = np.flatnonzero(inputs < noise)
    pairs = inputs[clean].reshape(-1, 2)
    binding, expected = {}, np.zeros_like(targets)
    for j, (key, value) in enumerate(pairs):
      if key in binding:
        assert binding[key] == value
        expected[clean[2 * j]] = value
      binding[key] = value
    assert np.array_equal(targets, expected)


def test_compression_position_queries_return_the_token(build):
  built = build('compression')
  c = built.builder.builder_config
  tokens = built.task.tokenizers['inputs']
  for inputs, targets in _rows(built.examples):
    words = [tokens.decode([i]) for i in inputs]
    marker = words.index('|')
    for q in np.flatnonzero(targets):
      assert words[q].startswith('@') and q > marker
      assert targets[q] == inputs[int(words[q][1:])]
    assert len(np.flatnonzero(targets)) == marker == c.num_tokens


def test_memorization_is_one_fixed_map_over_all_splits(build):
  built = build('memorization')
  table = {}
  for inputs, targets in _rows(built.examples):
    for x, y in zip(inputs.tolist(), targets.tolist()):
      assert table.setdefault(x, y) == y
  stored = built.builder.info.metadata['mapping']
  assert all(stored[x - _tagging.FIRST_ID] == y for x, y in table.items())
  seed0, seed1 = (memorization.MemorizationConfig(name='x', seed=s) for s in (0, 1))
  assert not np.array_equal(memorization.mapping(seed0), memorization.mapping(seed1))


@pytest.mark.parametrize('config, message', [
    (selective_copying.SelectiveCopyingConfig(name='x', seq_len=10, num_tokens=6), 'seq_len'),
    (compression.CompressionConfig(name='x', seq_len=10, num_tokens=6), 'seq_len'),
    (noisy_recall.NoisyRecallConfig(name='x', num_kv_pairs=100), 'num_kv_pairs'),
    (fuzzy_recall.FuzzyRecallConfig(name='x', num_kv_pairs=100, max_span=1), 'prefix-free'),
])
def test_impossible_configs(config, message):
  with pytest.raises(ValueError, match=message):
    config.check()
