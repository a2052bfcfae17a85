"""ASR decoding: the step functions of models.decoding's search (attention and joint CTC/attention) and the
compiled `decode` behind ASR.decode.

Joint decoding ranks hypotheses by (1 - ctc_weight) log p_att + ctc_weight log p_ctc-prefix (ctc.prefix_scores).
Dimension letters as in models/asr.py.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research import layers
from attention_research.attention import masks
from attention_research.models import ctc, decoding


def search_init(model, memory, frame_lengths, ctc_logp, ctc_weight, *, max_length, pre_beam=None):
  """decoding.search's init: the decoder's cache, the encoder output and, for joint decoding (ctc_logp given),
  the CTC prefix scorer."""
  B, F, _ = memory.shape
  model.decoder.init_cache(B, max_length)  # tiled to B * W rows with the rest of the state
  state = {'memory': memory, 'memory_mask': masks.padding(frame_lengths, F)}
  if ctc_logp is not None:
    K = model.cfg.vocab_size if pre_beam is None else pre_beam
    state['ctc'] = ctc.joint_init(ctc_logp, frame_lengths, ctc_weight, candidates=K, blank_id=model.cfg.blank_id)
  return state


def search_step(model, tokens, state):
  """decoding.search's step: the decoder's log-probabilities, or joint CTC/attention scores."""
  cfg = model.cfg
  logits = model.decode_step(tokens, state['memory'], state['memory_mask'])
  att = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  if 'ctc' not in state:
    return att, state
  # Tokens CTC never emits: padding, BOS and the blank.
  not_ctc = jnp.zeros((cfg.vocab_size,), bool).at[jnp.asarray([cfg.pad_id, cfg.bos_id, cfg.blank_id])].set(True)
  scores, cs = ctc.joint_scores(state['ctc'], att, tokens, not_ctc=not_ctc, blank_id=cfg.blank_id,
                                eos_id=cfg.eos_id, pad_id=cfg.pad_id)
  return scores, dict(state, ctc=cs)


def search(model, memory, frame_lengths, ctc_logp, *, method, beam_size, max_length, ctc_weight, alpha, pre_beam):
  """Attention greedy or beam search, or joint CTC/attention beam search, over the model's decoder."""
  cfg = model.cfg
  joint = method == 'joint'
  return decoding.search(model, search_init, search_step, memory, frame_lengths, ctc_logp if joint else None,
                         ctc_weight, beam_size=1 if method == 'attention_greedy' else beam_size,
                         max_length=max_length, alpha=alpha, bos_id=cfg.bos_id, eos_id=cfg.eos_id,
                         excluded=(cfg.pad_id, cfg.blank_id), options={'pre_beam': pre_beam if joint else None})


@functools.partial(jax.jit, static_argnames=('graphdef', 'method', 'beam_size', 'max_length', 'alpha', 'pre_beam',
                                             'alignments'))
def decode(graphdef, state, audio, audio_lengths, *, method, beam_size, max_length, ctc_weight, alpha, pre_beam,
           alignments):
  """(tokens [B, L], the last decoder layer's cross-attention [B, H, L, F] with alignments, else None)."""
  model = nnx.merge(graphdef, state)
  cfg = model.cfg
  memory, frame_lengths = model.encode(audio, audio_lengths)
  ctc_logp = jax.nn.log_softmax(model.ctc_head(memory).astype(jnp.float32), axis=-1)
  if method == 'ctc_greedy':
    tokens = ctc.greedy(ctc_logp, frame_lengths, blank_id=cfg.blank_id, pad_id=cfg.pad_id)[0]
    F = tokens.shape[1]
    tokens = tokens[:, :max_length] if max_length <= F else jnp.pad(tokens, ((0, 0), (0, max_length - F)))
  else:
    tokens = search(model, memory, frame_lengths, ctc_logp, method=method, beam_size=beam_size,
                    max_length=max_length, ctc_weight=ctc_weight, alpha=alpha, pre_beam=pre_beam)
  if not alignments:
    return tokens, None
  targets_in = jnp.concatenate([jnp.full((tokens.shape[0], 1), cfg.bos_id, tokens.dtype), tokens[:, :-1]], 1)
  _, maps = layers.capture_attention(type(model).decode_targets, model, targets_in, memory, frame_lengths)
  cross = maps['cross'][-1]
  return tokens, jnp.where((tokens != cfg.pad_id)[:, None, :, None], cross, 0.0)
