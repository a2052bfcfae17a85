import matplotlib.image
import numpy as np
from absl import flags
from absl.testing import flagsaver

from experiments import demo


def test_demo_main_prints_saves_and_its_weights_sum_to_one_over_positions(tmp_path, capsys, monkeypatch):
  results = []
  run = demo.run
  monkeypatch.setattr(demo, 'run', lambda *a, **k: results.append(run(*a, **k)))
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  with flagsaver.flagsaver(out_dir=str(tmp_path), seed=1):
    demo.main(['demo'])
  (r,) = results

  printed = capsys.readouterr().out
  assert 'ONE number per source position' in printed and 'softmax(e) over the S positions' in printed
  for name in ('bars.png', 'heatmap.png'):
    img = matplotlib.image.imread(str(tmp_path / name))
    assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 800 and img[..., :3].std() > 0.01

  S, T = len(demo.SOURCE), len(demo.TARGET)
  for key in ('additive', 'dot_product'):
    assert r[key].shape == (S,)
    np.testing.assert_allclose(r[key].sum(), 1.0, atol=1e-5)  # over the sequence positions
  for key in ('additive_all', 'dot_product_all'):
    assert r[key].shape == (T, S)
    np.testing.assert_allclose(r[key].sum(-1), 1.0, atol=1e-5)
  assert r['scores_additive'].shape == (S,)  # one score per position, not one per hidden unit
  assert r['context_additive'].shape == (demo.D,)
  # The decoder states are built near their aligned source words; dot-product attention finds them.
  np.testing.assert_array_equal(r['dot_product_all'].argmax(-1), demo.ALIGNED)
