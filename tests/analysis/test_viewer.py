"""The interactive viewer: the data it embeds, and the page rendered in headless Chromium (console, heads, pixels)."""

import io
import json
import re
import shutil

import numpy as np
import pytest

from attention_research.analysis import viewer

SRC = ['the', 'cat', 'sat', 'on', 'the', 'mat']
TGT = ['le', 'chat', 'était', 'assis', '</s>']


def _weights(*shape, seed=0):
  w = np.random.default_rng(seed).random(shape) ** 4  # peaked rows, so heads differ visibly
  return w / w.sum(-1, keepdims=True)


def _encoder_decoder(B=2, N=2, S=8, T=7):
  return {'encoder': [{'self': _weights(B, N, S, S, seed=1), 'cross': None}],
          'decoder': [{'self': _weights(B, N, T, T, seed=2), 'cross': _weights(B, N, T, S, seed=3)}]}


def _embedded(html: str) -> dict:
  payload = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S).group(1)
  return json.loads(payload.replace('<\\/', '</'))


def test_page_embeds_the_example_cropped_to_its_labels(tmp_path):
  tree = _encoder_decoder()
  path = viewer.write_viewer(tmp_path / 'v.html', tree, source_tokens=[SRC, SRC], target_tokens=[TGT, TGT], example=1)
  data = _embedded(path.read_text())
  by_name = {m['name']: m for m in data['maps']}
  assert set(by_name) == {'encoder/layer_0/self', 'decoder/layer_0/self', 'decoder/layer_0/cross'}
  cross = by_name['decoder/layer_0/cross']
  assert cross['queries'] == TGT and cross['keys'] == SRC and cross['cross']
  np.testing.assert_allclose(cross['heads'], tree['decoder'][0]['cross'][1, :, :5, :6], atol=1e-5)
  assert by_name['encoder/layer_0/self']['queries'] == SRC and not by_name['encoder/layer_0/self']['cross']
  assert not list(tmp_path.glob('*.tmp'))


def test_labels_cannot_close_the_data_script(tmp_path):
  w = _weights(1, 1, 2, 2)
  html = viewer.write_viewer(tmp_path / 'v.html', w, tokens=[['</script><b>x', 'y']]).read_text()
  assert html.count('</script>') == 2  # the data's and the page script's
  assert _embedded(html)['maps'][0]['queries'][0] == '</script><b>x'


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(kind='bert'), r"unknown kind 'bert'"),
    (dict(source_tokens=SRC + ['a', 'b', 'c'], target_tokens=TGT), r'9 labels.*8'),
    (dict(example=4), r'example=4.*batch 2'),
])
def test_bad_input_raises(tmp_path, kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    viewer.write_viewer(tmp_path / 'v.html', _encoder_decoder(), **kwargs)
  assert not (tmp_path / 'v.html').exists()


def test_too_many_weights_raise(tmp_path, monkeypatch):
  monkeypatch.setattr(viewer, 'MAX_VALUES', 10)
  with pytest.raises(ValueError, match='too many'):
    viewer.write_viewer(tmp_path / 'v.html', _weights(1, 1, 4, 4))


# ---- in a browser ---------------------------------------------------------------------------------------------

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--force-device-scale-factor=1']


@pytest.fixture(scope='module')
def browser():
  playwright_api = pytest.importorskip('playwright.sync_api')
  if CHROMIUM is None:
    pytest.skip('no chromium on this machine (.ci/run installs Debian\'s chromium package)')
  with playwright_api.sync_playwright() as p:
    b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield b
    b.close()


def _open(browser, path):
  page = browser.new_page(viewport={'width': 1400, 'height': 1000}, device_scale_factor=1)
  errors = []
  page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
  page.on('pageerror', lambda e: errors.append(str(e)))
  page.goto(path.as_uri())
  page.wait_for_selector('body[data-ready="true"]')
  return page, errors


def _cell_grays(page, T, S):
  """The gray level at the centre of every heatmap cell, read from a screenshot of the canvas."""
  from matplotlib import image as mpimg
  png = mpimg.imread(io.BytesIO(page.locator('#heatmap').screenshot()), format='png')
  cell = page.evaluate('window.viewerState.cell')
  # A canvas at a fractional page offset can add one row or column of pixels to the element's screenshot.
  assert 0 <= png.shape[0] - T * cell <= 1 and 0 <= png.shape[1] - S * cell <= 1, png.shape
  centre = (np.arange(T) * cell + cell // 2, np.arange(S) * cell + cell // 2)
  return np.round(png[np.ix_(*centre)][..., 0] * 255)


def test_page_renders_switches_heads_and_draws_the_weights(browser, tmp_path):
  tree = _encoder_decoder()
  path = viewer.write_viewer(tmp_path / 'v.html', tree, source_tokens=SRC, target_tokens=TGT)
  page, errors = _open(browser, path)
  cross_index = [m['name'] for m in _embedded(path.read_text())['maps']].index('decoder/layer_0/cross')
  page.select_option('#map', str(cross_index))
  for head in ('0', '1'):
    page.select_option('#head', head)
    w = tree['decoder'][0]['cross'][0, int(head), :5, :6]
    want = np.round(255 * (1 - np.round(w, 5) / np.round(w, 5).max()))
    np.testing.assert_allclose(_cell_grays(page, 5, 6), want, atol=2)
  assert page.locator('#lines line').count() == 5 * 6
  page.hover('#lines text >> nth=0')  # the first target word: only its lines stay visible
  hidden = page.evaluate("[...document.querySelectorAll('#lines line')].filter(l => l.style.strokeOpacity === '0.02')"
                         '.length')
  assert hidden == 5 * 6 - 6
  assert errors == []
  page.close()


def test_image_and_spectrogram_overlays_render(browser, tmp_path):
  vit = [_weights(1, 2, 17, 17, seed=i) for i in range(2)]  # class token + 4 x 4 patches
  image = np.random.default_rng(0).random((1, 32, 32, 3))
  asr = {'decoder': [{'self': _weights(1, 2, 3, 3), 'cross': _weights(1, 2, 3, 12, seed=5)}]}
  spec = np.random.default_rng(1).normal(size=(1, 48, 16))
  for name, w, kwargs in (('vit', vit, dict(kind='vit', image=image)),
                          ('asr', asr, dict(kind='asr', spectrogram=spec, token_ids=[[1, 2, 3]], vocab='_abc'))):
    path = viewer.write_viewer(tmp_path / f'{name}.html', w, **kwargs)
    page, errors = _open(browser, path)
    if name == 'asr':
      page.select_option('#map', str([m['cross'] for m in _embedded(path.read_text())['maps']].index(True)))
    page.select_option('#query', '1')
    assert page.locator('#overlay-panel').is_visible(), name
    png = page.locator('#overlay').screenshot()
    assert len(png) > 1000 and errors == [], (name, errors)
    page.close()

