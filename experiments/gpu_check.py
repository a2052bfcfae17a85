r"""On a GPU: which path each `flash` call takes, and that every path equals the reference (values and gradients).

  python -m experiments.gpu_check --out_dir=gpu_results          # then the bf16 speed run:
  python -m experiments.benchmark --dtype=bfloat16 --lengths=4096,16384 --head_dim=128 \
      --workloads=dense,gqa,decode --variants=flash,dot_product --out_dir=gpu_results

Each case runs `flash` on bfloat16 inputs and compares it with the float32 reference of the same (rounded)
inputs, output and gradients of q, k, v, within bfloat16's rounding (4 x 2^-8 relative, as the CPU tests
allow). The path is read from the compiled program: a cuDNN fused-attention custom call, or the blocked kernel.
On a CPU it runs too (every path is then the blocked kernel or the decoding form), which is how the tests keep
it working; --allow_cpu says that is intended.
"""

import json
import os

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from attention_research import attention

_OUT_DIR = flags.DEFINE_string('out_dir', 'gpu_results', 'Where gpu_check.json goes.')
_LENGTH = flags.DEFINE_integer('length', 1024, 'T = S of the cases (decode: S).', lower_bound=8)
_HEAD_DIM = flags.DEFINE_integer('head_dim', 128, 'Head size.', lower_bound=8)
_ALLOW_CPU = flags.DEFINE_bool('allow_cpu', False, 'Run on a CPU backend instead of refusing.')

RTOL = ATOL = 4 * 2.0**-8


def cases(L, H):
  """name -> (T, K, keyword arguments of flash)."""
  rng = np.random.default_rng(0)
  mask = jnp.asarray(rng.random((1, 1, L, L)) < 0.8).at[..., 0].set(True)
  bias = jnp.asarray(rng.standard_normal((1, 8, L, L)), jnp.bfloat16)
  return {
      'plain': (L, 8, {}),
      'causal': (L, 8, {'is_causal': True}),
      'grouped K=2': (L, 2, {}),
      'bias': (L, 8, {'bias': bias}),
      'boolean mask': (L, 8, {'mask': mask}),
      'soft cap 30': (L, 8, {'logit_soft_cap': 30.0}),
      'sinks': (L, 8, {'sinks': jnp.zeros((8,), jnp.float32)}),
      'decode T=1': (1, 8, {}),
  }


def path_of(fn, q, k, v) -> str:
  if 'cudnn' in jax.jit(fn).lower(q, k, v).compile().as_text().lower():
    return 'cudnn'
  return 'decoding form' if q.shape[-3] * q.shape[-2] <= attention._dense.FEW_QUERY_ROWS else 'blocked kernel'


def check(name, T, K, options, L, H) -> dict:
  ks = jax.random.split(jax.random.PRNGKey(1), 4)
  q = jax.random.normal(ks[0], (1, T, 8, H), jnp.bfloat16)
  k = jax.random.normal(ks[1], (1, L, K, H), jnp.bfloat16)
  v = jax.random.normal(ks[2], (1, L, K, H), jnp.bfloat16)
  cot = jax.random.normal(ks[3], (1, T, 8, H), jnp.float32)
  as_f32 = lambda x: x.astype(jnp.float32) if hasattr(x, 'dtype') and x.dtype == jnp.bfloat16 else x
  ref_options = {key: as_f32(x) for key, x in options.items()}

  def run(fn, q, k, v):
    loss = lambda q, k, v: jnp.sum(fn(q, k, v).astype(jnp.float32) * cot)
    return jax.jit(lambda q, k, v: (fn(q, k, v), jax.grad(loss, (0, 1, 2))(q, k, v)))(q, k, v)

  flash = lambda q, k, v: attention.flash(q, k, v, **options)
  reference = lambda q, k, v: attention.reference(q, k, v, **ref_options)
  got = run(flash, q, k, v)
  want = run(reference, *(x.astype(jnp.float32) for x in (q, k, v)))
  errors = [float(jnp.max(jnp.abs(a.astype(jnp.float32) - b) / (ATOL + RTOL * jnp.abs(b))))
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))]
  return {'case': name, 'path': path_of(flash, q, k, v), 'worst error / tolerance': max(errors),
          'ok': max(errors) <= 1.0}


def main(argv):
  del argv
  backend = jax.default_backend()
  if backend != 'gpu' and not _ALLOW_CPU.value:
    raise app.UsageError(f'no GPU: jax runs on {backend!r} (pass --allow_cpu to check the CPU paths).')
  L, H = _LENGTH.value, _HEAD_DIM.value
  results = [check(name, T, K, options, L, H) for name, (T, K, options) in cases(L, H).items()]
  print(f'backend {backend}, devices {jax.devices()}, T=S={L}, H={H}, bfloat16 against the float32 reference')
  for r in results:
    print(f"{r['case']:14s} {r['path']:15s} worst error / tolerance {r['worst error / tolerance']:.3f} "
          f"{'ok' if r['ok'] else 'FAILED'}")
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  with open(os.path.join(_OUT_DIR.value, 'gpu_check.json'), 'w') as f:
    json.dump({'backend': backend, 'results': results}, f, indent=1)
  if not all(r['ok'] for r in results):
    raise SystemExit('a dispatched path differs from the reference')


if __name__ == '__main__':
  app.run(main)
