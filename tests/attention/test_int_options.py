"""Static sizes (windows, block sizes, feature counts) must be integers of the right sign: no silent truncation."""

import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from attention_research.attention import _checks
from attention_research.attention.linformer import init_params as linformer_params
from attention_research.attention.performer import draw_features

Q = jnp.ones((1, 8, 2, 4))


@pytest.mark.parametrize('call, bad', [
    (lambda: attention.local(Q, Q, Q, window=(2.5, 1)), '2.5'),
    (lambda: attention.local(Q, Q, Q, window=1.0), '1.0'),
    (lambda: attention.local(Q, Q, Q, window=(2, -1)), '-1'),
    (lambda: attention.local(Q, Q, Q, window=(True, 1)), 'True'),
    (lambda: attention.local(Q, Q, Q, window=2, block_size=3.5), '3.5'),
    (lambda: attention.local(Q, Q, Q, window=2, block_size=0, return_weights=True), 'block_size'),
    (lambda: attention.flash(Q, Q, Q, block_q=4.5), '4.5'),
    (lambda: attention.flash(Q, Q, Q, block_k=-2), '-2'),
    (lambda: attention.flash(Q, Q, Q, block_k=0, return_weights=True), 'block_k'),
    (lambda: attention.block_sparse(Q, Q, Q, block_size=2.5), '2.5'),
    (lambda: attention.block_sparse(Q, Q, Q, block_size=2, num_random_blocks=1.5), 'num_random_blocks.*1.5'),
    (lambda: attention.block_sparse(Q, Q, Q, block_size=2, num_global_blocks=-1), 'num_global_blocks.*-1'),
    (lambda: attention.performer(Q, Q, Q, num_features=16.5), 'num_features.*16.5'),
    (lambda: attention.performer(Q, Q, Q, num_features=0), 'num_features.*0'),
    (lambda: attention.performer(Q, Q, Q, chunk_size=2.5), 'chunk_size.*2.5'),
    (lambda: attention.linear(Q, Q, Q, chunk_size=4.0), 'chunk_size.*4.0'),
    (lambda: attention.linear(Q, Q, Q, chunk_size=-3, is_causal=True), 'chunk_size.*-3'),
    (lambda: draw_features(None, 8, 4.5), 'head_size.*4.5'),
    (lambda: linformer_params(None, 8, 2.5), 'rank.*2.5'),
])
def test_non_integer_or_negative_sizes_raise_naming_the_value(call, bad):
  with pytest.raises(ValueError, match=bad):
    call()


def test_check_int_accepts_numpy_integers_and_refuses_the_rest():
  assert _checks.check_int('n', np.int64(3)) == 3 and type(_checks.check_int('n', np.int32(3))) is int
  assert _checks.check_int('n', 0, minimum=0) == 0
  for bad in (0, -1, 2.0, 2.5, True, '3', None, np.float32(3)):
    with pytest.raises(ValueError, match='n must be an integer >= 1'):
      _checks.check_int('n', bad)


def test_numpy_integer_sizes_still_work():
  out = attention.local(Q, Q, Q, window=(np.int64(2), 1), block_size=np.int32(4))
  np.testing.assert_allclose(out, attention.local(Q, Q, Q, window=(2, 1), block_size=4), atol=1e-6)
  attention.performer(Q, Q, Q, num_features=np.int64(8))
