import numpy as np
import pytest

from attention_research.analysis import statistics as st


@pytest.mark.parametrize('S', [1, 2, 7, 64])
def test_entropy_of_uniform_is_log_S(S):
  w = np.full((3, 4, S), 1.0 / S)
  np.testing.assert_allclose(st.entropy(w), np.log(S), atol=1e-12)
  np.testing.assert_allclose(st.max_entropy(w), np.log(S), atol=1e-12)
  np.testing.assert_allclose(st.normalised_entropy(w), 1.0 if S > 1 else 0.0, atol=1e-12)


def test_entropy_of_one_hot_is_zero():
  w = np.eye(5)[None].repeat(2, 0)  # [2, 5, 5]
  np.testing.assert_array_equal(st.entropy(w), 0.0)
  np.testing.assert_array_equal(st.normalised_entropy(w), 0.0)


def test_entropy_accepts_jax_arrays_and_matches_formula(random_weights):
  import jax.numpy as jnp
  w = random_weights(2, 3, 4, 6)
  h = st.entropy(jnp.asarray(w, jnp.float32))
  np.testing.assert_allclose(h, -(w * np.log(w)).sum(-1), rtol=1e-5)


def test_masked_and_fully_masked_rows():
  causal = np.tril(np.ones((4, 4), bool))
  w = causal / causal.sum(-1, keepdims=True)  # uniform over the visible keys
  w[2] = 0.0  # a fully masked query (e.g. padding): every weight 0
  h, nh = st.entropy(w), st.normalised_entropy(w, mask=causal)
  assert np.all(np.isfinite(h)) and np.all(np.isfinite(nh))
  np.testing.assert_allclose(h, [0.0, np.log(2), 0.0, np.log(4)], atol=1e-12)
  # Uniform over what the query may see saturates the normalised entropy; one visible key gives 0.
  np.testing.assert_allclose(nh, [0.0, 1.0, 0.0, 1.0], atol=1e-12)
  np.testing.assert_allclose(st.mean_attention_distance(w)[2], 0.0)
  stats = st.head_statistics(w[None], mask=causal)
  assert stats['queries'][0] == 3  # the empty row is left out of the head's average
  np.testing.assert_allclose(stats['entropy'][0], (np.log(2) + np.log(4)) / 3)


def test_all_rows_masked_gives_zeros_not_nan():
  stats = st.head_statistics(np.zeros((2, 3, 4, 5)))
  for k, v in stats.items():
    np.testing.assert_array_equal(v, 0.0, err_msg=k)


def test_mean_attention_distance():
  S = 5
  w = np.zeros((S, S))
  w[np.arange(S), np.maximum(np.arange(S) - 2, 0)] = 1.0  # each query looks two back (clamped)
  np.testing.assert_allclose(st.mean_attention_distance(w), [0, 1, 2, 2, 2])
  np.testing.assert_allclose(st.mean_attention_distance(np.full((1, 3), 1 / 3), query_positions=[0]), 1.0)
  # Decoding: the single query is the last of S keys by default.
  np.testing.assert_allclose(st.mean_attention_distance(np.eye(1, 4, 0)), 3.0)
  # 2-D patch coordinates: euclidean distance.
  pos = np.array([[0, 0], [3, 4]])
  np.testing.assert_allclose(st.mean_attention_distance(np.array([[0.0, 1.0], [1.0, 0.0]]), pos, pos), [5, 5])


def test_rollout_rows_sum_to_one(random_weights):
  layers = [random_weights(2, 4, 6, 6, seed=i) for i in range(3)]  # [B, N, T, T] per layer
  layers[1][:, :, 3] = 0.0  # a fully masked query row in one layer
  for residual in (True, False):
    for fusion in ('mean', 'max', 'min'):
      r = st.attention_rollout(layers, residual=residual, head_fusion=fusion)
      assert r.shape == (2, 6, 6)
      np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-12)
      assert np.all(r >= 0)
  stacked = st.attention_rollout(np.stack(layers))
  np.testing.assert_allclose(stacked, st.attention_rollout(layers))


