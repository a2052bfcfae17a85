"""The NER and story QA objectives: seqeval wrapper against a hand count, baselines, attention mass on facts."""

import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import data
from attention_research.training import loop, objectives
from attention_research.training.objectives import ner
from attention_research.training.objectives.text_baselines import StoryBaselines, TaggingBaselines


def test_entity_scores_match_a_hand_count():
  true = [['B-PER', 'I-PER', 'O', 'B-LOC', 'O'], ['B-ORG', 'I-ORG', 'O', 'B-DATE']]
  pred = [['I-PER', 'I-PER', 'O', 'B-LOC', 'B-LOC'], ['B-ORG', 'O', 'O', 'B-DATE']]
  # true: PER 0-1, LOC 3, ORG 0-1, DATE 3. pred: PER 0-1 (an I- opens an entity), LOC 3, LOC 4, ORG 0, DATE 3.
  # Right: PER, LOC 3, DATE -> precision 3/5, recall 3/4, F1 2/3.
  scores = ner.entity_scores(true, pred)
  assert scores['precision'] == pytest.approx(3 / 5)
  assert scores['recall'] == pytest.approx(3 / 4)
  assert scores['f1'] == pytest.approx(2 / 3)
  assert ner.entity_scores(true, true)['f1'] == 1.0
  with pytest.raises(ValueError, match='differ in shape'):
    ner.entity_scores(true, [p[:-1] for p in pred])


def test_tagging_baselines():
  # words 4..7; word 5 is tagged 2 twice and 1 once; word 7 is tagged by its left neighbour.
  inputs = [np.array([4, 5, 7]), np.array([5, 5, 6]), np.array([6, 7, 4])] * 5
  targets = [np.array([1, 2, 3]), np.array([2, 1, 1]), np.array([1, 4, 1])] * 5
  b = TaggingBaselines(inputs, targets, vocab_size=10)
  out = b.predict([np.array([5, 9]), np.array([4, 5, 7]), np.array([6, 7, 4])])
  assert out['majority'][0].tolist() == [2, 1]  # word 9 is unseen: the most frequent tag
  assert out['bow'][1].tolist() == [1, 2, 3] and out['bow'][2].tolist() == [1, 4, 1]


def test_story_baselines():
  story = np.zeros((6, 2, 3), np.int32)
  story[:, 0, 0] = [4, 4, 5, 5, 4, 5]
  question = np.full((6, 2), 6, np.int32)
  label = np.array([0, 0, 1, 1, 0, 1])
  b = StoryBaselines(story, question, label, vocab_size=8)
  out = b.predict(story, question)
  assert out['bow'].tolist() == label.tolist() and set(out['majority'].tolist()) <= {0, 1}


@pytest.fixture(scope='module')
def story_task(tmp_path_factory):
  return data.load_task('story_qa', size='small', data_dir=str(tmp_path_factory.mktemp('story')), task=2)


def test_uniform_memory_attention_puts_the_share_of_supporting_facts_on_them(story_task):
  objective = objectives.make(story_task, {'kind': 'story_qa', 'inputs': 'memory'})
  model = objective.init_model({'name': 'memnet.MemN2N', 'hops': 2, 'd_model': 8}, seed=0)
  model.tables_KVD[...] = jnp.zeros_like(model.tables_KVD[...])  # equal scores: uniform attention
  model.temporal_KMD[...] = jnp.zeros_like(model.temporal_KMD[...])
  metrics = objective.evaluate(model, loop.eval_batches(story_task, 'test', 16, 0))
  cols = story_task.columns['test']
  support, sentences = cols['support'].array, (cols['story'].array != 0).any(-1)
  expected = np.mean(support.sum(-1) / sentences.sum(-1))
  for k in (1, 2):
    assert metrics[f'support_mass_hop{k}'] == pytest.approx(expected, rel=1e-5)
  assert metrics['support_mass_last'] == metrics['support_mass_hop2']
  assert metrics['examples'] == 40 and 0 <= metrics['bow_accuracy'] <= 1 and 0 < metrics['majority_accuracy'] <= 1


def test_transformer_reads_the_flat_story(story_task):
  objective = objectives.make(story_task, {'kind': 'story_qa', 'inputs': 'flat'})
  model = objective.init_model({'name': 'transformer.Encoder', 'd_model': 16, 'num_heads': 2, 'num_encoder_layers': 1,
                                'pooling': 'cls', 'head': 'pool'}, seed=0)
  metrics = objective.evaluate(model, loop.eval_batches(story_task, 'test_ood', 20, 0))
  assert 0 <= metrics['accuracy'] <= 1 and 'support_mass_last' not in metrics


@pytest.mark.parametrize('options, match', [({'kind': 'story_qa', 'inputs': 'graph'}, 'inputs must be one of'),
                                            ({'kind': 'ner', 'word_dropout': 1.5}, 'word_dropout')])
def test_bad_options_are_value_errors(story_task, options, match):
  with pytest.raises(ValueError, match=match):
    objectives.make(story_task, options)
