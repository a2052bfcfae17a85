"""Per-device memory of ring attention as the sequence is split over more devices (compile only, no timing).

    rows = ring_memory.measure(T=16384, device_counts=(1, 2, 4, 8))

Each row is one device count P: XLA's temporary buffer size of the compiled forward+backward pass of
`attention.ring` (causal, the zigzag order) inside shard_map over P simulated CPU devices, per device, beside
the same for `flash` on one device. Runs in a subprocess, since the number of simulated devices is fixed when
JAX starts. Temporary memory, the scores and the saved blocks, should fall about as 1/P: each device keeps a
[T/P, T/P] score block per ring step instead of T-long rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent('''
    import functools, json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from attention_research import attention
    T, B, N, H = (int(x) for x in sys.argv[1:5])
    counts = [int(x) for x in sys.argv[5].split(',')]
    rows = []
    def memory(fn, *args):
      m = jax.jit(fn).lower(*args).compile().memory_analysis()
      return int(m.temp_size_in_bytes), int(m.argument_size_in_bytes)
    x = jax.ShapeDtypeStruct((B, T, N, H), jnp.float32)
    def flash_loss(q, k, v):
      return attention.flash(q, k, v, is_causal=True).sum()
    temp, args = memory(jax.grad(flash_loss, argnums=(0, 1, 2)), x, x, x)
    rows.append(dict(case='flash (one device)', P=1, temp_bytes=temp, argument_bytes=args))
    for p in counts:
      mesh = Mesh(np.asarray(jax.devices()[:p]), ('sequence',))
      seq, row = P(None, 'sequence'), P('sequence')
      order = jnp.asarray(attention.ring_zigzag_order(T, p))
      ring = jax.shard_map(lambda q, k, v, pos: attention.ring(q, k, v, axis_name='sequence', is_causal=True,
                                                               q_positions=pos, k_positions=pos),
                           mesh=mesh, in_specs=(seq, seq, seq, row), out_specs=seq)
      def ring_loss(q, k, v):
        return ring(q, k, v, order).sum()
      sharded = jax.ShapeDtypeStruct((B, T, N, H), jnp.float32, sharding=NamedSharding(mesh, seq))
      temp, args = memory(jax.grad(ring_loss, argnums=(0, 1, 2)), sharded, sharded, sharded)
      rows.append(dict(case='ring', P=p, temp_bytes=temp, argument_bytes=args))
    print('RESULT' + json.dumps(rows))
''')


def measure(T: int = 16384, device_counts=(1, 2, 4, 8), *, B: int = 1, N: int = 8, H: int = 64,
            timeout_s: float = 900.0) -> list[dict]:
  """[{'case', 'P', 'temp_bytes', 'argument_bytes'}]: flash on one device, then ring on each device count."""
  counts = sorted({int(p) for p in device_counts})
  if not counts or counts[0] < 1 or any(T % (2 * p) for p in counts):
    raise ValueError(f'device_counts must be positive and T={T} divisible by 2 * each of them; got {device_counts}.')
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={counts[-1]}', JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get('PYTHONPATH')])))
  proc = subprocess.run([sys.executable, '-c', _SCRIPT, str(T), str(B), str(N), str(H), ','.join(map(str, counts))],
                        env=env, capture_output=True, text=True, timeout=timeout_s)
  if proc.returncode != 0:
    raise RuntimeError(f'the ring memory measurement failed:\n{proc.stderr[-3000:]}')
  return json.loads(proc.stdout.split('RESULT')[-1])


def table(rows: list[dict]) -> str:
  """A markdown table with each row's temporary memory per device and its ratio to ring on one device."""
  base = next((r['temp_bytes'] for r in rows if r['case'] == 'ring' and r['P'] == 1), None)
  lines = ['| case | devices P | temporary MiB per device | vs ring on 1 device |', '|---|---:|---:|---:|']
  for r in rows:
    ratio = f"{r['temp_bytes'] / base:.3f}" if base else ''
    lines.append(f"| {r['case']} | {r['P']} | {r['temp_bytes'] / 2**20:.1f} | {ratio} |")
  return '\n'.join(lines)


if __name__ == '__main__':
  T = int(sys.argv[1]) if len(sys.argv) > 1 else 16384
  print(table(measure(T)))
