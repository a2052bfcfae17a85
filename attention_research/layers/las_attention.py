"""The attention of a listen-attend-spell decoder over encoder frames, one output step at a time.

  name       energy e_s of encoder frame h_s for the decoder state q
  dot        tanh(W_q q) . tanh(W_k h_s)                              (Chan et al. 2016: an inner product of MLPs)
  additive   v . tanh(W_q q + W_k h_s + b)                            (Bahdanau et al. 2015)
  location   v . tanh(W_q q + W_k h_s + U f_s + b), f = F * a_prev     (Chorowski et al. 2015): f_s holds the C
             filters of a 1-D convolution F of the previous alignment at frame s; a_prev starts uniform over the
             real frames (as ESPnet's AttLoc)
  coverage   v . tanh(W_q q + W_k h_s + w c_s + b), c = sum of the past alignments, 0 at the first step
             (See et al. 2017; ESPnet's AttCov)
  mocha      monotonic chunkwise attention (Chiu and Raffel 2018), below
The first four take a softmax of the energies over the real frames (float32; padding masked with a large finite
negative; an utterance without frames attends to nothing).

MoChA. A monotonic energy m_s = g v/|v| . tanh(W_q q + W_k h_s + b) + r gives selection probabilities
p_s = sigmoid(m_s); training adds Gaussian noise to m_s (noise_BS), which pushes p towards 0 or 1. Training uses
the expected alignment of Raffel et al. 2017,
    a_i,j = p_i,j sum_{k <= j} a_i-1,k prod_{l=k}^{j-1} (1 - p_i,l),   a_0 = one-hot at frame 0,
computed as the linear recurrence q_j = (1 - p_j-1) q_j-1 + a_i-1,j, a_i,j = p_i,j q_j with an associative scan:
exact, with no division (so none of the cumprod trick's clamping). The mass that runs past the last frame is
lost, so each row sums to at most 1. A chunk energy u_s (additive) then spreads it over the w frames ending at
each frame: b_k = sum_{j=k}^{k+w-1} a_j softmax(u_{j-w+1..j})_k, each window's softmax taken on its own (stable).
Decoding (hard=True) runs the same recurrence with p replaced by [p >= 0.5]: from the previous attended frame it
moves forward to the first frame (itself included) whose p >= 0.5, and the context is the softmax over the w
frames ending there; when no frame is selected the alignment is 0 (zero context) and stays 0 for every later step.

Dimension letters: B batch, S encoder frames, Q query (decoder state) features, A encoder features, D attention
features, C location filters, W location kernel width, w chunk size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research.layers.attention import _param

ATTENTIONS = ('dot', 'additive', 'location', 'coverage', 'mocha')
NEG = -1.0e9  # masked energies: large and finite, so an all-masked row gives no NaN


def check_attention(name: str) -> str:
  if name not in ATTENTIONS:
    raise ValueError(f'unknown LAS attention {name!r}; known: {list(ATTENTIONS)}.')
  return name


# ------------------------------------------------------------------------------------------- pure functions
def additive_energy(q_BD, k_BSD, v_D, extra_BSD=None):
  """v . tanh(q + k_s (+ extra_s)) -> [B, S]; q and k already projected (and biased)."""
  x_BSD = q_BD[:, None, :] + k_BSD
  if extra_BSD is not None:
    x_BSD = x_BSD + extra_BSD
  return jnp.einsum('BSD,D->BS', jnp.tanh(x_BSD.astype(jnp.float32)), v_D.astype(jnp.float32))


def masked_softmax(e_BS, mask_BS):
  """Softmax over the real frames in float32; a row without real frames gives zeros."""
  w_BS = jax.nn.softmax(jnp.where(mask_BS, e_BS.astype(jnp.float32), NEG), axis=-1)
  return jnp.where(mask_BS.any(-1, keepdims=True), w_BS, 0.0)


def location_features(prev_BS, kernel_WC):
  """The previous alignment convolved with C filters of odd width W, centred, zero-padded -> [B, S, C]."""
  W = kernel_WC.shape[0]
  out = jax.lax.conv_general_dilated(prev_BS[:, :, None].astype(jnp.float32), kernel_WC[:, None, :].astype(jnp.float32),
                                     window_strides=(1,), padding=[(W // 2, W // 2)],
                                     dimension_numbers=('NWC', 'WIO', 'NWC'))
  return out


def expected_alignment(p_BS, prev_BS):
  """MoChA's (and monotonic attention's) expected alignment [B, S] from selection probabilities p [B, S] and the
  previous step's alignment [B, S] (see the module docstring)."""
  p_BS = p_BS.astype(jnp.float32)
  decay_BS = jnp.concatenate([jnp.zeros_like(p_BS[:, :1]), 1.0 - p_BS[:, :-1]], axis=1)

  def combine(earlier, later):  # affine maps q -> a q + b, composed left to right
    return earlier[0] * later[0], later[0] * earlier[1] + later[1]

  _, q_BS = jax.lax.associative_scan(combine, (decay_BS, prev_BS.astype(jnp.float32)), axis=1)
  return p_BS * q_BS