def test_rollout_matches_the_paper_formula(random_weights):
  w1, w2 = random_weights(3, 4, 4, seed=1), random_weights(3, 4, 4, seed=2)
  a1, a2 = 0.5 * w1.mean(0) + 0.5 * np.eye(4), 0.5 * w2.mean(0) + 0.5 * np.eye(4)
  np.testing.assert_allclose(st.attention_rollout([w1, w2]), a2 @ a1, atol=1e-12)
  np.testing.assert_allclose(st.attention_rollout([w1], residual=False), w1.mean(0), atol=1e-12)
  identity = np.eye(4)[None].repeat(3, 0)
  np.testing.assert_allclose(st.attention_rollout([identity] * 4), np.eye(4))


def test_rollout_of_a_per_layer_dict_tree(random_weights):
  tree = [{'self': random_weights(1, 2, 5, 5, seed=i), 'cross': None} for i in range(2)]
  np.testing.assert_allclose(st.attention_rollout(tree).sum(-1), 1.0)


def test_table_and_summary_rows(random_weights):
  tree = {'encoder': [{'self': random_weights(2, 4, 5, 5, seed=i)} for i in range(2)],
          'decoder': [{'self': random_weights(2, 4, 3, 3, seed=5), 'cross': random_weights(2, 4, 3, 5, seed=6)}]}
  rows = st.table_rows(tree, variant='linear', seed=0)
  assert len(rows) == (2 + 1 + 1) * 4
  assert list(rows[0])[:5] == ['variant', 'seed', 'map', 'layer', 'head']
  assert {r['map'] for r in rows} == {'encoder/self', 'decoder/self', 'decoder/cross'}
  assert {r['layer'] for r in rows if r['map'] == 'encoder/self'} == {0, 1}
  for r in rows:
    assert 0.0 <= r['normalised_entropy'] <= 1.0 and r['entropy'] <= r['max_entropy'] + 1e-12
  summary = st.summary_row(tree, variant='linear')
  assert summary['variant'] == 'linear' and summary['attn_heads'] == 16
  np.testing.assert_allclose(summary['attn_entropy'], np.mean([r['entropy'] for r in rows]))
  uniform = st.summary_row(np.full((1, 2, 3, 4), 0.25))
  assert uniform['attn_saturated_heads'] == 1.0


def test_negative_reconstructed_weights_are_clipped():
  w = np.array([[0.7, 0.5, -0.2]])  # a low-rank reconstruction can be signed
  p, valid = st.distribution(w)
  np.testing.assert_allclose(p, [[0.7 / 1.2, 0.5 / 1.2, 0.0]])
  assert valid.all() and np.isfinite(st.entropy(w)).all()


@pytest.mark.parametrize('call, pattern', [
    (lambda: st.entropy(np.ones(4)), r'rank >= 2.*\(4,\)'),
    (lambda: st.head_statistics(np.ones((4, 4))), r'rank >= 3.*\(4, 4\)'),
    (lambda: st.attention_rollout([np.ones((2, 3, 4))]), r'\[\.\.\., N, T, T\].*\(2, 3, 4\)'),
    (lambda: st.attention_rollout([np.ones((2, 3, 3)), np.ones((2, 4, 4))]), r'\(2, 4, 4\).*\(2, 3, 3\)'),
    (lambda: st.normalised_entropy(np.ones((3, 4)), mask=np.ones((2, 4), bool)), r'\(2, 4\).*\(3, 4\)'),
    (lambda: st.normalised_entropy(np.ones((3, 4)), mask=np.ones((3, 4))), r'boolean'),
    (lambda: st.mean_attention_distance(np.ones((3, 4)), query_positions=np.arange(5)), r'\(5, 1\).*3 rows'),
    (lambda: st.entropy(np.full((2, 2), np.nan)), r'NaN'),
    (lambda: st.attention_rollout([np.ones((1, 2, 2))], head_fusion='median'), r'median'),
])
def test_bad_inputs_raise_value_error_naming_shapes(call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()
