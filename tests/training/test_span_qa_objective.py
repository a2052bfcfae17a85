"""The span_qa objective: SQuAD EM/F1, span decoding, the window baseline, the passage-only loss, a tiny evaluation."""

import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention_research import data
from attention_research.training import compare, objectives
from attention_research.training.objectives import span_qa

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def task(tmp_path_factory):
  return data.load_task('span_qa', size='small', data_dir=str(tmp_path_factory.mktemp('span_qa')))


@pytest.mark.parametrize('prediction, truth, em, f1', [
    ('The Harbour  Bank!', 'harbour bank', 1.0, 1.0),   # case, punctuation, articles, spaces
    ('the harbour bank', 'the harbour hotel', 0.0, 0.5),  # 1 shared of 2 and 2: P = R = 1/2
    ('anna weber', 'anna', 0.0, 2 / 3),                  # P = 1/2, R = 1
    ('leipzig', 'porto', 0.0, 0.0),
    ('a', 'the', 1.0, 0.0),                              # both empty after normalising: the script's F1 is 0
])
def test_squad_exact_match_and_f1(prediction, truth, em, f1):
  assert span_qa.exact_match_score(prediction, truth) == em
  assert span_qa.f1_score(prediction, truth) == pytest.approx(f1)


def test_window_baseline_on_hand_examples():
  passage = 'anna weber was born in leipzig . tom ruiz lives in porto .'.split()
  excluded = {'in', '.'}
  # leipzig's left window 'was born in' holds two question words, no other span's window more than one.
  assert span_qa.window_span('where was anna weber born ?'.split(), passage, 4, 3, excluded) == (5, 5)
  # 'tom ruiz' and 'ruiz' both see 'lives in porto' (3 words): the earliest start wins, and 'porto' itself is a
  # question word, never an answer.
  assert span_qa.window_span('who lives in porto ?'.split(), passage, 4, 3, excluded) == (7, 8)
  assert span_qa.window_span('who lives in porto ?'.split(), passage, 1, 3, excluded) == (8, 8)


def test_best_spans_equal_brute_force():
  rng = np.random.default_rng(0)
  B, L, K = 4, 9, 3
  start_logp, end_logp = rng.normal(size=(2, B, L)).astype(np.float32)
  valid = np.arange(L)[None] >= np.array([[2], [3], [1], [4]])
  valid[1, 7:] = False  # padding
  start, end = span_qa.best_spans(jnp.asarray(start_logp), jnp.asarray(end_logp), jnp.asarray(valid), K)
  for b in range(B):
    pairs = [(s, e) for s, e in itertools.product(range(L), range(L))
             if valid[b, s] and valid[b, e] and s <= e < s + K]
    want = max(pairs, key=lambda p: start_logp[b, p[0]] + end_logp[b, p[1]])
    assert (int(start[b]), int(end[b])) == want


def test_loss_is_a_softmax_over_the_passage_only(task):
  objective = objectives.make(task)
  batch = next(task.batches('train', batch_size=2, shuffle=False))
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  logits = jax.random.normal(jax.random.key(0), batch['inputs'].shape + (2,))
  nll_fn = lambda x: objective._nll(x, batch)[0].sum()
  grad = jax.grad(nll_fn)(logits)
  valid = np.asarray(span_qa.passage_mask(batch['inputs'], batch['offset']))
  assert np.all(np.asarray(grad)[~valid] == 0) and np.all(np.abs(np.asarray(grad)[valid]).sum(-1) > 0)
  b = 0
  ref = 0.0
  for c, key in enumerate(('start', 'end')):
    x = np.asarray(logits[b, valid[b], c], np.float64)
    ref += -(x[int(batch[key][b]) - int(batch['offset'][b])] - np.log(np.exp(x).sum())) / 2
  assert float(objective._nll(logits, batch)[0][b]) == pytest.approx(ref, rel=1e-5)


def test_tiny_model_evaluates_every_metric(task):
  objective = objectives.make(task)
  model = objective.init_model(dict(name='transformer.Encoder', d_model=16, num_heads=2, mlp_dim=32,
                                    num_encoder_layers=1, head='tagging', positional='rope'), 0)
  out = objective.evaluate(model, task.batches('validation', batch_size=20, shuffle=False, repeat=False,
                                               drop_remainder=False))
  assert out['examples'] == 40
  for prefix in ('', 'window_', 'majority_'):
    assert 0.0 <= out[f'{prefix}exact_match'] <= out[f'{prefix}f1'] <= 1.0
  assert out['window_f1'] > out['majority_f1']
  assert {f'exact_match_{t}' for t in task.info['question_types']} <= set(out)
  assert 0.0 < out['support_share'] < 0.5 and 0.0 <= out['support_mass'] <= 1.0
  assert 0.0 < out['reader_share'] < 0.5 and 0.0 <= out['reader_mass'] <= 1.0


def test_uniform_attention_puts_each_share_where_it_says(task):
  """Zero query kernels make every attention row uniform over the unpadded keys, so each mass is its share."""
  objective = objectives.make(task)
  model = objective.init_model(dict(name='transformer.Encoder', d_model=16, num_heads=2, mlp_dim=32,
                                    num_encoder_layers=2, head='tagging', positional='learned'), 0)
  for path, variable in nnx.iter_graph(model):
    if path[-2:] == ('query', 'kernel'):
      variable[...] = jnp.zeros_like(variable[...])
  out = objective.evaluate(model, task.batches('validation', batch_size=20, shuffle=False, repeat=False,
                                               drop_remainder=False))
  assert out['support_mass'] == pytest.approx(out['support_share'], rel=1e-4)
  assert out['reader_mass'] == pytest.approx(out['reader_share'], rel=1e-4)


@pytest.mark.parametrize('options, match', [({'max_answer_length': 0}, 'max_answer_length must be'),
                                            ({'window': 'wide'}, 'window must be'),
                                            ({'beam': 2}, 'unknown field config.objective.beam')])
def test_bad_objective_options(task, options, match):
  with pytest.raises(ValueError, match=match):
    objectives.make(task, options)


@pytest.mark.parametrize('arg, match', [('span_qa.py:colour=red', "unknown config option 'colour'"),
                                        ('span_qa.py:smoke=maybe', "smoke='maybe' is not a bool")])
def test_bad_config_options(arg, match):
  with pytest.raises(ValueError, match=match):
    compare.load_config_file(os.path.join(ROOT, 'configs', arg))
