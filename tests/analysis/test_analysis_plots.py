import numpy as np
import pytest

from attention_research import analysis
from attention_research.analysis import captioning

SRC = ['the', 'cat', 'sat', 'on', 'the', 'mat', '.']
TGT = ['le', 'chat', 'était', 'assis', 'sur', 'le', 'tapis', '.']


def test_heatmap_png_has_the_requested_size(tmp_path, random_weights, png):
  path = tmp_path / 'sub' / 'map.png'
  fig = analysis.heatmap(random_weights(8, 7), x_labels=SRC, y_labels=TGT, title='one head', figsize=(4, 3),
                         dpi=50, path=path)
  png(path, 150, 200)
  assert fig.axes[0].get_title() == 'one head'
  assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == SRC
  assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == TGT
  assert len(fig.axes) == 2  # the map and its colorbar


def test_attention_grid_layers_by_heads(tmp_path, random_weights, png):
  w = random_weights(3, 4, 8, 7)  # [L, N, T, S]
  path = tmp_path / 'grid.png'
  fig = analysis.attention_grid(w, x_labels=SRC, y_labels=TGT, title='grid', dpi=40, path=path)
  png(path, fig=fig)
  titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
  assert titles[0] == 'layer 0 · head 0' and titles[-1] == 'layer 2 · head 3' and len(titles) == 12
  # Token labels on the left column and the bottom row only.
  assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == TGT
  assert all(t.get_text() == '' for t in fig.axes[1].get_yticklabels())
  assert [t.get_text() for t in fig.axes[8].get_xticklabels()] == SRC


def test_attention_grid_accepts_layer_lists_and_limits_heads(tmp_path, random_weights, png):
  layers = [random_weights(6, 5, 5, seed=i) for i in range(2)]
  fig = analysis.attention_grid(layers, max_heads=2, dpi=30, path=tmp_path / 'g.png')
  png(tmp_path / 'g.png')
  assert 'showing 2 of 6 heads' in fig._suptitle.get_text()
  fig = analysis.attention_grid(random_weights(5, 5), dpi=30)  # a single [T, S] map is a 1 x 1 grid
  assert sum(1 for ax in fig.axes if ax.get_title()) == 1


def test_many_tokens_thin_the_tick_labels(random_weights):
  fig = analysis.heatmap(random_weights(200, 200), x_labels=[f't{i}' for i in range(200)], dpi=20)
  assert len(fig.axes[0].get_xticks()) <= 48


def test_bar_chart(tmp_path, png):
  w = np.array([0.1, 0.6, 0.2, 0.05, 0.05, 0.0])
  path = tmp_path / 'bars.png'
  fig = analysis.bar_chart(w, SRC[:6], figsize=(5, 3), dpi=40, path=path)
  png(path, 120, 200)
  assert 'sum = 1.000' in fig.axes[0].get_title()
  heights = [p.get_height() for p in fig.axes[0].patches]
  np.testing.assert_allclose(heights, w)


@pytest.mark.parametrize('heads', ['mean', 1, 'all'])
def test_alignment(tmp_path, random_weights, png, heads):
  path = tmp_path / f'align_{heads}.png'
  fig = analysis.alignment(random_weights(4, 8, 7), SRC, TGT, heads=heads, dpi=40, path=path)
  png(path, fig=fig)


def test_rnn_alignment_is_two_dimensional(tmp_path, random_weights, png):
  fig = analysis.alignment(random_weights(8, 7), SRC, TGT, figsize=(4, 4), dpi=30, path=tmp_path / 'a.png')
  png(tmp_path / 'a.png', 120, 120)
  ax = fig.axes[0]
  assert [t.get_text() for t in ax.get_xticklabels()] == SRC  # source words along the top


def test_upsample_is_smooth_and_keeps_the_peak():
  a = np.zeros((3, 3))
  a[0, 2] = 1.0
  up = analysis.upsample(a, (30, 45))
  assert up.shape == (30, 45)
  r, c = np.unravel_index(up.argmax(), up.shape)
  assert r < 10 and c >= 30  # the peak stays in the top-right region
  assert np.abs(np.diff(up, axis=1)).max() < 0.2  # no blocky jumps
  np.testing.assert_allclose(analysis.upsample(np.ones((2, 2)), 8), 1.0)


def test_overlay_figure(tmp_path, random_weights, png):
  img = np.random.default_rng(0).random((48, 48, 3))
  words = ['a', 'two', 'above', 'a', 'seven']
  path = tmp_path / 'captions.png'
  fig = analysis.overlay_figure(img, random_weights(5, 36), words, grid=(6, 6), cells=3,
                                true_cells=[-1, 2, -1, -1, 7], dpi=40, path=path)
  png(path, fig=fig)
  titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
  assert titles[0] == 'image' and titles[2].startswith('two (max')


def test_peak_in_cell_score_hand_made():
  # A 6 x 6 region grid split into 3 x 3 cells: region (r, c) is in cell (r // 2) * 3 + c // 2.
  alphas = np.full((2, 4, 36), 0.01)
  alphas[0, 0, 0] = 1.0       # region (0, 0) -> cell 0, named cell 0: hit
  alphas[0, 1, 35] = 1.0      # region (5, 5) -> cell 8, named cell 8: hit
  alphas[0, 2, 6 * 2 + 3] = 1.0  # region (2, 3) -> cell 4, named cell 5: miss
  alphas[1, 0, 6 * 4 + 1] = 1.0  # region (4, 1) -> cell 6, named cell 6: hit
  token_cells = np.array([[0, 8, 5, -1], [6, -1, -1, -1]])
  assert analysis.peak_in_cell_score(alphas, token_cells, grid=6) == pytest.approx(3 / 4)
  assert analysis.peak_in_cell_score(alphas[0], token_cells[0], grid=(6, 6)) == pytest.approx(2 / 3)
  assert np.isnan(analysis.peak_in_cell_score(alphas, np.full((2, 4), -1), grid=6))
  # A 4 x 4 grid is not divisible into 3 x 3 cells: regions go to the cell holding their centre.
  np.testing.assert_array_equal(captioning.region_to_cell(np.arange(4), (4, 4), 3), [0, 1, 1, 2])


