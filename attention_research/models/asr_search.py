"""ASR decoding: the step functions of models.decoding's search (attention and joint CTC/attention), CTC prefix
beam search, attention rescoring of its n-best, and the compiled `decode` behind ASR.decode.

Joint decoding ranks hypotheses by (1 - ctc_weight) log p_att + ctc_weight log p_ctc-prefix (ctc.prefix_scores).
CTC prefix beam search is the same label-synchronous beam search with CTC alone: a hypothesis g scores its exact
prefix probability log p_ctc(g...) while it grows and log p_ctc(g) once it ends, so a beam holding every prefix
finds the most probable label sequence (ESPnet's search with ctc_weight = 1). Rescoring (WeNet's attention
rescoring) ranks that n-best by (1 - ctc_weight) log p_att(g, eos) + ctc_weight log p_ctc(g), the attention
decoder teacher-forced on each hypothesis.
Dimension letters as in models/asr.py; W beam.
"""

from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research import layers
from attention_research.attention import masks
from attention_research.models import ctc, decoding


def search_init(model, memory, frame_lengths, ctc_logp, ctc_weight, *, max_length, pre_beam=None, margin=None):
  """decoding.search's init: the decoder's cache, the encoder output and, for joint decoding (ctc_logp given),
  the CTC prefix scorer (windowed with a margin)."""
  B, F, _ = memory.shape
  model.decoder.init_cache(B, max_length)  # tiled to B * W rows with the rest of the state
  state = {'memory': memory, 'memory_mask': masks.padding(frame_lengths, F)}
  return with_joint_ctc(model.cfg, state, ctc_logp, frame_lengths, ctc_weight, pre_beam=pre_beam, margin=margin)


def with_joint_ctc(cfg, state, ctc_logp, frame_lengths, ctc_weight, *, pre_beam=None, margin=None):
  """A search state with the CTC prefix scorer added for joint decoding (unchanged when ctc_logp is None)."""
  if ctc_logp is None:
    return state
  K = cfg.vocab_size if pre_beam is None else pre_beam
  return dict(state, ctc=ctc.joint_init(ctc_logp, frame_lengths, ctc_weight, candidates=K, blank_id=cfg.blank_id,
                                        margin=margin))


def search_step(model, tokens, state):
  """decoding.search's step: the decoder's log-probabilities, or joint CTC/attention scores."""
  logits = model.decode_step(tokens, state['memory'], state['memory_mask'])
  att = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return joint_ctc_scores(model.cfg, att, tokens, state)


def joint_ctc_scores(cfg, att, tokens, state):
  """The attention log-probabilities [R, V] joined with the CTC prefix scores when the state carries the scorer
  (see with_joint_ctc): (scores, state)."""
  if 'ctc' not in state:
    return att, state
  # Tokens CTC never emits: padding, BOS and the blank.
  scores, cs = ctc.joint_scores(state['ctc'], att, tokens, not_ctc=_not_ctc(cfg, cfg.vocab_size),
                                blank_id=cfg.blank_id, eos_id=cfg.eos_id, pad_id=cfg.pad_id)
  return scores, dict(state, ctc=cs)


def _not_ctc(ids, V):
  """[V] bool: the tokens CTC never emits (padding, BOS and the blank)."""
  return jnp.zeros((V,), bool).at[jnp.asarray([ids.pad_id, ids.bos_id, ids.blank_id])].set(True)


def ctc_prefix_beam(ctc_logp, frame_lengths, *, beam_size, max_length, blank_id=0, pad_id=0, bos_id=1, eos_id=2,
                    margin=None):
  """CTC prefix beam search over log-posteriors ctc_logp [B, F, V] (frame_lengths [B] valid frames).

  Returns (n-best [B, W, max_length] (tokens, eos_id, then pad_id), their scores [B, W]: log p_ctc of each
  sequence, best first; NEG_INF for empty slots). max_length counts the EOS, so F + 1 reaches every sequence.
  margin: windowed prefix scores (ctc.py)."""
  B, _, V = ctc_logp.shape
  ids = types.SimpleNamespace(pad_id=pad_id, bos_id=bos_id, blank_id=blank_id)
  state = decoding.tile_beams(ctc.joint_init(ctc_logp, frame_lengths, 1.0, candidates=V, blank_id=blank_id,
                                             margin=margin), beam_size)
  no_attention = jnp.zeros((B * beam_size, V), jnp.float32)
  step = lambda tokens, s: ctc.joint_scores(s, no_attention, tokens, not_ctc=_not_ctc(ids, V), blank_id=blank_id,
                                            eos_id=eos_id, pad_id=pad_id)
  _, _, seqs, scores = decoding.beam_search(step, state, batch_size=B, beam_size=beam_size, max_length=max_length,
                                            bos_id=bos_id, eos_id=eos_id, alpha=0.0,
                                            excluded=(pad_id, blank_id, bos_id))
  return seqs, scores


