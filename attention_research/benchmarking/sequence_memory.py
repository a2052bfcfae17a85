"""Per-device memory of one training step with the sequence split over a 'sequence' mesh axis (compile only).

    rows = sequence_memory.measure(T=8192, device_counts=(1, 2, 4))

Each row is one device count P (config.train.sequence=P, one data replica): XLA's temporary buffer size, per
device, of the compiled train step (forward, backward and AdamW update) of a small causal decoder LM on one
sequence of T tokens, the mesh and batch placement those of the training loop (training.sharding) and attention
run as attention.ring inside the model. Runs in a subprocess, since the number of simulated devices is fixed when
JAX starts. No timing: simulated devices share the same cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent('''
    import json, sys
    import jax, jax.numpy as jnp, optax
    from flax import nnx
    from attention_research.models.transformer import DecoderLM, TransformerConfig
    from attention_research.training import step as step_lib
    from attention_research.training.objectives import base
    from attention_research.training.sharding import DataParallel
    T, B, D, L, V = (int(x) for x in sys.argv[1:6])
    counts = [int(x) for x in sys.argv[6].split(',')]
    cfg = TransformerConfig(vocab_size=V, d_model=D, num_heads=D // 64, num_decoder_layers=L, max_length=T,
                            positional='rope', attention='dot_product')
    tx = optax.adamw(1e-3)
    graphdef, rng_state, state = step_lib.init_state(DecoderLM(cfg, rngs=nnx.Rngs(0)), tx, 0)

    def loss(model, batch, rng):
      x = batch['inputs']
      return base.cross_entropy(model(x, deterministic=False), x, x > 0)[0], {}

    step = jax.jit(step_lib.make_train_step(loss, graphdef, rng_state, tx))
    rows = []
    for p in counts:
      dp = DataParallel(jax.devices()[:p], sequence=p)
      abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state,
                              dp.state_shardings(state))
      batch = {'inputs': jax.ShapeDtypeStruct((B, T), jnp.int32, sharding=dp.batch_sharding(0, p > 1))}
      with dp.context():
        m = step.lower(abstract, batch).compile().memory_analysis()
      rows.append(dict(P=p, temp_bytes=int(m.temp_size_in_bytes), argument_bytes=int(m.argument_size_in_bytes)))
    print('RESULT' + json.dumps(rows))
''')


def measure(T: int = 8192, device_counts=(1, 2, 4), *, batch_size: int = 1, d_model: int = 256, num_layers: int = 2,
            vocab_size: int = 256, timeout_s: float = 900.0) -> list[dict]:
  """[{'P', 'temp_bytes', 'argument_bytes'}], one row per device count (heads of 64 features)."""
  counts = sorted({int(p) for p in device_counts})
  if not counts or counts[0] < 1 or any(T % p for p in counts) or d_model % 64:
    raise ValueError(f'device_counts must be positive and divide T={T}, and d_model={d_model} a multiple of 64; '
                     f'got device_counts={device_counts}.')
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={counts[-1]}', JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get('PYTHONPATH')])))
  args = [str(x) for x in (T, batch_size, d_model, num_layers, vocab_size)] + [','.join(map(str, counts))]
  proc = subprocess.run([sys.executable, '-c', _SCRIPT, *args], env=env, capture_output=True, text=True,
                        timeout=timeout_s)
  if proc.returncode != 0:
    raise RuntimeError(f'the sequence-axis memory measurement failed:\n{proc.stderr[-3000:]}')
  return json.loads(proc.stdout.split('RESULT')[-1])


def table(rows: list[dict]) -> str:
  """A markdown table of each row's temporary memory per device and its ratio to one device."""
  base = next((r['temp_bytes'] for r in rows if r['P'] == 1), None)
  lines = ['| devices P | temporary MiB per device | vs 1 device | arguments MiB per device |',
           '|---:|---:|---:|---:|']
  for r in rows:
    ratio = f"{r['temp_bytes'] / base:.3f}" if base else ''
    lines.append(f"| {r['P']} | {r['temp_bytes'] / 2**20:.1f} | {ratio} | {r['argument_bytes'] / 2**20:.1f} |")
  return '\n'.join(lines)


if __name__ == '__main__':
  T = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
  print(table(measure(T)))
