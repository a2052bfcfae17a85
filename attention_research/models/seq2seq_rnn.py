"""RNN encoder-decoder with attention (or without): the baseline the Transformer replaced.

Encoder: a bidirectional GRU or LSTM over the source embeddings; the annotation of source position s is
[forward h_s; backward h_s] (Bahdanau et al. 2015). Padded positions (token == pad_id) neither update the
recurrent state nor appear as attention keys, so padding a source never changes the results for its real
tokens.

Decoder, one step (teacher forcing scans it over the target; generation calls it once per token):
  'bahdanau' (Bahdanau et al. 2015): the context is computed from the previous state,
      c_t = attend(s_{t-1}), s_t = cell(s_{t-1}, [E y_{t-1}; c_t]), logits = W_o maxout(U [s_t; c_t; E y_{t-1}]).
  'luong' (Luong et al. 2015): the context is computed from the current state,
      h_t = cell(h_{t-1}, [E y_{t-1}; h~_{t-1}]) (input feeding; without it cell(h_{t-1}, E y_{t-1})),
      c_t = attend(h_t), h~_t = tanh(W_c [c_t; h_t]), logits = W_s h~_t.
  'none' (Cho et al. 2014; Sutskever et al. 2014): no attention. The context of every step is the same fixed
      vector c = [last forward state; first backward state], the encoder's final states, so the whole source
      must pass through it; otherwise the step is Bahdanau's: s_t = cell(s_{t-1}, [E y_{t-1}; c]),
      logits = W_o maxout(U [s_t; c; E y_{t-1}]). It has no alignment to capture or plot.
The initial decoder state is tanh(W [last forward state; first backward state]).

Dropout acts on the embeddings, on the annotations and on the output layer's input, all outside the
recurrence (so the scans stay free of random state).

Dimension letters: B batch, S source length, T target length, L generated length, R decoded rows
(batch * beam), E embedding, H hidden, A annotation (2 H), V vocabulary.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research.layers import LUONG_SCORES, AdditiveAttention, LuongAttention
from attention_research.layers.capture import NAME, capture_attention, sow_if_capturing
from attention_research.models import decoding
from attention_research.models._checks import check_positive

CELLS = ('gru', 'lstm')
ATTENTIONS = ('bahdanau', 'luong', 'none')


@dataclasses.dataclass(frozen=True)
class RNNSeq2SeqConfig:
  """Sizes and choices of `RNNSeq2Seq`. Token 0 must be padding: the shared decoders never emit it."""
  vocab_size: int  # source vocabulary
  target_vocab_size: int | None = None  # None: the source vocabulary's size (separate embeddings still)
  embed_size: int = 64
  hidden_size: int = 128  # per encoder direction, and the decoder state
  attention_size: int | None = None  # Bahdanau / Luong 'concat' hidden size; default hidden_size
  cell: str = 'gru'  # 'gru' | 'lstm'
  attention: str = 'bahdanau'  # 'bahdanau' | 'luong' | 'none' (the final encoder state as the only context)
  luong_score: str = 'general'  # 'dot' | 'general' | 'concat' (Luong only)
  input_feeding: bool = True  # Luong only; Bahdanau always feeds its context to the cell
  dropout: float = 0.0
  pad_id: int = 0
  bos_id: int = 1
  eos_id: int = 2

  def __post_init__(self):
    for name in ('vocab_size', 'embed_size', 'hidden_size'):
      check_positive(name, getattr(self, name))
    for name in ('target_vocab_size', 'attention_size'):
      check_positive(name, getattr(self, name), allow_none=True)
    if self.cell not in CELLS:
      raise ValueError(f'unknown cell {self.cell!r}; known: {CELLS}.')
    if self.attention not in ATTENTIONS:
      raise ValueError(f'unknown attention {self.attention!r}; known: {ATTENTIONS}.')
    if self.luong_score not in LUONG_SCORES:
      raise ValueError(f'unknown luong_score {self.luong_score!r}; known: {LUONG_SCORES}.')
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f'dropout must be in [0, 1); got {self.dropout!r}.')
    _check_special_ids(self.pad_id, self.bos_id, self.eos_id, self.target_vocab)

  @property
  def target_vocab(self) -> int:
    return self.vocab_size if self.target_vocab_size is None else self.target_vocab_size


def _check_special_ids(pad_id, bos_id, eos_id, vocab_size):
  if pad_id != 0:
    raise ValueError(f'pad_id must be 0 (the shared greedy and beam search treat token 0 as padding); '
                     f'got {pad_id!r}.')
  ids = {'pad_id': pad_id, 'bos_id': bos_id, 'eos_id': eos_id}
  for name, value in ids.items():
    if not isinstance(value, int) or not 0 <= value < vocab_size:
      raise ValueError(f'{name}={value!r} must be an int in [0, {vocab_size}) (the target vocabulary).')
  if len(set(ids.values())) != 3:
    raise ValueError(f'pad_id, bos_id and eos_id must differ; got {ids}.')


def _scan(cell, carry, xs_TBE, valid_TB, *, reverse=False):
  """Runs cell over time; where valid is False the carry is kept and the output is 0."""
  def body(carry, x):
    x_BE, valid_B = x
    new_carry, y = cell(carry, x_BE)
    keep = lambda new, old: jnp.where(valid_B[:, None], new, old)
    return jax.tree.map(keep, new_carry, carry), jnp.where(valid_B[:, None], y, 0.0)
  return jax.lax.scan(body, carry, (xs_TBE, valid_TB), reverse=reverse)


def _make_cell(kind, in_features, hidden, rngs):
  cls = nnx.GRUCell if kind == 'gru' else nnx.OptimizedLSTMCell
  return cls(in_features, hidden, rngs=rngs)


def _zero_carry(kind, batch, hidden):
  h = jnp.zeros((batch, hidden), jnp.float32)
  return h if kind == 'gru' else (h, h)  # LSTM carry is (c, h)


class RNNSeq2Seq(nnx.Module):
  """Bidirectional GRU/LSTM encoder and an attentional GRU/LSTM decoder (see the module docstring)."""

  Config = RNNSeq2SeqConfig

  def __init__(self, cfg: RNNSeq2SeqConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    E, H, A = cfg.embed_size, cfg.hidden_size, 2 * cfg.hidden_size
    att = cfg.attention_size or H
    self.src_embed = nnx.Embed(cfg.vocab_size, E, rngs=rngs)
    self.tgt_embed = nnx.Embed(cfg.target_vocab, E, rngs=rngs)
    self.enc_fwd = _make_cell(cfg.cell, E, H, rngs)
    self.enc_bwd = _make_cell(cfg.cell, E, H, rngs)
    self.init_h = nnx.Linear(A, H, rngs=rngs)
    self.init_c = nnx.Linear(A, H, rngs=rngs) if cfg.cell == 'lstm' else None
    self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs)
    if cfg.attention in ('bahdanau', 'none'):
      self.attend = AdditiveAttention(H, A, att, rngs=rngs) if cfg.attention == 'bahdanau' else None
      self.dec_cell = _make_cell(cfg.cell, E + A, H, rngs)
      self.pre_output = nnx.Linear(H + A + E, 2 * H, rngs=rngs)  # maxout with pool size 2
      self.key_proj = self.combine = None
    else:
      # 'dot' needs keys of the decoder's width; the annotations are 2 H wide, so project them.
      self.key_proj = nnx.Linear(A, H, use_bias=False, rngs=rngs) if cfg.luong_score == 'dot' else None
      self.attend = LuongAttention(H, H if cfg.luong_score == 'dot' else A, score=cfg.luong_score,
                                   hidden_features=att, rngs=rngs)
      self.dec_cell = _make_cell(cfg.cell, E + (H if cfg.input_feeding else 0), H, rngs)
      self.combine = nnx.Linear(A + H, H, use_bias=False, rngs=rngs)  # W_c
      self.pre_output = None
    self.output = nnx.Linear(H, cfg.target_vocab, rngs=rngs)

  # --- encoder
  def encode(self, inputs_BS, *, deterministic=True):
    """Returns memory: annotations [B, S, A], attention keys [B, S, A|H|att], mask [B, S], summary [B, A]; initial carry."""
    cfg = self.cfg
    inputs_BS = jnp.asarray(inputs_BS)
    if inputs_BS.ndim != 2:
      raise ValueError(f'inputs must be [B, S] token ids; got shape {inputs_BS.shape}.')
    B = inputs_BS.shape[0]
    mask_BS = inputs_BS != cfg.pad_id
    x_TBE = jnp.swapaxes(self.dropout(self.src_embed(inputs_BS), deterministic=deterministic), 0, 1)
    valid_TB = mask_BS.T
    zero = _zero_carry(cfg.cell, B, cfg.hidden_size)
    _, fwd_TBH = _scan(self.enc_fwd, zero, x_TBE, valid_TB)
    _, bwd_TBH = _scan(self.enc_bwd, zero, x_TBE, valid_TB, reverse=True)
    annotations = jnp.swapaxes(jnp.concatenate([fwd_TBH, bwd_TBH], -1), 0, 1)  # [B, S, A]
    # Last real forward state and first backward state (the backward scan starts at the last real token).
    lengths = mask_BS.sum(-1)
    last_fwd = jnp.take_along_axis(annotations[..., :cfg.hidden_size],
                                   jnp.maximum(lengths - 1, 0)[:, None, None], axis=1)[:, 0]
    summary = jnp.concatenate([last_fwd, annotations[:, 0, cfg.hidden_size:]], -1)
    h0 = jnp.tanh(self.init_h(summary))
    carry = h0 if cfg.cell == 'gru' else (jnp.tanh(self.init_c(summary)), h0)
    annotations = self.dropout(annotations, deterministic=deterministic)
    keys = annotations if self.key_proj is None else self.key_proj(annotations)
    if cfg.attention == 'bahdanau':
      # W_k m_s does not depend on the decoder step: projected once here, not at every step (Bahdanau et al.
      # 2015, appendix A.1.2); _bahdanau_context adds W_q s_{t-1}.
      keys = jnp.einsum('BSA,AD->BSD', annotations, self.attend.w_k[...], preferred_element_type=jnp.float32)
    state = {'carry': carry, 'feed': jnp.zeros((B, cfg.hidden_size), jnp.float32)}
    return {'values': annotations, 'keys': keys, 'mask': mask_BS, 'summary': summary}, state

  # --- decoder
  def _step(self, state, y_emb_BE, memory):
    """One decoder step. Returns (new state, output-layer features, attention weights [B, S] or None)."""
    cfg = self.cfg
    carry, feed = state['carry'], state['feed']
    hidden = lambda c: c if cfg.cell == 'gru' else c[1]
    if cfg.attention in ('bahdanau', 'none'):
      if cfg.attention == 'none':
        ctx, w = memory['summary'], None
      else:
        ctx, w = self._bahdanau_context(hidden(carry), memory)
      carry, h = self.dec_cell(carry, jnp.concatenate([y_emb_BE, ctx], -1))
      features = jnp.concatenate([h, ctx, y_emb_BE], -1)
    else:
      x = jnp.concatenate([y_emb_BE, feed], -1) if cfg.input_feeding else y_emb_BE
      carry, h = self.dec_cell(carry, x)
      ctx, w = self.attend.context_and_weights(h, memory['keys'], memory['values'], mask=memory['mask'])
      feed = features = jnp.tanh(self.combine(jnp.concatenate([ctx, h], -1)))
    return {'carry': carry, 'feed': feed}, features, w

  def _bahdanau_context(self, h_BH, memory):
    """e_s = v . tanh(W_q h + W_k m_s) over the pre-projected keys; (context [B, A], weights [B, S])."""
    qa_BD = jnp.einsum('BH,HD->BD', h_BH, self.attend.w_q[...], preferred_element_type=jnp.float32)
    e_BS = jnp.einsum('BSD,D->BS', jnp.tanh(qa_BD[:, None] + memory['keys']), self.attend.v[...].astype(jnp.float32))
    e_BS = jnp.where(memory['mask'], e_BS, -1e30)
    w_BS = jax.nn.softmax(e_BS.astype(jnp.float32), axis=-1)
    w_BS = jnp.where(memory['mask'].any(-1, keepdims=True), w_BS, 0.0)  # an empty source attends to nothing
    ctx_BA = jnp.einsum('BS,BSA->BA', w_BS, memory['values'].astype(jnp.float32))
    return ctx_BA.astype(memory['values'].dtype), w_BS

  def _logits(self, features, *, deterministic=True):
    x = self.dropout(features, deterministic=deterministic)
    if self.pre_output is not None:
      x = self.pre_output(x)
      x = jnp.max(x.reshape(x.shape[:-1] + (-1, 2)), axis=-1)  # maxout, pool 2
    return self.output(x)

  def __call__(self, inputs, targets_in, *, deterministic=True):
    """inputs [B, S], targets_in [B, T] (BOS-shifted targets) -> logits [B, T, V].

    The alignment [B, T, S] is sown after the scan (a sow inside the scan body would leak tracers), so
    layers.capture_attention reads it as {'attention': [B, T, S]}.
    """
    targets_in = jnp.asarray(targets_in)
    if targets_in.ndim != 2 or targets_in.shape[0] != jnp.shape(inputs)[0]:
      raise ValueError(f'targets_in must be [B, T] with the batch of inputs {jnp.shape(inputs)}; '
                       f'got {targets_in.shape}.')
    memory, state = self.encode(inputs, deterministic=deterministic)
    y_TBE = jnp.swapaxes(self.dropout(self.tgt_embed(targets_in), deterministic=deterministic), 0, 1)

    def body(state, y_emb_BE):
      state, features, w = self._step(state, y_emb_BE, memory)
      return state, (features, w)

    _, (features_TBF, w_TBS) = jax.lax.scan(body, state, y_TBE)
    if w_TBS is not None:
      sow_if_capturing(self, NAME, jnp.swapaxes(w_TBS, 0, 1))
    return self._logits(jnp.swapaxes(features_TBF, 0, 1), deterministic=deterministic)

  def generate(self, inputs, *, max_length: int, beam_size: int = 1, alpha: float = 0.6):
    """Greedy (beam_size=1) or beam search. Returns tokens [B, max_length] (EOS then 0-padding)."""
    return self._generate(inputs, max_length=max_length, beam_size=beam_size, alpha=alpha, alignments=False)[0]

  def generate_with_alignments(self, inputs, *, max_length: int, beam_size: int = 1, alpha: float = 0.6):
    """`generate`, and the attention weights [B, max_length, S] of each emitted token (0 after EOS):
    (tokens, weights). Greedy collects them step by step; beam search replays its tokens."""
    return self._generate(inputs, max_length=max_length, beam_size=beam_size, alpha=alpha, alignments=True)

  def _generate(self, inputs, *, max_length, beam_size, alpha, alignments):
    cfg = self.cfg
    if not isinstance(beam_size, int) or beam_size < 1:
      raise ValueError(f'beam_size must be a positive int; got {beam_size!r}.')
    if not isinstance(max_length, int) or max_length < 1:
      raise ValueError(f'max_length must be a positive int; got {max_length!r}.')
    if alignments and cfg.attention == 'none':
      raise ValueError("attention='none' has no alignments: its decoder sees only the encoder's final states.")
    graphdef, params = nnx.split(self)
    return _generate(graphdef, params, jnp.asarray(inputs), max_length=max_length, beam_size=beam_size,
                     alpha=float(alpha), alignments=bool(alignments))

  def init_search_state(self, inputs, *, max_length: int | None = None):
    """The decoding state for `step_fn` ([B, ...] leaves). With max_length, the state also collects each
    step's attention weights [B, max_length, S] (for greedy; beam search would reorder them every step)."""
    memory, state = self.encode(inputs, deterministic=True)
    B, S = memory['mask'].shape
    state = dict(state, memory=memory, pos=jnp.zeros((B,), jnp.int32))
    if max_length is not None:
      state['weights'] = jnp.zeros((B, max_length, S), jnp.float32)
    return state

  def step_fn(self):
    """A pure decoding.StepFn over this model's current parameters: (tokens [R], state) -> (log_probs, state)."""
    return decoding.bind(self, RNNSeq2Seq.search_step)

  def search_step(self, tokens_R, state):
    """One decoding step for greedy and beam search: (tokens [R], state) -> (log-probs [R, V], state)."""
    dec_state = {'carry': state['carry'], 'feed': state['feed']}
    dec_state, features, w_RS = self._step(dec_state, self.tgt_embed(tokens_R), state['memory'])
    log_probs = jax.nn.log_softmax(self._logits(features).astype(jnp.float32), axis=-1)
    state = dict(state, **dec_state, pos=state['pos'] + 1)
    if 'weights' in state and w_RS is not None:
      state['weights'] = state['weights'].at[jnp.arange(tokens_R.shape[0]), state['pos'] - 1].set(w_RS)
    return log_probs, state

  def _search_init(self, inputs, *, max_length, weights: bool):
    return self.init_search_state(inputs, max_length=max_length if weights else None)

  def _search(self, inputs, *, max_length, beam_size, alpha, alignments):
    """(tokens [B, L], their alignments [B, L, S] when asked for, else None)."""
    cfg = self.cfg
    # Greedy search collects the weights as it goes; beam search reorders its rows every step, so its
    # alignments are recomputed by replaying the chosen tokens (the same numbers the search saw, since
    # decoding is deterministic).
    greedy_weights = alignments and beam_size == 1
    out = decoding.search(self, RNNSeq2Seq._search_init, RNNSeq2Seq.search_step, inputs, beam_size=beam_size,
                          max_length=max_length, alpha=alpha, bos_id=cfg.bos_id, eos_id=cfg.eos_id,
                          options={'weights': greedy_weights}, return_state=greedy_weights)
    if not alignments:
      return out, None
    tokens, weights = (out[0], out[1]['weights']) if greedy_weights else (out, self.alignments(inputs, tokens=out))
    return tokens, jnp.where((tokens != cfg.pad_id)[..., None], weights, 0.0)

  def alignments(self, inputs, tokens):
    """Attention weights [B, L, S] with which the model emits tokens [B, L] (teacher-forced replay)."""
    if self.cfg.attention == 'none':
      raise ValueError("attention='none' has no alignments: its decoder sees only the encoder's final states.")
    tokens = jnp.asarray(tokens)
    targets_in = jnp.concatenate([jnp.full_like(tokens[:, :1], self.cfg.bos_id), tokens[:, :-1]], axis=1)
    weights = capture_attention(lambda m: m(inputs, targets_in, deterministic=True), self)[1]['attention']
    return jnp.where((tokens != self.cfg.pad_id)[..., None], weights, 0.0)


@functools.partial(jax.jit, static_argnames=('graphdef', 'max_length', 'beam_size', 'alpha', 'alignments'))
def _generate(graphdef, params, inputs, **kwargs):
  return nnx.merge(graphdef, params)._search(inputs, **kwargs)  # pylint: disable=protected-access