def hard_alignment(p_BS, prev_BS):
  """Hard monotonic attention: one-hot at the first frame j >= the previous attended frame with p_j >= 0.5, or all
  zeros when there is none (or when the previous alignment was all zeros)."""
  return expected_alignment((p_BS >= 0.5).astype(jnp.float32), prev_BS)


def chunk_attention(alpha_BS, u_BS, mask_BS, chunk_size: int):
  """MoChA's chunkwise attention [B, S]: the alignment alpha spread by a softmax of u over the chunk_size frames
  ending at each frame (a window that starts before frame 0 is cut there)."""
  w, S = chunk_size, u_BS.shape[1]
  u_BS = jnp.where(mask_BS, u_BS.astype(jnp.float32), NEG)
  pad_u = jnp.pad(u_BS, ((0, 0), (w - 1, 0)), constant_values=NEG)
  pad_m = jnp.pad(mask_BS, ((0, 0), (w - 1, 0)))
  # Window of frame j, offset o: frame j - o.
  win_BSw = jnp.stack([pad_u[:, w - 1 - o:w - 1 - o + S] for o in range(w)], -1)
  valid_BSw = jnp.stack([pad_m[:, w - 1 - o:w - 1 - o + S] for o in range(w)], -1)
  sm_BSw = jax.nn.softmax(jnp.where(valid_BSw, win_BSw, NEG), axis=-1)
  sm_BSw = jnp.where(valid_BSw.any(-1, keepdims=True), sm_BSw, 0.0)
  contrib_BSw = alpha_BS.astype(jnp.float32)[..., None] * sm_BSw  # frame j hands frame j - o its share
  pad_c = jnp.pad(contrib_BSw, ((0, 0), (0, w - 1), (0, 0)))
  return sum(pad_c[:, o:o + S, o] for o in range(w))