def _asr_inputs(T=5, F=20, frames=80, V=8, seed=0):
  rng = np.random.default_rng(seed)
  ids = np.array([3, 5, 5, 2, 7][:T])
  ctc = 0.3 * rng.normal(size=(F, V))
  ctc[:, 0] += 3.0
  for k, i in enumerate(ids):
    ctc[2 + 4 * k, i] += 10.0
  att = np.exp(-0.5 * ((np.arange(F)[None] - (2 + 4 * np.arange(T))[:, None]) / 1.5) ** 2)
  att = np.broadcast_to(att / att.sum(-1, keepdims=True), (2, T, F))
  return rng.normal(size=(frames, 40)), att, ids, ctc


def test_ctc_greedy_segments():
  _, _, ids, ctc = _asr_inputs()
  segments = analysis.asr.ctc_greedy_segments(ctc)
  assert [s[0] for s in segments] == list(ids)  # the blank between the two 5s keeps them apart
  assert segments[0][1:] == (2, 3)


def test_asr_figure(tmp_path, png):
  spec, att, ids, ctc = _asr_inputs()
  path = tmp_path / 'asr.png'
  fig = analysis.asr_figure(spec, att, ids, ctc, vocab=list('_abcdefg'), figsize=(6, 5), dpi=40, path=path)
  png(path, 200, 240)
  assert len([ax for ax in fig.axes if ax.get_label() != '<colorbar>']) == 3
  fig = analysis.asr_figure(spec, att[0], ids, dpi=30)  # without CTC: two panels
  assert len([ax for ax in fig.axes if ax.get_label() != '<colorbar>']) == 2


@pytest.mark.parametrize('call, pattern', [
    (lambda w: analysis.heatmap(w[0, 0, 0]), r'rank 2 or 3.*\(7,\)'),
    (lambda w: analysis.heatmap(w[0]), r'one map.*\(4, 8, 7\)'),
    (lambda w: analysis.heatmap(w[0, 0], x_labels=SRC[:5]), r'5 labels.*\(8, 7\).*7 key'),
    (lambda w: analysis.heatmap(w[0, 0], y_labels=SRC), r'7 labels.*\(8, 7\).*8 query'),
    (lambda w: analysis.attention_grid(w[None]), r'rank 2, 3 or 4.*\(1, 3, 4, 8, 7\)'),
    (lambda w: analysis.attention_grid([w[0], w[1, :, :5]]), r'\(4, 5, 7\).*\(4, 8, 7\)'),
    (lambda w: analysis.attention_grid(w, layer_names=['a']), r'1 layer_names for 3 layers'),
    (lambda w: analysis.bar_chart(w[0, 0]), r'one query.*\(8, 7\)'),
    (lambda w: analysis.bar_chart(w[0, 0, 0], labels=TGT), r'8 labels.*\(7,\)'),
    (lambda w: analysis.alignment(w[0, 0], TGT, TGT), r'source_tokens has 8 labels.*\(1, 8, 7\)'),
    (lambda w: analysis.alignment(w[0], SRC, TGT, heads=4), r'head index in \[0, 4\).*\(4, 8, 7\)'),
    (lambda w: analysis.alignment(w, SRC, TGT), r'rank 2 or 3.*\(3, 4, 8, 7\)'),
    (lambda w: analysis.overlay_figure(np.zeros((8, 8)), w[0, 0], TGT), r'7 regions.*square grid'),
    (lambda w: analysis.overlay_figure(np.zeros((8, 8)), w[0, 0], TGT, grid=(2, 3)), r'6 regions.*R=7'),
    (lambda w: analysis.overlay_figure(np.zeros((8, 8, 2)), w[0, 0], TGT, grid=7), r'\(8, 8, 2\)'),
    (lambda w: analysis.peak_in_cell_score(w[0], np.zeros((4, 7), int), grid=(1, 7)), r'\(4, 7\).*\(4, 8, 7\)'),
    (lambda w: analysis.peak_in_cell_score(w[0], np.full((4, 8), 9), grid=(1, 7)), r'-1 or in \[0, 9\)'),
    (lambda w: analysis.asr_figure(np.zeros((40, 8)), w[0], [1, 2]), r'8 integer ids.*\(4, 8, 7\)'),
    (lambda w: analysis.asr_figure(np.zeros((4, 8)), w[0, 0], np.arange(8)), r'4 frames.*7 encoder frames'),
    (lambda w: analysis.asr_figure(np.zeros((40, 8)), w[0, 0], np.arange(8), np.zeros((6, 9))),
     r'\(6, 9\).*F=7'),
    (lambda w: analysis.asr_figure(np.zeros((40, 8)), w[0, 0], np.arange(8), np.zeros((7, 5))), r'V=5'),
])
def test_bad_inputs_raise_value_error_naming_shapes(random_weights, call, pattern):
  w = random_weights(3, 4, 8, 7)
  with pytest.raises(ValueError, match=pattern):
    call(w)
