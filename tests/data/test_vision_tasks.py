"""digits and digit_scenes: images, labels, and captions that match the image."""

import numpy as np
import pytest

from attention_research.data.builders import digit_scenes
from attention_research.data.builders.digits import sklearn_digits


def test_digits_are_sklearn_images(build):
  ex = build('digits').examples['train']
  images, labels = sklearn_digits()
  for image, label, index in list(zip(ex['image'], ex['label'], ex['index']))[:50]:
    assert np.array_equal(image[..., 0], images[index])
    assert label == labels[index]
  counts = np.bincount(ex['label'], minlength=10)
  assert counts.min() >= 0.5 * counts.max(), 'splits are class-balanced'


def _named_digits(caption, word_cells):
  """{cell: digit} for every digit word of a caption, checking each cell names one digit."""
  named = {}
  for word, cell in zip(caption.split(), word_cells):
    if word.isdigit():
      assert cell >= 0
      assert named.setdefault(int(cell), int(word)) == int(word)
    else:
      assert cell == -1
  return named


def test_captions_mention_exactly_the_digits_in_the_image(build):
  for split, ex in build('digit_scenes').examples.items():
    for image, caption, cells_of_words, labels, cells in zip(ex['image'], ex['caption'], ex['caption_cells'],
                                                              ex['digit_labels'], ex['digit_cells']):
      present = {int(c): int(d) for c, d in zip(cells, labels) if c >= 0}
      assert 2 <= len(present) <= 4
      assert _named_digits(caption, cells_of_words) == present
      # Ink lies only in the cells that hold a digit.
      for cell in range(9):
        y, x = digit_scenes.cell_origin(cell)
        patch = image[y:y + 21, x:x + 21, 0]
        assert (patch.max() > 0) == (cell in present), (split, caption, cell)


def test_caption_relations_follow_the_grid():
  text, word_cells = digit_scenes.caption([3, 7, 1], [0, 2, 5])
  assert text == 'a 3 left of a 7 . a 1 below the 7'
  assert word_cells == [-1, 0, -1, -1, -1, 2, -1, -1, 5, -1, -1, 2]
  assert digit_scenes.relation(0, 8) == ['above', 'left', 'of']
  assert digit_scenes.relation(7, 1) == ['below']


def test_token_cells_line_up_with_caption_ids(build):
  task = build('digit_scenes').task
  batch = next(task.batches('validation', batch_size=16))
  tokenizer = task.tokenizers['caption']
  for ids, token_cells, labels, cells in zip(batch['caption'], batch['token_cells'], batch['digit_labels'],
                                             batch['digit_cells']):
    present = dict(zip(cells.tolist(), labels.tolist()))
    for i, c in zip(ids, token_cells):
      word = tokenizer.id_to_token(int(i))
      if word.isdigit():
        assert present[int(c)] == int(word)
      else:
        assert c == -1
    assert (labels >= 0).sum() == (cells >= 0).sum()


def test_more_digit_images_than_exist_is_a_clear_error(tmp_path):
  from attention_research import data
  with pytest.raises(ValueError, match='scikit-learn has 1797'):
    data.load_task('digits', size='small', data_dir=str(tmp_path), num_train=1700, num_validation=100)
