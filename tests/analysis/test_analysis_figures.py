"""figures_for_run for every kind of model output, and plots of every registered attention variant."""

import csv

import jax
import numpy as np
import pytest

from attention_research import analysis, attention
from tests.attention.variant_cases import variant_kwargs

SRC = ['the', 'cat', 'sat', 'on', 'the', 'mat']
TGT = ['le', 'chat', 'était', 'assis', 'sur', 'le', 'tapis']


def _encoder_decoder(random_weights, B=2, N=2, S=8, T=9):
  """Padded batch: S=8 source and T=9 target positions, of which the example uses 6 and 7."""
  return {'encoder': [{'self': random_weights(B, N, S, S, seed=i), 'cross': None} for i in range(2)],
          'decoder': [{'self': random_weights(B, N, T, T, seed=3 + i), 'cross': random_weights(B, N, T, S, seed=5 + i)}
                      for i in range(2)]}


def test_transformer_figures(tmp_path, random_weights, png):
  paths = analysis.figures_for_run(tmp_path, _encoder_decoder(random_weights), kind='transformer', example=1,
                                   prefix='dot_product_', source_tokens=SRC, target_tokens=TGT, dpi=30)
  assert set(paths) == {'encoder_self_heads', 'encoder_self_rollout', 'decoder_self_heads',
                        'decoder_self_rollout', 'decoder_cross_heads', 'alignment', 'bars', 'attention_stats'}
  for name, path in paths.items():
    assert path.name.startswith('dot_product_') and path.exists()
    if path.suffix == '.png':
      png(path)
  rows = paths['attention_stats'].read_text().splitlines()
  assert rows[0].startswith('map,layer,head,entropy') and len(rows) == 1 + 6 * 2


def test_decoder_only_lm_with_a_plain_list_of_layers(tmp_path, random_weights, png):
  causal = np.tril(np.ones((7, 7)))
  layers = [random_weights(1, 4, 7, 7, seed=i) * causal for i in range(3)]
  paths = analysis.figures_for_run(tmp_path, layers, tokens=TGT, dpi=30)
  assert {'attention_heads', 'attention_rollout', 'bars', 'attention_stats'} == set(paths)
  png(paths['attention_heads'])


def test_statistics_of_causal_maps_count_only_the_keys_each_query_may_see(tmp_path):
  # Uniform over the visible keys: every query with a choice (all but the first) is at maximum entropy.
  T = 7
  visible = np.tril(np.ones((T, T)))
  layers = [np.broadcast_to(visible / visible.sum(-1, keepdims=True), (1, 2, T, T))]
  for causal, want in (((), np.log(np.arange(1, T + 1)).sum() / np.log(T) / T), (('attention',), (T - 1) / T)):
    paths = analysis.figures_for_run(tmp_path, layers, tokens=TGT, causal=causal, dpi=30)
    with open(paths['attention_stats']) as f:
      rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row in rows:
      np.testing.assert_allclose(float(row['normalised_entropy']), want, rtol=1e-6)


def test_rnn_figures(tmp_path, random_weights, png):
  paths = analysis.figures_for_run(tmp_path, random_weights(3, 10, 8), kind='rnn', source_tokens=SRC,
                                   target_tokens=TGT, prefix='gru_', dpi=30)
  assert set(paths) == {'alignment', 'bars'}
  for path in paths.values():
    png(path)


def test_captioner_figures(tmp_path, random_weights, png):
  img = np.zeros((2, 36, 36))
  img[:, 2:10, 26:34] = 1.0
  alphas = random_weights(2, 5, 36)
  paths = analysis.figures_for_run(tmp_path, alphas, kind='captioner', tokens=['a', 'seven', 'and', 'a', 'one'],
                                   image=img, grid=6, token_cells=[[-1, 2, -1, -1, 4]] * 2, dpi=30)
  assert set(paths) == {'captions', 'regions'}
  for path in paths.values():
    png(path)


def test_asr_figures(tmp_path, random_weights, png):
  B, N, T, F, V = 2, 2, 5, 12, 9
  tree = {'encoder': [{'self': random_weights(B, N, F, F, seed=i)} for i in range(2)],
          'decoder': [{'self': random_weights(B, N, T, T, seed=3), 'cross': random_weights(B, N, T, F, seed=4)}]}
  paths = analysis.figures_for_run(
      tmp_path, tree, kind='asr', spectrogram=np.random.default_rng(0).normal(size=(B, 4 * F, 16)),
      ctc_logits=np.random.default_rng(1).normal(size=(B, F, V)), token_ids=[[1, 4, 4, 2, 8]] * B,
      vocab=list('_abcdefgh'), prefix='linear_', dpi=30)
  assert {'asr_alignment', 'encoder_self_heads', 'decoder_cross_heads', 'attention_stats'} <= set(paths)
  png(paths['asr_alignment'])


def test_vit_figures_with_rollout_on_the_image(tmp_path, random_weights, png):
  layers = [random_weights(2, 3, 17, 17, seed=i) for i in range(2)]  # class token + 4 x 4 patches
  paths = analysis.figures_for_run(tmp_path, layers, kind='vit', image=np.random.default_rng(0).random((2, 32, 32, 3)),
                                   dpi=30)
  assert 'vit_rollout' in paths
  png(paths['vit_rollout'])


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(kind='bert'), r"unknown kind 'bert'"),
    (dict(source_tokens=SRC + ['x', 'y', 'z'], target_tokens=TGT), r'9 labels.*8 query.*\(2, 8, 8\)'),
    (dict(example=5), r'example=5.*batch 2'),
    (dict(kind='captioner'), r'needs image'),
    (dict(kind='asr'), r'needs spectrogram'),
    (dict(query=12, source_tokens=SRC, target_tokens=TGT), r'query=12.*7 query positions'),
])
def test_figures_for_run_bad_inputs(tmp_path, random_weights, kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    analysis.figures_for_run(tmp_path, _encoder_decoder(random_weights), **kwargs)


@pytest.mark.parametrize('name', sorted(attention.VARIANTS))
def test_every_variant_can_be_plotted_through_its_weights(tmp_path, name, png):
  """Approximate variants reconstruct their implied weights; the same plots and statistics apply."""
  B, T, N, H = 1, 8, 2, 4
  kq, kk, kv, kp = jax.random.split(jax.random.PRNGKey(0), 4)
  q, k, v = (jax.random.normal(x, (B, T, N, H)) for x in (kq, kk, kv))
  fn = attention.get(name).fn
  kwargs = variant_kwargs(name, q, k, v, key=kp)
  # One compilation instead of one per eager op keeps the sweep fast on CPU. Every variant returns weights:
  # one that stops doing so fails here.
  _, w = jax.jit(lambda q, k, v: fn(q, k, v, return_weights=True, **kwargs))(q, k, v)
  w = np.asarray(w)
  assert w.shape == (B, N, T, T)
  path = tmp_path / f'{name}.png'
  fig = analysis.attention_grid(w[0], x_labels=list('abcdefgh'), y_labels=list('abcdefgh'), title=name, dpi=30,
                                path=path)
  png(path, fig=fig)
  analysis.bar_chart(w[0, 0, -1], dpi=30, path=tmp_path / f'{name}_bars.png')
  png(tmp_path / f'{name}_bars.png')
  stats = analysis.head_statistics(w)
  assert all(np.all(np.isfinite(x)) for x in stats.values())
  np.testing.assert_allclose(analysis.attention_rollout([w, w]).sum(-1), 1.0, atol=1e-9)
