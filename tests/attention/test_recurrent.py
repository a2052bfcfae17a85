"""retention, gla, ssd, delta, gated_delta: three forms of one recurrence, checked against each other and a loop.

One jitted function per (variant, form) computes the output, the final state and the gradients of
<out, ct> + <state, cs> for cotangents passed in, so value, gradient, edge-case and causality tests share compiles.
"""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

NAMES = ('retention', 'gla', 'ssd', 'delta', 'gated_delta')
MODULES = {n: importlib.import_module(f'attention_research.attention.{n}') for n in NAMES}
FORMS = ('parallel', 'chunked', 'recurrent')
B, T, N, K, H, V = 2, 21, 4, 2, 6, 5
CHUNK = 8  # does not divide T: the last chunk is padded


def _rng(seed):
  return np.random.default_rng(seed)


def make_inputs(seed=0, T=T, B=B, N=N, K=K, H=H, V=V, log_gate=None, beta=None):
  """q, k (unit rows: the delta rule is a contraction for |k|^2 beta <= 2), v, all gates, s0 and cotangents."""
  r = _rng(seed)
  q = r.standard_normal((B, T, N, H))
  k = r.standard_normal((B, T, K, H))
  k /= np.linalg.norm(k, axis=-1, keepdims=True)
  v = r.standard_normal((B, T, K, V))
  gates = {
      'log_gate_h': -r.random((B, T, K, H)) if log_gate is None else np.full((B, T, K, H), log_gate),
      'log_gate': -r.random((B, T, K)) if log_gate is None else np.full((B, T, K), log_gate),
      'log_decay': -r.random(K) if log_gate is None else np.full(K, log_gate),
      'beta': r.random((B, T, K)) if beta is None else np.full((B, T, K), beta),
  }
  s0 = 0.5 * r.standard_normal((B, K, H, V))
  ct, cs = r.standard_normal((B, T, N, V)), r.standard_normal((B, K, H, V))
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  return dict(q=f32(q), k=f32(k), v=f32(v), gates={n: f32(g) for n, g in gates.items()}, s0=f32(s0), ct=f32(ct),
              cs=f32(cs))


def key_mask(seed=1, T=T, B=B):
  m = _rng(seed).random((B, 1, 1, T)) < 0.7
  m[..., 0] = True
  return jnp.asarray(m)


def gate_kwargs(name, gates):
  """The variant's own gate arguments, taken from the shared set."""
  return {'retention': lambda: {'log_decay': gates['log_decay']},
          'gla': lambda: {'log_gate': gates['log_gate_h']},
          'ssd': lambda: {'log_gate': gates['log_gate']},
          'delta': lambda: {'beta': gates['beta']},
          'gated_delta': lambda: {'beta': gates['beta'], 'log_gate': gates['log_gate']}}[name]()


def call(name, q, k, v, gates, **kw):
  return getattr(MODULES[name], name)(q, k, v, **gate_kwargs(name, gates), **kw)


@functools.lru_cache(maxsize=None)
def grad_fn(name, form, chunk_size=CHUNK):
  def loss(q, k, v, gates, s0, mask, ct, cs):
    out, state = call(name, q, k, v, gates, mask=mask, implementation=form, chunk_size=chunk_size, initial_state=s0,
                      return_state=True)
    return jnp.sum(out * ct) + jnp.sum(state * cs), (out, state)

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4), has_aux=True))


def run(name, form, x, mask, ct=None, cs=None):
  """(out, state, grads) with grads a dict over q, k, v, s0 and the variant's gates."""
  ct = x['ct'] if ct is None else ct
  cs = x['cs'] if cs is None else cs
  (_, (out, state)), (gq, gk, gv, gg, gs) = grad_fn(name, form)(x['q'], x['k'], x['v'], x['gates'], x['s0'], mask,
                                                                ct, cs)
  grads = dict(q=gq, k=gk, v=gv, s0=gs, **{n: g for n, g in gate_kwargs(name, gg).items()})
  return out, state, grads


@functools.lru_cache(maxsize=None)
def fwd_fn(name, form, return_weights=False):
  return jax.jit(lambda q, k, v, gates, mask, s0: call(
      name, q, k, v, gates, mask=mask, implementation=form, chunk_size=CHUNK, initial_state=s0, return_state=True,
      return_weights=return_weights))


