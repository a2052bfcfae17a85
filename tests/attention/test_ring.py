"""Ring attention on 8 simulated CPU devices equals flash on the whole sequence, in values and gradients (run in a
subprocess, since the device count is fixed when JAX starts)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from attention_research import attention

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent('''
    import functools, json
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    from attention_research import attention
    jax.config.update('jax_enable_x64', False)
    devices = jax.devices()
    assert len(devices) == 8, devices
    mesh = Mesh(np.asarray(devices), ('sequence',))
    import sys
    B, T, N, K, H, V = 2, 192, 4, 2, 8, 6
    # Query chunks of 16 rows for the 24 local rows: two chunks, the second padded.
    sys.modules['attention_research.attention.ring'].CHUNK_ELEMENTS = 16 * N * (T // 8)
    ks = jax.random.split(jax.random.key(0), 4)
    q = jax.random.normal(ks[0], (B, T, N, H)); k = jax.random.normal(ks[1], (B, T, K, H))
    v = jax.random.normal(ks[2], (B, T, K, V)); w = jax.random.normal(ks[3], (B, T, N, V))
    pad = jnp.arange(T)[None, :] < jnp.array([[T], [T - 43]])  # the second row ends in padding
    seq, row = P(None, 'sequence'), P('sequence')
    out = {}

    # One compiled program per causal flag: op-by-op dispatch of the shard_map and its gradient is several times slower.
    @functools.partial(jax.jit, static_argnums=7)
    def ring_grads(q, k, v, pad, qp, kp, w, causal):
      def loss(q, k, v):
        f = jax.shard_map(lambda q, k, v, m, qp, kp: attention.ring(
            q, k, v, axis_name='sequence', is_causal=causal, mask=m, q_positions=qp, k_positions=kp),
            mesh=mesh, in_specs=(seq, seq, seq, seq, row, row), out_specs=seq)
        o = f(q, k, v, pad, qp, kp)
        return (o * w).sum(), o
      return jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(q, k, v)

    @functools.partial(jax.jit, static_argnums=3)
    def ref_grads(q, k, v, causal):
      def loss(q, k, v):
        o = attention.flash(q, k, v, mask=pad[:, None, None, :], is_causal=causal)
        return (o * w).sum(), o
      return jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(q, k, v)

    for causal in (False, True):
      g_ref, o_ref = ref_grads(q, k, v, causal)
      for layout in ('contiguous', 'zigzag'):
        order = np.arange(T) if layout == 'contiguous' else attention.ring_zigzag_order(T, 8)
        inv = np.argsort(order)
        g_ring, o_ring = ring_grads(q[:, order], k[:, order], v[:, order], pad[:, order], jnp.asarray(order),
                                    jnp.asarray(order), w[:, order], causal)
        g_ring = [g[:, inv] for g in g_ring]
        o_ring = o_ring[:, inv]
        err = [float(jnp.abs(o_ring - o_ref).max())] + [float(jnp.abs(a - b).max()) for a, b in zip(g_ring, g_ref)]
        out[f'{layout}_causal={causal}'] = err
    print('RESULT' + json.dumps(out))
''')


def test_ring_equals_flash_on_eight_devices(tmp_path):
  # The device count joins the suite's XLA flags (tests/conftest.py: the cheapest compile), not replaces them.
  flags = ' '.join(filter(None, [os.environ.get('XLA_FLAGS'), '--xla_force_host_platform_device_count=8']))
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, '-c', SCRIPT], env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split('RESULT')[-1])
  assert set(out) == {f'{layout}_causal={c}' for layout in ('contiguous', 'zigzag') for c in (False, True)}
  for case, errors in out.items():
    assert max(errors) < 2e-5, (case, errors)  # output, dq, dk, dv


def test_zigzag_order_balances_causal_work():
  order = attention.ring_zigzag_order(16, 4)
  assert sorted(order.tolist()) == list(range(16))
  per_device = order.reshape(4, 4)
  np.testing.assert_array_equal(per_device[0], [0, 1, 14, 15])
  work = [(pos + 1).sum() for pos in per_device]  # visible keys of each device's queries under a causal mask
  assert len(set(work)) == 1


@pytest.mark.parametrize('T, P, pattern', [(10, 4, 'divisible by 2 \\* num_devices'), (8, 0, 'num_devices')])
def test_zigzag_order_bad_input(T, P, pattern):
  with pytest.raises(ValueError, match=pattern):
    attention.ring_zigzag_order(T, P)


def test_ring_memory_falls_with_the_device_count():
  from attention_research.benchmarking import ring_memory
  rows = ring_memory.measure(T=512, device_counts=(2, 4), N=2, H=16)
  ring = {r['P']: r['temp_bytes'] for r in rows if r['case'] == 'ring'}
  assert ring[4] < 0.6 * ring[2], rows  # about 1/P or better: each device keeps a [T/P, T/P] block
  assert '| ring | 4 |' in ring_memory.table(rows)