# ------------------------------------------------------------------------------------------------- module
class LASAttention(nnx.Module):
  """One of ATTENTIONS; `step` returns (context [B, A], weights [B, S], new state). The keys' projection does not
  depend on the decoder step, so `project_keys` computes it once per utterance."""

  def __init__(self, kind: str, query_features: int, key_features: int, attention_features: int, *,
               location_filters: int = 10, location_kernel: int = 31, chunk_size: int = 4,
               mocha_bias: float = -1.0, rngs: nnx.Rngs):
    self.kind = check_attention(kind)
    if location_kernel % 2 == 0 or location_kernel < 1:
      raise ValueError(f'location_kernel must be a positive odd width (centred); got {location_kernel}.')
    if chunk_size < 1:
      raise ValueError(f'chunk_size must be >= 1; got {chunk_size}.')
    Q, A, D = query_features, key_features, attention_features
    self.chunk_size = chunk_size
    self.w_q = _param(rngs, (Q, D), Q, jnp.float32)
    self.w_k = _param(rngs, (A, D), A, jnp.float32)
    if kind != 'dot':
      self.b = nnx.Param(jnp.zeros((D,), jnp.float32))
      self.v = _param(rngs, (D,), D, jnp.float32)
    if kind == 'location':
      self.conv = _param(rngs, (location_kernel, location_filters), location_kernel, jnp.float32)
      self.u = _param(rngs, (location_filters, D), location_filters, jnp.float32)
    if kind == 'coverage':
      self.w_c = _param(rngs, (D,), 1, jnp.float32)
    if kind == 'mocha':
      # Raffel et al. 2017: a weight-normalised v with gain g = 1 / sqrt(D) and a scalar bias r, negative so that
      # the alignment first moves forward slowly (the paper's -4 suits utterances of hundreds of frames).
      self.g = nnx.Param(jnp.asarray(1.0 / D ** 0.5, jnp.float32))
      self.r = nnx.Param(jnp.asarray(mocha_bias, jnp.float32))
      self.cw_q = _param(rngs, (Q, D), Q, jnp.float32)
      self.cw_k = _param(rngs, (A, D), A, jnp.float32)
      self.cb = nnx.Param(jnp.zeros((D,), jnp.float32))
      self.cv = _param(rngs, (D,), D, jnp.float32)

  def project_keys(self, keys_BSA):
    """The step-independent projections of the encoder frames: {'k': [B, S, D]} (mocha: and 'ck')."""
    proj = lambda w: jnp.einsum('BSA,AD->BSD', keys_BSA, w[...], preferred_element_type=jnp.float32)
    out = {'k': proj(self.w_k)}
    if self.kind == 'mocha':
      out['ck'] = proj(self.cw_k)
    return out

  def initial_state(self, mask_BS):
    """The attention state before the first output step ({} for dot and additive)."""
    mask = mask_BS.astype(jnp.float32)
    if self.kind == 'location':
      return {'prev': mask / jnp.maximum(mask.sum(-1, keepdims=True), 1.0)}
    if self.kind == 'coverage':
      return {'coverage': jnp.zeros_like(mask)}
    if self.kind == 'mocha':
      return {'prev': jnp.zeros_like(mask).at[:, 0].set(1.0) * mask[:, :1]}
    return {}

  def energies(self, query_BQ, keys, state, *, noise_BS=None):
    """Energies [B, S] before masking (mocha: the monotonic energy m, selection logits)."""
    q_BD = jnp.einsum('BQ,QD->BD', query_BQ, self.w_q[...], preferred_element_type=jnp.float32)
    if self.kind == 'dot':
      return jnp.einsum('BD,BSD->BS', jnp.tanh(q_BD), jnp.tanh(keys['k']))
    q_BD = q_BD + self.b[...]
    if self.kind == 'location':
      extra = jnp.einsum('BSC,CD->BSD', location_features(state['prev'], self.conv[...]), self.u[...])
      return additive_energy(q_BD, keys['k'], self.v[...], extra)
    if self.kind == 'coverage':
      return additive_energy(q_BD, keys['k'], self.v[...], state['coverage'][..., None] * self.w_c[...])
    if self.kind == 'mocha':
      v = self.g[...] * self.v[...] / jnp.linalg.norm(self.v[...])
      m_BS = additive_energy(q_BD, keys['k'], v) + self.r[...]
      return m_BS if noise_BS is None else m_BS + noise_BS
    return additive_energy(q_BD, keys['k'], self.v[...])

  def step(self, query_BQ, keys, values_BSA, mask_BS, state, *, hard: bool = False, noise_BS=None):
    """query [B, Q], keys from project_keys, values [B, S, A], mask [B, S] -> (context [B, A], weights [B, S],
    state). hard: MoChA's test-time hard monotonic attention; noise_BS: MoChA's pre-sigmoid training noise."""
    e_BS = self.energies(query_BQ, keys, state, noise_BS=noise_BS)
    if self.kind == 'mocha':
      p_BS = jnp.where(mask_BS, jax.nn.sigmoid(e_BS), 0.0)
      alpha_BS = (hard_alignment if hard else expected_alignment)(p_BS, state['prev'])
      cq_BD = jnp.einsum('BQ,QD->BD', query_BQ, self.cw_q[...], preferred_element_type=jnp.float32) + self.cb[...]
      w_BS = chunk_attention(alpha_BS, additive_energy(cq_BD, keys['ck'], self.cv[...]), mask_BS, self.chunk_size)
      state = {'prev': alpha_BS}
    else:
      w_BS = masked_softmax(e_BS, mask_BS)
      if self.kind == 'location':
        state = {'prev': w_BS}
      elif self.kind == 'coverage':
        state = {'coverage': state['coverage'] + w_BS}
    context_BA = jnp.einsum('BS,BSA->BA', w_BS, values_BSA.astype(jnp.float32))
    return context_BA.astype(values_BSA.dtype), w_BS, state