def loop_reference(name, x, mask):
  """The recurrence equations of the module docstrings, one position at a time in float64."""
  q, k, v, s0 = (np.asarray(x[n], np.float64) for n in ('q', 'k', 'v', 's0'))
  g = {n: np.asarray(a, np.float64) for n, a in x['gates'].items()}
  keep = np.broadcast_to(np.asarray(mask)[:, 0, 0, :], q.shape[:2])
  Bq, Tq, Nq, Hq = q.shape
  Kq = k.shape[2]
  G = Nq // Kq
  out, state = np.zeros(q.shape[:3] + (v.shape[-1],)), s0.copy()
  for b in range(Bq):
    for j in range(Kq):
      s = state[b, j]
      for t in range(Tq):
        kt, vt = k[b, t, j], v[b, t, j]
        if keep[b, t]:
          if name == 'retention':
            s = np.exp(g['log_decay'][j]) * s + np.outer(kt, vt)
          elif name == 'gla':
            s = np.exp(g['log_gate_h'][b, t, j])[:, None] * s + np.outer(kt, vt)
          elif name == 'ssd':
            s = np.exp(g['log_gate'][b, t, j]) * s + np.outer(kt, vt)
          else:
            decay = np.exp(g['log_gate'][b, t, j]) if name == 'gated_delta' else 1.0
            bt = g['beta'][b, t, j]
            s = decay * (np.eye(Hq) - bt * np.outer(kt, kt)) @ s + bt * np.outer(kt, vt)
        for n in range(j * G, (j + 1) * G):
          out[b, t, n] = s.T @ (q[b, t, n] / np.sqrt(Hq))
      state[b, j] = s
  return out, state


def assert_close(a, b, atol=1e-5, rtol=1e-5, what=''):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=rtol, err_msg=what)


def assert_forms_agree(name, x, mask, atol=1e-5, rtol=1e-5, grad_atol=2e-5):
  results = {form: run(name, form, x, mask) for form in FORMS}
  out, state, grads = results['parallel']
  for form in ('chunked', 'recurrent'):
    o, s, gr = results[form]
    assert_close(o, out, atol, rtol, f'{name} {form} out')
    assert_close(s, state, atol, rtol, f'{name} {form} state')
    for n in grads:
      assert_close(gr[n], grads[n], grad_atol, 1e-4, f'{name} {form} d/d{n}')
  return results


@pytest.mark.parametrize('name', NAMES)
def test_forms_agree_in_values_and_gradients(name):
  """Grouped heads (K < N), key padding, an initial state, the final state, T not a multiple of the chunk."""
  assert_forms_agree(name, make_inputs(), key_mask())


@pytest.mark.parametrize('name', NAMES)
def test_equals_python_loop(name):
  x, mask = make_inputs(seed=3), key_mask(seed=4)
  want_out, want_state = loop_reference(name, x, mask)
  out, state, _ = run(name, 'chunked', x, mask)
  assert_close(out, want_out, 2e-5, 1e-5)
  assert_close(state, want_state, 2e-5, 1e-5)


@pytest.mark.parametrize('name', ['delta', 'gated_delta'])
def test_beta_outside_unit_interval_is_computed_as_written(name):
  """beta is not checked (it may be traced); outside [0, 1] the forms still follow the recurrence."""
  x = make_inputs(seed=5)
  x['gates']['beta'] = x['gates']['beta'] * 2.0 - 0.5  # [-0.5, 1.5]
  mask = key_mask(seed=6)
  want_out, want_state = loop_reference(name, x, mask)
  for form in FORMS:
    out, state, _ = run(name, form, x, mask)
    assert_close(out, want_out, 5e-5, 1e-5, form)
    assert_close(state, want_state, 5e-5, 1e-5, form)


@pytest.mark.parametrize('name', NAMES)
def test_two_halves_with_carried_state_equal_one_run(name):
  """Two runs of T positions, the second starting from the state of the first, equal one run of 2 T positions."""
  first, second = make_inputs(seed=7), make_inputs(seed=8)
  mask = jnp.concatenate([key_mask(seed=9), key_mask(seed=10)], axis=-1)
  both = {n: jnp.concatenate([first[n], second[n]], axis=1) for n in ('q', 'k', 'v')}
  gates = {n: (g if n == 'log_decay' else jnp.concatenate([g, second['gates'][n]], axis=1))
           for n, g in first['gates'].items()}
  second['gates']['log_decay'] = first['gates']['log_decay']
  whole_out, whole_state = fwd_fn(name, 'chunked')(both['q'], both['k'], both['v'], gates, mask, first['s0'])
  state, outs = first['s0'], []
  for x, m in ((first, mask[..., :T]), (second, mask[..., T:])):
    out, state = fwd_fn(name, 'chunked')(x['q'], x['k'], x['v'], x['gates'], m, state)
    outs.append(out)
  assert_close(jnp.concatenate(outs, axis=1), whole_out)
  assert_close(state, whole_state)


