"""Properties every registered variant must have, whatever its algorithm."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_research import attention
from tests.attention.inputs import half_tolerance, large_logits
from tests.attention.variant_cases import repeat_kv_heads, variant_kwargs

NAMES = sorted(attention.VARIANTS)
CAUSAL = [n for n in NAMES if attention.get(n).causal]


def call(name, q, k, v, **kw):
  return attention.get(name)(q, k, v, **variant_kwargs(name, q, k, v), **kw)


@functools.lru_cache(maxsize=None)
def compiled(name, return_weights=False):
  """call(name, q, k, v) as one compiled program, shared by the tests of a variant (one compile per shape): op-by-op
  dispatch of the recurrent and blocked variants costs several times their compile. Eagerness itself is checked
  by test_jit_equals_eager."""
  return jax.jit(lambda q, k, v: call(name, q, k, v, return_weights=return_weights))


def test_unknown_variant_lists_known_ones():
  with pytest.raises(ValueError, match='known variants.*dot_product'):
    attention.get('softmax_but_faster')


def test_registry_facts_are_consistent():
  for name, v in attention.VARIANTS.items():
    assert v.name == name and callable(v.fn) and v.masks in ('full', 'key_padding')
    assert getattr(attention, name) is v.fn


@pytest.mark.parametrize('name', NAMES)
def test_jit_equals_eager(name, qkv):
  q, k, v = qkv()
  eager = call(name, q, k, v)
  jitted = compiled(name)(q, k, v)
  assert eager.shape == q.shape[:-1] + (v.shape[-1],)
  np.testing.assert_allclose(eager, jitted, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize('name', NAMES)
def test_vmap_over_leading_axis_equals_batched_call(name, qkv):
  q, k, v = qkv()
  batched = compiled(name)(q, k, v)
  mapped = jax.jit(jax.vmap(lambda q, k, v: call(name, q[None], k[None], v[None])[0]))(q, k, v)
  np.testing.assert_allclose(batched, mapped, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize('name', NAMES)
def test_extra_leading_dims(name, qkv):
  q, k, v = qkv(B=4)
  flat = compiled(name)(q, k, v)
  nested = compiled(name)(*(x.reshape((2, 2) + x.shape[1:]) for x in (q, k, v)))
  np.testing.assert_allclose(flat, nested.reshape(flat.shape), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize('name', NAMES)
def test_fully_masked_rows_give_zeros_and_finite_gradients(name, qkv):
  q, k, v = qkv()
  mask = jnp.ones((2, 1, 1, 6), bool).at[1].set(False)  # every key of the second example masked
  def loss(q, k, v):
    out = call(name, q, k, v, mask=mask)
    return jnp.sum(out ** 2), out
  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(q, k, v)
  assert bool(jnp.all(jnp.isfinite(out)))
  np.testing.assert_allclose(out[1], 0.0, atol=1e-6)
  for g in grads:
    assert bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.parametrize('name', NAMES)
def test_grouped_query_equals_multi_head_with_repeated_kv(name, qkv):
  q, k, v = qkv(N=4, K=2)
  grouped = compiled(name)(q, k, v)
  k2, v2 = jnp.repeat(k, 2, axis=-2), jnp.repeat(v, 2, axis=-2)
  # Arguments with one entry per kv head (gates, decays) are those of the grouped call, repeated like k and v.
  kw = {**variant_kwargs(name, q, k2, v2), **repeat_kv_heads(name, variant_kwargs(name, q, k, v), 2)}
  repeated = jax.jit(lambda q, k, v: attention.get(name)(q, k, v, **kw))(q, k2, v2)
  np.testing.assert_allclose(grouped, repeated, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize('name', CAUSAL)
def test_causal_outputs_have_zero_gradient_from_future_keys(name, qkv):
  q, k, v = qkv(T=8, S=8)
  t = 3
  def out_t(k, v):
    return jnp.sum(call(name, q, k, v, is_causal=True)[:, t] ** 2)
  gk, gv = jax.jit(jax.grad(out_t, argnums=(0, 1)))(k, v)
  assert float(jnp.abs(gk[:, t + 1:]).max()) == 0.0
  assert float(jnp.abs(gv[:, t + 1:]).max()) == 0.0
  assert float(jnp.abs(gv[:, : t + 1]).max()) > 0.0


@pytest.mark.parametrize('name', NAMES)
def test_returned_weights_reproduce_the_output(name, qkv):
  q, k, v = qkv(N=4, K=4)
  out, w = compiled(name, return_weights=True)(q, k, v)
  assert w.shape == (2, 4, 6, 6)
  np.testing.assert_allclose(out, jnp.einsum('bnts,bsnv->btnv', w, v), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('name', NAMES)
def test_bfloat16_inputs_keep_their_dtype_and_stay_finite(name, qkv):
  q, k, v = qkv(dtype=jnp.bfloat16)
  out = compiled(name)(q, k, v)
  assert out.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(out.astype(jnp.float32))))
  ref = compiled(name)(*(x.astype(jnp.float32) for x in (q, k, v)))
  np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=0.1, rtol=0.1)


@pytest.mark.parametrize('dtype', [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize('name', NAMES)
def test_half_precision_scores_are_formed_and_normalised_in_float32(name, dtype, qkv):
  """Half inputs give the float32 result on the same values up to output rounding, even where rounding the
  scores themselves to 16 bits would move the softmax (large logits)."""
  q, k, v = qkv()
  q, k = large_logits(q, k)
  q, k, v = (x.astype(dtype) for x in (q, k, v))
  kw = variant_kwargs(name, q, k, v)
  if name == 'multiplicative':
    del kw['params']  # the 'general' form projects q in its own dtype, by design; the 'dot' form has scores only
  fn = jax.jit(lambda q, k, v: attention.get(name).fn(q, k, v, **kw))
  out, ref = fn(q, k, v), fn(*(x.astype(jnp.float32) for x in (q, k, v)))
  assert out.dtype == dtype
  np.testing.assert_allclose(out.astype(jnp.float32), ref, **half_tolerance(dtype))


@pytest.mark.parametrize('name', NAMES)
def test_bad_shapes_raise_value_error(name, qkv):
  q, k, v = qkv(N=4, K=2)
  with pytest.raises(ValueError, match='multiple'):
    call(name, q[..., :3, :], k, v)  # N=3 heads, K=2
  with pytest.raises(ValueError, match='rank'):
    call(name, q[0, 0], k[0, 0], v[0, 0])
  with pytest.raises(ValueError, match='broadcast'):
    call(name, q, k, v, mask=jnp.ones((2, 1, 1, 5), bool))


def test_variant_is_callable_and_keyword_only(qkv):
  q, k, v = qkv()
  np.testing.assert_array_equal(attention.get('linear')(q, k, v), attention.linear(q, k, v))
  with pytest.raises(TypeError):
    attention.Variant('x', attention.linear, False, True, 'key_padding', 'kernel', 'O(1)', 'O(1)')  # positional
  with pytest.raises(ValueError, match='masks'):
    attention.Variant(name='x', fn=attention.linear, exact=False, causal=True, masks='diagonal', family='kernel',
                      time='O(1)', memory='O(1)')


def test_variants_are_frozen_and_example_options_read_only():
  variant = attention.get('performer')
  with pytest.raises(AttributeError):
    variant.name = 'other'
  with pytest.raises(TypeError):
    variant.example_options['num_features'] = 1
  hash(variant)


@pytest.mark.parametrize('name', NAMES)
def test_state_size_is_a_positive_int(name):
  variant = attention.get(name)
  size = variant.state_size(num_kv_heads=2, head_dim=8, value_dim=6, length=16, **variant.example_options)
  assert isinstance(size, int) and size > 0
  longer = variant.state_size(num_kv_heads=2, head_dim=8, value_dim=6, length=64, **variant.example_options)
  if variant.exact and name != 'local':
    assert size == 2 * (8 + 6) * 16 and longer == 4 * size  # every key and value of the sequence
  if variant.family in ('kernel', 'recurrent'):
    assert longer == size  # a recurrent state does not grow with the sequence


@pytest.mark.parametrize('name', NAMES)
def test_layer_options_are_consumed_by_init_params_and_never_reach_fn(name):
  variant = attention.get(name)
  layer, options = variant.split_options(variant.example_options)
  assert set(layer) <= set(variant.layer_options) and not set(options) & set(variant.layer_options)
  assert set(variant.non_trainable) <= set(variant.init_params(
      jax.random.PRNGKey(0), num_heads=4, num_kv_heads=2, head_dim=8, in_features=32, max_length=6,
      dtype=jnp.float32, **layer) if variant.init_params else {})
