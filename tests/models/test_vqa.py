"""VQA: shapes, question padding, the question-only baseline, hop attention and its scoring, bad input."""

import numpy as np
import pytest
from flax import nnx

from attention_research.models.vqa import VQA, VQAConfig
from attention_research.training.objectives import vqa as vqa_objective

CFG = dict(vocab_size=12, num_classes=5, max_length=8, image_size=16, channels=1, grid=2, conv_features=4,
           d_model=8, num_heads=2, num_layers=1, hops=2, mlp_dim=16)
QUESTION = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]], np.int32)


def _images(seed=0):
  return np.random.default_rng(seed).uniform(size=(2, 16, 16, 1)).astype(np.float32)


def _model(**overrides):
  return VQA(VQAConfig(**{**CFG, **overrides}), rngs=nnx.Rngs(0))


@pytest.fixture(scope='module')
def model():
  return _model()


def test_shapes_padding_and_attention(model):
  logits, hops = model.hop_attention(_images(), QUESTION)
  assert logits.shape == (2, 5) and hops.shape == (2, 2, 4)  # [B, K, R], R = grid * grid
  np.testing.assert_allclose(np.asarray(hops).sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(model(_images(), QUESTION), logits, atol=1e-6)
  # More padding changes nothing: the question encoder masks padded keys and reads the cls token.
  longer = np.pad(QUESTION, ((0, 0), (0, 3)))
  np.testing.assert_allclose(model(_images(), longer), logits, atol=1e-5)
  # The answer depends on the image.
  assert np.abs(np.asarray(model(_images(1), QUESTION) - logits)).max() > 1e-4


def test_question_only_baseline_ignores_the_image():
  model = _model(image=False)
  assert model.regions is None
  logits = model(None, QUESTION)
  np.testing.assert_allclose(model(_images(1), QUESTION), logits)
  with pytest.raises(ValueError, match='question-only model'):
    model.hop_attention(_images(), QUESTION)


@pytest.mark.parametrize('overrides, match', [
    (dict(attention='nope'), "unknown attention variant 'nope'"),
    (dict(attention='local'), 'cannot be a cross-attention'),
    (dict(grid=3), 'multiple of 4 \\* grid'),
    (dict(d_model=9), 'divisible by num_heads'),
    (dict(image='yes'), 'image must be True or False'),
    (dict(hops=0), 'hops'),
])
def test_bad_config(overrides, match):
  with pytest.raises(ValueError, match=match):
    VQAConfig(**{**CFG, **overrides})


def test_bad_input(model):
  with pytest.raises(ValueError, match=r'image must be \[B, 16, 16, 1\]; got \(2, 16, 16\)'):
    model(_images()[..., 0], QUESTION)
  with pytest.raises(ValueError, match='question length 9 exceeds max_length=8'):
    model(_images(), np.ones((2, 9), np.int32))
  with pytest.raises(ValueError, match='integer ids'):
    model(_images(), QUESTION.astype(np.float32))
  with pytest.raises(ValueError, match='needs image'):
    model(None, QUESTION)


def test_attention_hit_and_its_chance_level():
  to_cell = vqa_objective.region_cells(8, 3)  # 8x8 regions over a 3x3 grid: centres at 0.5/8 .. 7.5/8
  assert to_cell.shape == (64,) and np.bincount(to_cell).tolist() == [9, 6, 9, 6, 4, 6, 9, 6, 9]
  assert to_cell[0] == 0 and to_cell[63] == 8 and to_cell[3 * 8 + 3] == 4
  weights = np.zeros((3, 64))
  weights[0, 63] = weights[1, 0] = weights[2, 3 * 8 + 3] = 1.0
  refs = np.array([[8, 0, -1], [4, -1, -1], [-1, -1, -1]])
  hit, chance, counted = vqa_objective.peak_hits(weights, refs, to_cell)
  assert hit.tolist() == [True, False, False] and counted.tolist() == [True, True, False]
  np.testing.assert_allclose(chance, [18 / 64, 4 / 64, 0.0])