@pytest.mark.parametrize('name', NAMES)
def test_step_by_step_decoding_equals_one_run(name):
  x = make_inputs(seed=9)
  mod = MODULES[name]
  step = jax.jit(functools.partial(mod.step, scale=None))
  full = gate_kwargs(name, x['gates'])
  state, outs = x['s0'], []
  for t in range(T):
    gates_t = {n: (g if n == 'log_decay' else g[:, t]) for n, g in full.items()}
    out_t, state = step(state, x['q'][:, t], x['k'][:, t], x['v'][:, t], **gates_t)
    outs.append(out_t)
  want_out, want_state = fwd_fn(name, 'recurrent')(x['q'], x['k'], x['v'], x['gates'], jnp.ones((B, 1, 1, T), bool),
                                                   x['s0'])
  assert_close(jnp.stack(outs, axis=1), want_out)
  assert_close(state, want_state)
  assert mod.state_size(num_kv_heads=K, head_dim=H, value_dim=V, num_heads=N) == K * H * V
  s = mod.init_state((B,), K, H, V, jnp.float32)
  assert s.shape == (B, K, H, V) and not bool(jnp.any(s))


@pytest.mark.parametrize('name', NAMES)
def test_weights_are_the_implied_causal_matrix(name):
  """Without an initial state out = w v, w is lower triangular and padded keys get no weight."""
  x, mask = make_inputs(seed=10), key_mask(seed=11)
  out, w, state = fwd_fn(name, 'parallel', True)(x['q'], x['k'], x['v'], x['gates'], mask, jnp.zeros_like(x['s0']))
  assert w.shape == (B, N, T, T) and w.dtype == jnp.float32
  assert_close(jnp.einsum('bnts,bsnv->btnv', w, jnp.repeat(x['v'], N // K, axis=2)), out)
  assert not bool(jnp.any(jnp.triu(w, 1)))
  assert not bool(jnp.any(jnp.where(mask[:, :, 0, None, :], 0.0, w)))
  assert state.shape == (B, K, H, V)


def test_scale_multiplies_the_queries():
  x, mask = make_inputs(seed=19), key_mask(seed=20)
  fn = jax.jit(lambda q, scale: call('gated_delta', q, x['k'], x['v'], x['gates'], mask=mask, scale=scale))
  assert_close(fn(x['q'], 0.3), fn(x['q'] * (0.3 * np.sqrt(H)), None))


@pytest.mark.parametrize('name', NAMES)
def test_bfloat16_inputs_are_close_to_float32(name):
  """Computed in float32 inside: the only error left is the bfloat16 rounding of inputs and outputs."""
  x, mask = make_inputs(seed=12), key_mask(seed=13)
  bf = {n: x[n].astype(jnp.bfloat16) for n in ('q', 'k', 'v')}
  out_bf, _ = fwd_fn(name, 'chunked')(bf['q'], bf['k'], bf['v'], x['gates'], mask, x['s0'])
  out, _ = fwd_fn(name, 'chunked')(x['q'], x['k'], x['v'], x['gates'], mask, x['s0'])
  assert out_bf.dtype == jnp.bfloat16
  assert_close(out_bf.astype(jnp.float32), out, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('log_gate,beta', [(0.0, 1.0), (-30.0, 0.0), (-30.0, 1.0), (0.0, 0.0)])
def test_extreme_gates_stay_finite_and_forms_agree(name, log_gate, beta):
  x = make_inputs(seed=14, log_gate=log_gate, beta=beta)
  mask = key_mask(seed=15).at[1].set(False)  # the second sequence is all padding
  results = assert_forms_agree(name, x, mask, atol=2e-5, rtol=2e-5, grad_atol=1e-4)
  out, state, grads = results['chunked']
  for a in [out, state] + list(grads.values()):
    assert bool(jnp.all(jnp.isfinite(a)))
  # All padding: the state is the initial one and outputs read only it.
  assert_close(state[1], x['s0'][1])
  assert_close(out[1], jnp.einsum('tkgh,khv->tkgv', x['q'][1].reshape(T, K, N // K, H) / np.sqrt(H),
                                  x['s0'][1]).reshape(T, N, V))


@pytest.mark.parametrize('chunk_size', [3, 12, 21])
def test_gla_chunks_of_any_length_and_tiny_gates_agree_with_the_parallel_form(chunk_size):
  """gla's chunked form halves each chunk (padded to a power of two) down to blocks of LEAF positions; gates
  down to exp(-10) per step take a 21-long chunk's decay to about exp(-100), where a factorisation through
  exp(-G_s) would overflow float32."""
  x, mask = make_inputs(seed=30), key_mask(seed=31)
  x['gates']['log_gate_h'] = x['gates']['log_gate_h'] * 10
  args = (x['q'], x['k'], x['v'], x['gates'], x['s0'], mask, x['ct'], x['cs'])
  (_, (out, state)), grads = grad_fn('gla', 'parallel')(*args)
  (_, (out_c, state_c)), grads_c = grad_fn('gla', 'chunked', chunk_size)(*args)
  assert_close(out_c, out, 2e-5, 2e-5, 'out')
  assert_close(state_c, state, 2e-5, 2e-5, 'state')
  for a, b in zip(jax.tree.leaves(grads_c), jax.tree.leaves(grads)):
    assert bool(jnp.all(jnp.isfinite(a)))
    assert_close(a, b, 2e-5, 1e-4, 'gradient')


@pytest.mark.parametrize('name', NAMES)
def test_outputs_have_zero_gradient_from_later_positions(name):
  x, mask = make_inputs(seed=16), key_mask(seed=17)
  t = 10  # inside the second chunk
  ct = jnp.zeros_like(x['ct']).at[:, t].set(x['ct'][:, t])
  for form in FORMS:
    _, _, grads = run(name, form, x, mask, ct=ct, cs=jnp.zeros_like(x['cs']))
    for n, g in grads.items():
      if n in ('s0', 'log_decay'):
        continue
      assert not bool(jnp.any(g[:, t + 1:])), f'{form}: d out_{t} / d {n}_s is not zero for s > {t}'
      assert bool(jnp.any(g[:, :t + 1])), f'{form}: d out_{t} / d {n} is zero everywhere'


@pytest.mark.parametrize('name', NAMES)
def test_long_sequence_stays_finite(name):
  long_T = 16384
  x = make_inputs(seed=18, T=long_T, B=1, N=1, K=1, H=8, V=8)
  x['gates']['log_gate'] = x['gates']['log_gate'] * 0.1  # mostly near 1: the state keeps a long memory
  out, state = jax.jit(lambda q, k, v, gates: call(name, q, k, v, gates, return_state=True))(
      x['q'], x['k'], x['v'], x['gates'])
  assert out.shape == (1, long_T, 1, 8)
  assert bool(jnp.all(jnp.isfinite(out))) and bool(jnp.all(jnp.isfinite(state)))


def test_bad_input_raises_value_error():
  x = make_inputs()
  q, k, v, g = x['q'], x['k'], x['v'], x['gates']
  cases = [
      (lambda: MODULES['gla'].gla(q, k, v, log_gate=g['log_gate']), r'log_gate must have shape \[\.\.\., T, K, H\]'),
      (lambda: MODULES['ssd'].ssd(q, k, v, log_gate=g['log_gate_h']), r'log_gate must have shape \[\.\.\., T, K\]'),
      (lambda: MODULES['delta'].delta(q, k, v, beta=g['beta'][:, :-1]), 'beta must have shape'),
      (lambda: MODULES['retention'].retention(q, k, v, log_decay=jnp.zeros(3)), r'log_decay must have shape \[K\]'),
      (lambda: MODULES['retention'].retention(q, k, v, is_causal=False), 'causal by construction'),
      (lambda: MODULES['gla'].gla(q, k, v, log_gate=g['log_gate_h'], implementation='fused'), 'unknown implementation'),
      (lambda: MODULES['ssd'].ssd(q, k, v, log_gate=g['log_gate'], chunk_size=0), 'chunk_size must be a positive'),
      (lambda: MODULES['retention'].retention(q, k[:, :-1], v[:, :-1]), 'length of q'),
      (lambda: MODULES['retention'].retention(q, k, v, mask=jnp.ones((B, 1, T, T), bool)), 'key-padding'),
      (lambda: MODULES['retention'].retention(q, k, v, mask=jnp.ones((B, N, 1, T), bool)), r'same for every head'),
      (lambda: MODULES['delta'].delta(q, k, v, beta=g['beta'], initial_state=jnp.zeros((B, K, V, H))),
       'initial_state must have shape'),
      (lambda: MODULES['gated_delta'].step(x['s0'], q[:, 0], k[:, 0], v[:, 0], beta=g['beta'][:, 0],
                                           log_gate=g['log_gate_h'][:, 0]), 'log_gate must have shape'),
      (lambda: MODULES['gla'].step(x['s0'][:, :1], q[:, 0], k[:, 0], v[:, 0], log_gate=g['log_gate_h'][:, 0]),
       'state must have shape'),
  ]
  for fn, match in cases:
    with pytest.raises(ValueError, match=match):
      fn()
