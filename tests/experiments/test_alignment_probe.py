"""experiments.alignment_probe: its argmax links with a row shift and its landing categories, hand-computed."""

import numpy as np

from experiments import alignment_probe as probe


def test_row_shift_and_landing_categories_on_a_hand_made_map():
  # Source: tag, w1, ';', w3, w4, then EOS (S = 5); 6 target rows (the last is the EOS row).
  peaks = [0, 1, 2, 5, 4, 3]  # row t's argmax: tag, gold, function piece, EOS, gold's neighbour; EOS row
  w_TS = np.full((6, 6), 0.04)
  w_TS[np.arange(6), peaks] = 0.8
  gold = frozenset({(1, 1), (3, 3), (4, 3)})
  assert probe.argmax_links(w_TS, 5, 0, 5) == {(0, 0), (1, 1), (2, 2), (3, 0), (4, 4)}  # EOS column left out
  assert probe.argmax_links(w_TS, 5, 1, 5) == {(0, 1), (1, 1), (2, 2), (3, 1), (4, 4)}  # tag left out too
  assert probe.argmax_links(w_TS, 5, 0, 5, shift=1) == {(0, 1), (1, 2), (2, 0), (3, 4), (4, 3)}  # row t + 1
  assert probe.argmax_links(w_TS, 5, 0, 5, shift=-1) == {(1, 0), (2, 1), (3, 2), (4, 0)}  # no row -1
  counts, gold_mass, uniform_mass, linked = probe.landing(w_TS, 5, 5, gold, [False, False, True, False, False, False])
  assert counts == dict(tag=1, eos=1, gold=1, gold_source_pm1=1, gold_of_previous=0, gold_of_next=0, function=1,
                        other=0)
  assert np.isclose(gold_mass, 0.8 + 0.04 + 0.04) and np.isclose(uniform_mass, 3 / 6) and linked == 3
