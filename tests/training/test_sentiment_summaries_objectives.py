"""The sentiment and summarization objectives: ROUGE wrapper against a hand count, attention mass on the
sentiment tokens, baselines."""

import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import data
from attention_research.training import loop, objectives
from attention_research.training.objectives.sentiment import BagOfWordsBaselines, salient_mass
from attention_research.training.objectives.summarization import rouge
from attention_research.training.objectives.text_baselines import SummaryBaselines


def test_rouge_matches_a_hand_count():
  hyps = ['the cat sat on the mat', 'rovers beat city', 'a b']
  refs = ['the cat is on the mat', 'rovers beat city 2 - 1', 'c d']
  # 1: unigrams the x2, cat, on, mat shared: P = R = 5/6; bigrams the-cat, on-the, the-mat: 3/5; LCS 5: 5/6.
  # 2: '-' is no token, so the reference is 5 tokens: R1 P=1, R=3/5 -> F 3/4; R2 P=1, R=2/4 -> 2/3; LCS 3 -> 3/4.
  # 3: nothing shared.
  scores = rouge(hyps, refs)
  assert scores['rouge1'] == pytest.approx(100 * (5 / 6 + 3 / 4 + 0) / 3)
  assert scores['rouge2'] == pytest.approx(100 * (3 / 5 + 2 / 3 + 0) / 3)
  assert scores['rougeL'] == pytest.approx(100 * (5 / 6 + 3 / 4 + 0) / 3)
  assert rouge(refs, refs) == {'rouge1': 100.0, 'rouge2': 100.0, 'rougeL': 100.0}
  with pytest.raises(ValueError, match='one each'):
    rouge(hyps, refs[:2])
  with pytest.raises(ValueError, match='unknown ROUGE types'):
    rouge(hyps, refs, types=('rouge4',))


def test_salient_mass_by_hand():
  # 1 head, 3 tokens (+ a cls token at key 0); token 1 is salient; token 2 is padding.
  w = jnp.asarray([[[[0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]]])
  salient, valid = jnp.asarray([[0, 1, 0]]), jnp.asarray([[True, True, False]])
  assert float(salient_mass(w, salient, valid, use_cls=True)[0]) == pytest.approx(0.2)
  w = w[:, :, 1:, 1:]  # no cls: queries 0 and 1 are real, their mass on key 1 is 0.25 and 0.0
  assert float(salient_mass(w, salient, valid, use_cls=False)[0]) == pytest.approx(0.125)


def test_bag_of_words_cannot_tell_a_negation_apart_from_its_permutation():
  # words: 4 good, 5 bad, 6 not. 'not good bad' is negative+negative, 'good not bad' is positive+positive.
  x = np.array([[6, 4, 5], [4, 6, 5], [4, 4, 0], [5, 5, 0]] * 5)
  y = np.array([0, 1, 1, 0] * 5)
  b = BagOfWordsBaselines(x, y, vocab_size=8)
  out = b.predict(x)
  assert out['bow'][0] == out['bow'][1]  # the same bag: the same guess, one of the two is wrong
  assert out['bow'][2] == 1 and out['bow'][3] == 0 and out['majority'].tolist() == [0] * 20


@pytest.fixture(scope='module')
def sentiment_task(tmp_path_factory):
  return data.load_task('sentiment_reviews', size='small', data_dir=str(tmp_path_factory.mktemp('sentiment')))


@pytest.mark.parametrize('pooling', ['cls', 'mean'])
def test_uniform_attention_puts_the_share_of_sentiment_tokens_on_them(sentiment_task, pooling):
  objective = objectives.make(sentiment_task, {'kind': 'sentiment'})
  model = objective.init_model({'name': 'transformer.Encoder', 'd_model': 16, 'num_heads': 2,
                                'num_encoder_layers': 1, 'pooling': pooling, 'head': 'pool'}, seed=0)
  query = model.stack.blocks[0].self_attention.query
  for param in (query.kernel, query.bias):  # zero queries, equal scores: uniform attention
    if param is not None:
      param[...] = jnp.zeros_like(param[...])
  metrics = objective.evaluate(model, loop.eval_batches(sentiment_task, 'test_ood', 20, 0))
  cols = sentiment_task.columns['test_ood']
  n = len(cols['inputs'])
  marks, inputs = cols['sentiment'].take(np.arange(n)), cols['inputs'].take(np.arange(n))
  real = (inputs != 0).sum(-1)
  expected = np.mean(marks.sum(-1) / (real + (pooling == 'cls')))
  assert metrics['sentiment_mass'] == pytest.approx(expected, rel=1e-4)
  assert metrics['sentiment_share'] == pytest.approx(np.mean(marks.sum(-1) / real), rel=1e-6)
  assert metrics['examples'] == 40 and 0 < metrics['majority_accuracy'] <= 1 and 0 <= metrics['bow_accuracy'] <= 1


def test_summarization_scores_generations_with_rouge(tmp_path):
  task = data.load_task('reports', size='small', data_dir=str(tmp_path))
  objective = objectives.make(task, {'kind': 'summarization', 'beam_size': 2, 'max_decode_length': 6})
  model = objective.init_model({'name': 'transformer.EncoderDecoder', 'd_model': 16, 'num_heads': 2,
                                'num_encoder_layers': 1, 'num_decoder_layers': 1, 'mlp_dim': 32}, seed=0)
  metrics = objective.evaluate(model, loop.eval_batches(task, 'test', 10, 0))
  assert set(metrics) >= {'rouge1', 'rouge2', 'rougeL', 'exact_match', 'token_accuracy', 'loss', 'majority_rougeL',
                          'bow_rougeL'}
  names = ('rouge1', 'rouge2', 'rougeL', 'majority_rougeL', 'bow_rougeL')
  assert all(0.0 <= metrics[k] <= 100.0 for k in names) and metrics['examples'] == 20
  assert 0.0 <= metrics['scorer_mass'] <= 1.0 and 0.0 < metrics['scorer_share'] < 1.0


def test_summary_baselines_by_hand():
  # Word ids: 1 rovers, 2 city, 3 scored, 4 rain, 5 sun. Documents are id rows padded with 0.
  documents = np.array([[1, 3, 3, 0], [2, 4, 0, 0], [1, 5, 5, 5]])
  summaries = ['rovers won', 'no goals', 'no goals']
  baselines = SummaryBaselines(documents, summaries, vocab_size=6)
  guesses = baselines.predict(np.array([[1, 3, 0, 0], [5, 5, 1, 0], [4, 4, 2, 2]]))
  assert guesses['majority'] == ['no goals'] * 3
  # Cosine on word counts: [1, 3] is nearest to document 0, [5, 5, 1] to document 2, [4, 4, 2, 2] to document 1.
  assert guesses['bow'] == ['rovers won', 'no goals', 'no goals']
  assert baselines.predict(np.zeros((0, 4), np.int64)) == {'majority': [], 'bow': []}
  with pytest.raises(ValueError, match='one each'):
    SummaryBaselines(documents, summaries[:2], vocab_size=6)
