"""Image captioning with attention over image regions: Show, Attend and Tell (Xu et al. 2015) and a
Transformer-decoder option.

Encoder: a small conv net ('conv': two stride-2 3x3 convolutions, then average pooling to the region grid)
or a patch embedding ('patch': one patch per region), plus a learned embedding of each region's position.
Either gives R = grid * grid region features a [B, R, F].

'lstm' decoder (soft attention, Xu et al. 2015, section 3.1.2 and 4.2.1), one step with lstm_query='previous':
  alpha_t = softmax_r(score(h_{t-1}, a_r))                   attention from the previous state
  z_t = beta_t * sum_r alpha_tr a_r,  beta_t = sigmoid(f_beta(h_{t-1}))   (gating; beta = 1 without it)
  (h_t, c_t) = LSTM((h_{t-1}, c_{t-1}), [E y_{t-1}; z_t])
  logits = L_o(E y_{t-1} + L_h h_t + L_z z_t)                deep output
with h_0, c_0 = tanh(f_init(mean_r a_r)). lstm_query='current' (Luong et al. 2015's order, with input feeding)
reads the word first and attends from the state that has read it:
  (h_t, c_t) = LSTM((h_{t-1}, c_{t-1}), [E y_{t-1}; z_{t-1}]),  alpha_t = softmax_r(score(h_t, a_r)),  z_0 = 0
  z_t = beta_t * sum_r alpha_tr a_r,  beta_t = sigmoid(f_beta(h_t)),  the same deep output.
lstm_query='top_down' (Anderson et al. 2018's two-layer decoder) attends from an attention LSTM that has read the
word, and a language LSTM reads the glimpse in the same step:
  (h1_t, c1_t) = LSTM_1((h1_{t-1}, c1_{t-1}), [E y_{t-1}; h_{t-1}; mean_r a_r]),  h1_0 = c1_0 = 0
  alpha_t = softmax_r(score(h1_t, a_r)),  z_t = beta_t * sum_r alpha_tr a_r,  beta_t = sigmoid(f_beta(h1_t))
  (h_t, c_t) = LSTM((h_{t-1}, c_{t-1}), [z_t; h1_t]),  the same deep output.
score: 'additive' v . tanh(W_h h + W_a a_r) (Bahdanau; Xu et al.) or 'general' h . W a_r (Luong). On digit_scenes
only 'general' with 'current' names digits above chance within 1000 steps, and only 'top_down' (at 6000 steps)
looks at a digit at the step that names it rather than one step before (docs/vision.md).

'transformer' decoder: pre-LN TransformerBlocks with causal self-attention and cross-attention over the
regions, each with any registered attention variant (self-attention needs one that supports causal
masking); the returned alphas are the last layer's cross-attention weights averaged over heads.

Doubly stochastic regularisation: lambda * sum_r (1 - sum_t alpha_tr)^2 over the real caption steps
encourages the model to look at every region over the course of a caption.

Dimension letters: B batch, T caption length, L generated length, R regions, F region features,
E embedding, H hidden, D transformer width, V vocabulary.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research import attention as attention_lib
from attention_research.layers import (AdditiveAttention, LearnedPositionEmbedding, LuongAttention,
                                       TransformerBlock)
from attention_research.layers.capture import NAME, capture_attention, sow_if_capturing
from attention_research.models import decoding
from attention_research.models._checks import check_positive, freeze_options

ENCODERS = ('conv', 'patch')
DECODERS = ('lstm', 'transformer')
LSTM_SCORES = ('additive', 'general')
LSTM_QUERIES = ('previous', 'current', 'top_down')


@dataclasses.dataclass(frozen=True)
class CaptionerConfig:
  """Sizes and choices of `Captioner`. Token 0 must be padding: the shared decoders never emit it."""
  vocab_size: int
  encoder: str = 'conv'  # 'conv' | 'patch'
  image_size: int = 64  # square images [B, image_size, image_size, channels]
  channels: int = 1
  grid: int = 4  # regions per side: R = grid * grid
  conv_layers: int = 2  # encoder 'conv': stride-2 3x3 convolutions, each halving the map and widening the view
  context_layers: int = 0  # encoder 'conv': stride-1 3x3 convolutions after them, widening the view further
  feature_size: int = 64  # F
  embed_size: int = 64  # E (LSTM decoder)
  hidden_size: int = 128  # LSTM state H, or the transformer width D
  attention_size: int | None = None  # the LSTM decoder's additive attention size; default hidden_size
  lstm_score: str = 'additive'  # the LSTM decoder's attention score: 'additive' | 'general' (module docstring)
  lstm_query: str = 'previous'  # 'previous': attend from h_{t-1} (Xu et al.) | 'current': from h_t, input feeding
  # | 'top_down': from an attention LSTM below the language LSTM (Anderson et al.)
  decoder: str = 'lstm'  # 'lstm' | 'transformer'
  num_layers: int = 2  # transformer decoder
  num_heads: int = 4
  mlp_dim: int | None = None  # default 4 * hidden_size
  attention: str = attention_lib.DEFAULT_VARIANT  # the transformer decoder's cross-attention variant
  attention_options: Any = ()  # its variant options (mapping or (key, value) pairs)
  self_attention: str = attention_lib.DEFAULT_VARIANT  # the transformer decoder's causal self-attention variant
  self_attention_options: Any = ()
  doubly_stochastic: float = 1.0  # lambda of the doubly stochastic attention regulariser
  gating: bool = True  # Xu et al.'s gating scalar beta on the context (LSTM decoder)
  dropout: float = 0.0
  max_length: int = 20  # longest caption (the transformer's position table)
  pad_id: int = 0
  bos_id: int = 1
  eos_id: int = 2

  def __post_init__(self):
    if not isinstance(self.conv_layers, int) or self.conv_layers < 2:
      raise ValueError(f'conv_layers must be an int >= 2; got {self.conv_layers!r}.')
    if not isinstance(self.context_layers, int) or self.context_layers < 0:
      raise ValueError(f'context_layers must be an int >= 0; got {self.context_layers!r}.')
    for name in ('vocab_size', 'image_size', 'channels', 'grid', 'feature_size', 'embed_size', 'hidden_size',
                 'num_layers', 'num_heads', 'max_length'):
      check_positive(name, getattr(self, name))
    for name in ('attention_size', 'mlp_dim'):
      check_positive(name, getattr(self, name), allow_none=True)
    if self.encoder not in ENCODERS:
      raise ValueError(f'unknown encoder {self.encoder!r}; known: {ENCODERS}.')
    if self.decoder not in DECODERS:
      raise ValueError(f'unknown decoder {self.decoder!r}; known: {DECODERS}.')
    if self.lstm_score not in LSTM_SCORES:
      raise ValueError(f'unknown lstm_score {self.lstm_score!r}; known: {LSTM_SCORES}.')
    if self.lstm_query not in LSTM_QUERIES:
      raise ValueError(f'unknown lstm_query {self.lstm_query!r}; known: {LSTM_QUERIES}.')
    down = 2 ** self.conv_layers
    if self.encoder == 'conv' and (self.image_size % down or (self.image_size // down) % self.grid):
      raise ValueError(f"encoder 'conv' downsamples by {down} and then pools to the grid: image_size="
                       f'{self.image_size} must be a multiple of {down} * grid = {down} * {self.grid}.')
    if self.encoder == 'patch' and self.image_size % self.grid:
      raise ValueError(f"encoder 'patch' cuts the image into grid x grid patches: image_size={self.image_size} "
                       f'must be a multiple of grid={self.grid}.')
    if not attention_lib.get(self.attention).bidirectional:  # ValueError naming an unknown variant too
      attention_lib.check_cross(self.attention)  # a recurrence has no cross form (one key per query position)
    if not attention_lib.get(self.self_attention).causal:
      raise ValueError(f'self_attention={self.self_attention!r} does not support causal masking; causal '
                       f'variants: {sorted(n for n, v in attention_lib.VARIANTS.items() if v.causal)}.')
    if self.decoder == 'transformer' and self.hidden_size % self.num_heads:
      raise ValueError(f'hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}.')
    if isinstance(self.doubly_stochastic, bool) or not isinstance(self.doubly_stochastic, (int, float)) \
        or self.doubly_stochastic < 0:
      raise ValueError(f'doubly_stochastic must be a number >= 0; got {self.doubly_stochastic!r}.')
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f'dropout must be in [0, 1); got {self.dropout!r}.')
    if self.pad_id != 0:
      raise ValueError(f'pad_id must be 0 (the shared greedy and beam search treat token 0 as padding); '
                       f'got {self.pad_id!r}.')
    ids = {'pad_id': self.pad_id, 'bos_id': self.bos_id, 'eos_id': self.eos_id}
    for name, value in ids.items():
      if not isinstance(value, int) or not 0 <= value < self.vocab_size:
        raise ValueError(f'{name}={value!r} must be an int in [0, vocab_size={self.vocab_size}).')
    if len(set(ids.values())) != 3:
      raise ValueError(f'pad_id, bos_id and eos_id must differ; got {ids}.')
    object.__setattr__(self, 'attention_options', freeze_options(self.attention_options, 'attention_options'))
    object.__setattr__(self, 'self_attention_options',
                       freeze_options(self.self_attention_options, 'self_attention_options'))

  @property
  def num_regions(self) -> int:
    return self.grid * self.grid


class RegionEncoder(nnx.Module):
  """image [B, H, W, C] -> region features [B, R, F], regions in row-major order over the grid."""

  def __init__(self, cfg: CaptionerConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    F = cfg.feature_size
    if cfg.encoder == 'conv':
      self.conv1 = nnx.Conv(cfg.channels, max(F // 2, 1), (3, 3), strides=2, rngs=rngs)
      self.conv2 = nnx.Conv(max(F // 2, 1), F, (3, 3), strides=2, rngs=rngs)
      self.convs = nnx.List([nnx.Conv(F, F, (3, 3), strides=2, rngs=rngs) for _ in range(cfg.conv_layers - 2)]
                            + [nnx.Conv(F, F, (3, 3), rngs=rngs) for _ in range(cfg.context_layers)])
      self.patch = None
    else:
      p = cfg.image_size // cfg.grid
      self.patch = nnx.Conv(cfg.channels, F, (p, p), strides=p, padding='VALID', rngs=rngs)
      self.conv1 = self.conv2 = None
      self.convs = nnx.List([])
    self.position = nnx.Param(jax.random.normal(rngs.params(), (cfg.num_regions, F)) * 0.02)

  def __call__(self, image):
    cfg = self.cfg
    image = jnp.asarray(image, jnp.float32)
    if image.ndim == 3 and cfg.channels == 1:
      image = image[..., None]
    want = (cfg.image_size, cfg.image_size, cfg.channels)
    if image.ndim != 4 or image.shape[1:] != want:
      raise ValueError(f'image must be [B, {", ".join(map(str, want))}]; got {image.shape}.')
    if self.patch is not None:
      x = self.patch(image)
    else:
      x = jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(image))))
      for conv in self.convs:
        x = jax.nn.relu(conv(x))
      B, Hs, Ws, F = x.shape
      g = cfg.grid
      x = x.reshape(B, g, Hs // g, g, Ws // g, F).mean(axis=(2, 4))
    x = x.reshape(x.shape[0], -1, x.shape[-1])
    return x + self.position[...]


class Captioner(nnx.Module):
  """Region encoder and an attentional LSTM or Transformer caption decoder (see the module docstring)."""

  Config = CaptionerConfig

  def __init__(self, cfg: CaptionerConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    F, E, H, V = cfg.feature_size, cfg.embed_size, cfg.hidden_size, cfg.vocab_size
    self.encoder = RegionEncoder(cfg, rngs=rngs)
    self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs)
    if cfg.decoder == 'lstm':
      self.embed = nnx.Embed(V, E, rngs=rngs)
      self.init_h = nnx.Linear(F, H, rngs=rngs)
      self.init_c = nnx.Linear(F, H, rngs=rngs)
      if cfg.lstm_score == 'additive':
        self.attend = AdditiveAttention(H, F, cfg.attention_size or H, rngs=rngs)
      else:
        self.attend = LuongAttention(H, F, score='general', rngs=rngs)
      self.f_beta = nnx.Linear(H, 1, rngs=rngs) if cfg.gating else None
      if cfg.lstm_query == 'top_down':
        self.attention_cell = nnx.OptimizedLSTMCell(E + H + F, H, rngs=rngs)
        self.cell = nnx.OptimizedLSTMCell(F + H, H, rngs=rngs)
      else:
        self.cell = nnx.OptimizedLSTMCell(E + F, H, rngs=rngs)
      self.out_h = nnx.Linear(H, E, rngs=rngs)  # L_h
      self.out_z = nnx.Linear(F, E, use_bias=False, rngs=rngs)  # L_z
      self.output = nnx.Linear(E, V, rngs=rngs)  # L_o
    else:
      self.embed = nnx.Embed(V, H, rngs=rngs)
      self.position = LearnedPositionEmbedding(cfg.max_length, H, rngs=rngs)
      self_att = dict(variant=cfg.self_attention, variant_options=dict(cfg.self_attention_options),
                      max_length=cfg.max_length)
      cross_att = dict(variant=cfg.attention, variant_options=dict(cfg.attention_options),
                       max_length=cfg.num_regions)
      self.blocks = nnx.List([
          TransformerBlock(H, cfg.num_heads, cfg.mlp_dim or 4 * H, attention=self_att, cross_attention=cross_att,
                           memory_features=F, dropout_rate=cfg.dropout, rngs=rngs)
          for _ in range(cfg.num_layers)])
      self.final_norm = nnx.LayerNorm(H, rngs=rngs)
      self.output = nnx.Linear(H, V, rngs=rngs)

  # --- LSTM decoder
  def _lstm_init(self, regions_BRF):
    mean = regions_BRF.mean(axis=1)
    state = {'h': jnp.tanh(self.init_h(mean)), 'c': jnp.tanh(self.init_c(mean))}
    if self.cfg.lstm_query == 'current':
      state['z'] = jnp.zeros_like(mean)  # the glimpse fed back as the next step's input
    if self.cfg.lstm_query == 'top_down':
      state.update(h1=jnp.zeros_like(state['h']), c1=jnp.zeros_like(state['c']), mean=mean)
    return state

  def _glimpse(self, h, regions_BRF):
    z, alpha = self.attend.context_and_weights(h, regions_BRF)
    if self.f_beta is not None:
      z = jax.nn.sigmoid(self.f_beta(h)) * z
    return z, alpha

  def _lstm_step(self, state, y_emb_BE, regions_BRF):
    """One step: returns (new state, h_t [B, H], z_t [B, F], alpha_t [B, R])."""
    h, c = state['h'], state['c']
    if self.cfg.lstm_query == 'top_down':
      (c1, h1), _ = self.attention_cell((state['c1'], state['h1']),
                                        jnp.concatenate([y_emb_BE, h, state['mean']], -1))
      z, alpha = self._glimpse(h1, regions_BRF)
      (c, h), _ = self.cell((c, h), jnp.concatenate([z, h1], -1))
      return dict(state, h=h, c=c, h1=h1, c1=c1), h, z, alpha
    if self.cfg.lstm_query == 'current':
      (c, h), _ = self.cell((c, h), jnp.concatenate([y_emb_BE, state['z']], -1))
      z, alpha = self._glimpse(h, regions_BRF)
      return {'h': h, 'c': c, 'z': z}, h, z, alpha
    z, alpha = self._glimpse(h, regions_BRF)
    (c, h), _ = self.cell((c, h), jnp.concatenate([y_emb_BE, z], -1))
    return {'h': h, 'c': c}, h, z, alpha

  def _lstm_logits(self, y_emb, h, z, *, deterministic=True):
    return self.output(y_emb + self.out_h(self.dropout(h, deterministic=deterministic)) + self.out_z(z))

  def _lstm_decode(self, regions_BRF, caption_in_BT, *, deterministic):
    y_emb_BTE = self.dropout(self.embed(caption_in_BT), deterministic=deterministic)

    def body(state, y_emb_BE):
      state, h, z, alpha = self._lstm_step(state, y_emb_BE, regions_BRF)
      return state, (h, z, alpha)

    _, (h_TBH, z_TBF, alpha_TBR) = jax.lax.scan(body, self._lstm_init(regions_BRF),
                                                jnp.swapaxes(y_emb_BTE, 0, 1))
    h_BTH, z_BTF, alpha_BTR = (jnp.swapaxes(x, 0, 1) for x in (h_TBH, z_TBF, alpha_TBR))
    sow_if_capturing(self, NAME, alpha_BTR)  # after the scan: a sow inside its body would leak tracers
    return self._lstm_logits(y_emb_BTE, h_BTH, z_BTF, deterministic=deterministic), alpha_BTR

  # --- Transformer decoder
  def _transformer_decode(self, regions_BRF, caption_in_BT, *, deterministic, with_alphas=True):
    """(logits [B, T, V], alphas [B, T, R] or None): the alphas are the last block's cross-attention, read
    through a capture of this model's own attention weights."""
    if not with_alphas:
      return self._transformer_logits(regions_BRF, caption_in_BT, deterministic=deterministic), None
    logits, maps = capture_attention(Captioner._transformer_logits, self, regions_BRF, caption_in_BT,
                                     deterministic=deterministic)
    return logits, maps['cross'][-1].mean(axis=1).astype(jnp.float32)  # [B, N, T, R] -> [B, T, R]

  def _transformer_logits(self, regions_BRF, caption_in_BT, *, deterministic):
    T = caption_in_BT.shape[1]
    if T > self.cfg.max_length:
      raise ValueError(f'caption length {T} exceeds max_length={self.cfg.max_length}.')
    x = self.embed(caption_in_BT) * jnp.sqrt(jnp.float32(self.cfg.hidden_size)) + self.position(jnp.arange(T))
    x = self.dropout(x, deterministic=deterministic)
    for block in self.blocks:
      # Captions are right-padded, so the causal mask alone keeps padding out of every real position.
      x = block(x, is_causal=True, memory=regions_BRF, deterministic=deterministic)
    return self.output(self.final_norm(x))

  # --- public API
  def encode(self, image, *, deterministic=True):
    """image [B, H, W, C] -> region features [B, R, F]."""
    return self.dropout(self.encoder(image), deterministic=deterministic)

  def __call__(self, image, caption_in, *, deterministic=True):
    """image [B, H, W, C], caption_in [B, T] (BOS + caption[:-1]) -> (logits [B, T, V], alphas [B, T, R])."""
    caption_in = jnp.asarray(caption_in)
    if caption_in.ndim != 2 or caption_in.shape[0] != jnp.shape(image)[0]:
      raise ValueError(f'caption_in must be [B, T] with the batch of image {jnp.shape(image)}; '
                       f'got {caption_in.shape}.')
    regions = self.encode(image, deterministic=deterministic)
    if self.cfg.decoder == 'lstm':
      return self._lstm_decode(regions, caption_in, deterministic=deterministic)
    return self._transformer_decode(regions, caption_in, deterministic=deterministic)

  def regularizer(self, alphas, caption_mask):
    """Doubly stochastic attention penalty, lambda * sum_r (1 - sum_t alpha_tr)^2, averaged over the batch.

    alphas [B, T, R]; caption_mask [B, T], nonzero on real (non-pad) caption steps.
    """
    alphas = jnp.asarray(alphas, jnp.float32)
    caption_mask = jnp.asarray(caption_mask)
    if alphas.ndim != 3 or caption_mask.shape != alphas.shape[:2]:
      raise ValueError(f'expected alphas [B, T, R] and caption_mask [B, T]; got {alphas.shape} and '
                       f'{caption_mask.shape}.')
    totals_BR = jnp.einsum('BTR,BT->BR', alphas, caption_mask.astype(jnp.float32))
    return self.cfg.doubly_stochastic * jnp.mean(jnp.sum((1.0 - totals_BR) ** 2, axis=-1))

  def generate(self, image, *, max_length: int | None = None, beam_size: int = 1, alpha: float = 0.6):
    """Greedy (beam_size=1) or beam search with GNMT length penalty alpha.

    Returns (tokens [B, L] with EOS then 0-padding, alphas [B, L, R]: each emitted word's attention over the
    regions, 0 after EOS). L = max_length, default cfg.max_length.
    """
    max_length = self.cfg.max_length if max_length is None else max_length
    check_positive('max_length', max_length)
    check_positive('beam_size', beam_size)
    if self.cfg.decoder == 'transformer' and max_length > self.cfg.max_length:
      raise ValueError(f'max_length={max_length} exceeds the position table of cfg.max_length='
                       f'{self.cfg.max_length}.')
    graphdef, params = nnx.split(self)
    return _generate(graphdef, params, jnp.asarray(image, jnp.float32), max_length=max_length,
                     beam_size=beam_size, alpha=float(alpha))

  def init_search_state(self, image, *, max_length: int | None = None):
    """The decoding state for `step_fn` ([B, ...] leaves); the transformer decoder needs max_length."""
    regions = self.encode(image)
    if self.cfg.decoder == 'lstm':
      return dict(self._lstm_init(regions), regions=regions)
    # No key/value cache: the prefix is re-decoded each step, which works for every causal variant
    # (linear-time ones accept key-padding masks only, not the cache's [T, L] mask).
    B = regions.shape[0]
    max_length = self.cfg.max_length if max_length is None else max_length
    return {'regions': regions, 'tokens': jnp.zeros((B, max_length), jnp.int32), 'pos': jnp.zeros((B,), jnp.int32)}

  def step_fn(self):
    """A pure decoding.StepFn over this model's current parameters: (tokens [R], state) -> (log_probs, state)."""
    return decoding.bind(self, Captioner.search_step)

  def search_step(self, tokens_R, state):
    """One decoding step for greedy and beam search: (tokens [R], state) -> (log-probs [R, V], state)."""
    regions = state['regions']
    if self.cfg.decoder == 'lstm':
      y_emb = self.embed(tokens_R)
      lstm_state, h, z, _ = self._lstm_step({k: v for k, v in state.items() if k != 'regions'}, y_emb, regions)
      logits = self._lstm_logits(y_emb, h, z)
      return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), dict(lstm_state, regions=regions)
    rows = jnp.arange(tokens_R.shape[0])
    prefix = state['tokens'].at[rows, state['pos']].set(tokens_R)
    # Causal attention: positions after pos see nothing of the prefix's future, so the zeros there are harmless.
    logits, _ = self._transformer_decode(regions, prefix, deterministic=True, with_alphas=False)
    logits = logits[rows, state['pos']]
    return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), {'regions': regions, 'tokens': prefix,
                                                                     'pos': state['pos'] + 1}

  def _search(self, image, *, max_length, beam_size, alpha):
    cfg = self.cfg
    tokens = decoding.search(self, Captioner.init_search_state, Captioner.search_step, image, beam_size=beam_size,
                             max_length=max_length, alpha=alpha, bos_id=cfg.bos_id, eos_id=cfg.eos_id)
    # The search returns no state, so the alignments come from replaying the chosen tokens: the same
    # numbers the search saw, since decoding is deterministic.
    return tokens, self.alignments(image, tokens)

  def alignments(self, image, tokens):
    """Attention over regions [B, L, R] with which the model emits tokens [B, L] (teacher-forced replay)."""
    tokens = jnp.asarray(tokens)
    caption_in = jnp.concatenate([jnp.full_like(tokens[:, :1], self.cfg.bos_id), tokens[:, :-1]], axis=1)
    _, alphas = self(image, caption_in)
    return jnp.where((tokens != self.cfg.pad_id)[..., None], alphas, 0.0)


@functools.partial(jax.jit, static_argnames=('graphdef', 'max_length', 'beam_size', 'alpha'))
def _generate(graphdef, params, image, **kwargs):
  return nnx.merge(graphdef, params)._search(image, **kwargs)  # pylint: disable=protected-access

