"""Context parallelism: a causal decoder LM trained with its sequences split over a 'sequence' mesh axis (ring
attention inside the model) gets the losses of one device. In a subprocess, since the device count is fixed when
JAX starts."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from attention_research import attention
from attention_research.layers import context_parallel
from attention_research.training.sharding import DataParallel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent('''
    import json, sys
    import jax
    import training_fakes as fakes
    from attention_research.training import loop
    from attention_research.training.config_files import make_config
    assert len(jax.devices()) == 4, jax.devices()

    class LMTask(fakes.ParityTask):  # right-padded token rows of length 12, read as a language
      kind, name = 'lm', 'fake_lm'

      def __init__(self):
        super().__init__(n=(32, 8, 8), length=12)
        self.info = {'vocab_size': 6, 'pad_id': 0, 'bos_id': 1, 'eos_id': 2, 'max_length': 12}

    def config(attention, **train):
      # RoPE on global positions, causal self-attention with key padding, dropout drawn on the global view
      model = {'name': 'transformer.DecoderLM', 'd_model': 16, 'num_heads': 2, 'num_decoder_layers': 1,
               'mlp_dim': 32, 'positional': 'rope', 'dropout_rate': 0.1, 'attention': attention}
      return make_config(task='fake_lm', model=model, data={'size': 'small', 'eval_batch_size': 8},
                         train={'steps': 3, 'batch_size': 4, 'log_every': 1, 'checkpoint_every': 0, **train},
                         optim={'learning_rate': 1e-2, 'warmup_steps': 0})

    task, out = LMTask(), {}
    runs = (('one', jax.devices()[:1], config('dot_product')),
            ('ring', jax.devices(), config('dot_product', sequence=2)))  # mesh data=2 x sequence=2
    for name, devices, cfg in runs:
      loop.train_and_evaluate(cfg, sys.argv[1] + '/' + name, task=task, devices=devices, quiet=True,
                              tensorboard=False)
      out[name] = [json.loads(l)['loss'] for l in open(sys.argv[1] + '/' + name + '/metrics.jsonl')]
    try:
      loop.train_and_evaluate(config('linear', sequence=2), sys.argv[1] + '/bad', task=task, quiet=True,
                              tensorboard=False)
    except ValueError as e:
      out['error'] = str(e)

    # The layer alone on a 4-device sequence axis, with a length (7) that 4 does not divide, grouped-query heads,
    # RoPE, key padding and a causal mask, gives the values and gradients of one device.
    import jax.numpy as jnp, numpy as np
    from flax import nnx
    from jax.sharding import Mesh
    from attention_research import layers
    make = lambda: layers.MultiHeadAttention(4, 16, num_kv_heads=2, use_rope=True, rngs=nnx.Rngs(0))
    graphdef, params = nnx.graphdef(nnx.eval_shape(make)), jax.jit(lambda: nnx.state(make()))()
    x = jax.random.normal(jax.random.key(1), (2, 7, 16))
    mask = (jnp.arange(7)[None] < jnp.array([7, 4])[:, None])[:, None, None, :]

    def loss(params, x):
      layer = nnx.merge(graphdef, params)
      return (layer(x, mask=mask, is_causal=True) ** 2).sum()

    grad = jax.value_and_grad(loss, argnums=(0, 1))
    want = jax.jit(grad)(params, x)
    with jax.set_mesh(Mesh(np.asarray(jax.devices()), ('sequence',))):
      got = jax.jit(grad)(params, x)
      out['layer_ring'] = 'shard_map' in str(jax.make_jaxpr(grad)(params, x))
    out['layer_error'] = max(float(jnp.abs(a - b).max() / (jnp.abs(b).max() + 1e-9))
                             for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    print('RESULT' + json.dumps(out))
''')


def test_sequence_axis_trains_to_the_losses_of_one_device(tmp_path):
  flags = os.environ.get('XLA_FLAGS', '')  # the conftest's cheap-compile flags, and 4 devices
  env = dict(os.environ, XLA_FLAGS=f'{flags} --xla_force_host_platform_device_count=4', JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'tests', 'training')]))
  proc = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split('RESULT')[-1])
  assert len(out['one']) == 4  # 3 train steps + the test evaluation
  assert out['ring'] == pytest.approx(out['one'], rel=1e-5)
  assert "variant 'linear' has no ring form" in out['error'] and "['dot_product', 'flash']" in out['error']
  assert out['layer_ring'] and out['layer_error'] < 1e-5, out


def test_sequence_axis_of_the_mesh():
  dp = DataParallel(jax.devices() * 8, fsdp=2, sequence=2)  # the mesh takes the count; nothing runs on it
  assert dp.mesh.axis_names == ('data', 'fsdp', 'sequence') and dict(dp.mesh.shape) == {
      'data': 2, 'fsdp': 2, 'sequence': 2}
  assert dp.batch_sharding(0, split_length=True).spec == P(('data', 'fsdp'), 'sequence')
  dp.check_batch_size(4)
  with pytest.raises(ValueError, match=r'batch_size=6 must be divisible by the 4 devices of the data and fsdp'):
    dp.check_batch_size(6)
  with pytest.raises(ValueError, match=r'config.train.sequence=3 must be a positive int such that fsdp x sequence'):
    DataParallel(jax.devices() * 8, sequence=3)
  assert context_parallel.ring_variants() == ['dot_product', 'flash']
  assert context_parallel.sequence_devices() == 1  # no mesh set


def test_what_has_no_ring_form_raises():
  q = jnp.zeros((1, 4, 2, 8))
  with jax.set_mesh(Mesh(np.asarray(jax.devices()[:1]), ('sequence',))):  # checks run before any ring step
    assert context_parallel.sequence_devices() == 1
    with pytest.raises(ValueError, match=r"variant 'linear' has no ring form. Supported variants: \['dot_product'"):
      context_parallel.attend(attention.get('linear'), q, q, q)
    with pytest.raises(ValueError, match=r"got \['bias', 'sinks'\]"):
      context_parallel.attend(attention.get('dot_product'), q, q, q, bias=jnp.zeros((2, 4, 4)), sinks=jnp.zeros(2))
    with pytest.raises(ValueError, match=r'key padding masks .* got a mask of shape \(1, 1, 4, 4\)'):
      context_parallel.attend(attention.get('flash'), q, q, q, mask=jnp.ones((1, 1, 4, 4), bool))