def rescore(model, memory, frame_lengths, seqs, ctc_scores, ctc_weight):
  """Attention rescoring: the best of the n-best seqs [B, W, L] (ctc_scores [B, W]) by (1 - ctc_weight) times
  the decoder's log-probability of the sequence (EOS included) plus ctc_weight times its CTC score -> [B, L]."""
  cfg = model.cfg
  B, W, L = seqs.shape
  flat = seqs.reshape(B * W, L)
  targets_in = jnp.concatenate([jnp.full((B * W, 1), cfg.bos_id, flat.dtype), flat[:, :-1]], axis=1)
  logits = model.decode_targets(targets_in, jnp.repeat(memory, W, axis=0), jnp.repeat(frame_lengths, W, axis=0))
  logp = jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), flat[..., None], -1)[..., 0]
  att = jnp.sum(jnp.where(flat != cfg.pad_id, logp, 0.0), axis=-1).reshape(B, W)
  total = jnp.where(ctc_scores > decoding.NEG_INF / 2, (1.0 - ctc_weight) * att + ctc_weight * ctc_scores,
                    2.0 * decoding.NEG_INF)
  best = jnp.argmax(total, axis=1)
  return jnp.take_along_axis(seqs, best[:, None, None], axis=1)[:, 0]


def search(model, memory, frame_lengths, ctc_logp, *, method, beam_size, max_length, ctc_weight, alpha, pre_beam,
           margin=None):
  """Attention greedy or beam search, or joint CTC/attention beam search, over the model's decoder."""
  cfg = model.cfg
  joint = method == 'joint'
  # A model with a speller of its own (models.las) brings its own init and step.
  init, step = getattr(type(model), 'search_init', search_init), getattr(type(model), 'search_step', search_step)
  return decoding.search(model, init, step, memory, frame_lengths, ctc_logp if joint else None,
                         ctc_weight, beam_size=1 if method == 'attention_greedy' else beam_size,
                         max_length=max_length, alpha=alpha, bos_id=cfg.bos_id, eos_id=cfg.eos_id,
                         excluded=(cfg.pad_id, cfg.blank_id, cfg.bos_id),  # the decoder is never trained to emit BOS
                         options={'pre_beam': pre_beam if joint else None, 'margin': margin if joint else None})


@functools.partial(jax.jit, static_argnames=('graphdef', 'method', 'beam_size', 'max_length', 'alpha', 'pre_beam',
                                             'alignments', 'margin'))
def decode(graphdef, state, audio, audio_lengths, *, method, beam_size, max_length, ctc_weight, alpha, pre_beam,
           alignments, margin=None):
  """(tokens [B, L], the last decoder layer's cross-attention [B, H, L, F] with alignments, else None)."""
  model = nnx.merge(graphdef, state)
  cfg = model.cfg
  memory, frame_lengths = model.encode(audio, audio_lengths)
  ctc_logp = None if model.ctc_head is None else jax.nn.log_softmax(model.ctc_head(memory).astype(jnp.float32), -1)
  if method == 'ctc_greedy':
    tokens = ctc.greedy(ctc_logp, frame_lengths, blank_id=cfg.blank_id, pad_id=cfg.pad_id)[0]
    F = tokens.shape[1]
    tokens = tokens[:, :max_length] if max_length <= F else jnp.pad(tokens, ((0, 0), (0, max_length - F)))
  elif method in ('ctc_prefix_beam', 'rescoring'):
    seqs, scores = ctc_prefix_beam(ctc_logp, frame_lengths, beam_size=beam_size, max_length=max_length,
                                   blank_id=cfg.blank_id, pad_id=cfg.pad_id, bos_id=cfg.bos_id, eos_id=cfg.eos_id,
                                   margin=margin)
    tokens = seqs[:, 0] if method == 'ctc_prefix_beam' else rescore(model, memory, frame_lengths, seqs, scores,
                                                                    ctc_weight)
  else:
    tokens = search(model, memory, frame_lengths, ctc_logp, method=method, beam_size=beam_size,
                    max_length=max_length, ctc_weight=ctc_weight, alpha=alpha, pre_beam=pre_beam, margin=margin)
  if not alignments:
    return tokens, None
  targets_in = jnp.concatenate([jnp.full((tokens.shape[0], 1), cfg.bos_id, tokens.dtype), tokens[:, :-1]], 1)
  _, maps = layers.capture_attention(type(model).decode_targets, model, targets_in, memory, frame_lengths)
  cross = maps['cross'][-1]
  return tokens, jnp.where((tokens != cfg.pad_id)[:, None, :, None], cross, 0.0)
