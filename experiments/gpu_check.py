r"""On a GPU: which path each `flash` call takes, and that every path equals the reference (values and gradients).

  python -m experiments.gpu_check --out_dir=gpu_results          # then the bf16 speed run:
  python -m experiments.benchmark --dtype=bfloat16 --lengths=4096,16384 --head_dim=128 \
      --workloads=dense,gqa,decode --variants=flash,dot_product --out_dir=gpu_results

The cases and their check live in `benchmarking.gpu_paths`. The path is read from the compiled program: a cuDNN
fused-attention custom call, the Pallas (Triton) kernel of `attention._pallas_gpu`, or the blocked kernel (or the
decoding form for one query). On a CPU it runs too (every path is then the blocked kernel or the decoding form), which is how the tests keep
it working; --allow_cpu says that is intended.
"""

import json
import os

from absl import app, flags
import jax

from attention_research.benchmarking.gpu_paths import cases, check

_OUT_DIR = flags.DEFINE_string('out_dir', 'gpu_results', 'Where gpu_check.json goes.')
_LENGTH = flags.DEFINE_integer('length', 1024, 'T = S of the cases (decode: S).', lower_bound=8)
_HEAD_DIM = flags.DEFINE_integer('head_dim', 128, 'Head size.', lower_bound=8)
_ALLOW_CPU = flags.DEFINE_bool('allow_cpu', False, 'Run on a CPU backend instead of refusing.')


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
