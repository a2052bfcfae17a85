"""Gradient-weighted attention relevancy (Chefer, Gur and Wolf 2021) and gradient x input, from numpy arrays.

The gradients are those of one scalar output (the logit of the explained class or token) with respect to every
layer's attention weights, [..., N, T, S] like the weights; `analysis.probes.attention_gradients` reads both
from a model. Each layer contributes
    A_bar = E_heads[(grad * W)^+]                       (gradient_weighted, [..., T, S])
and the relevancy maps start from the identity (each token explains itself) and accumulate through the layers
("Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV 2021):
    self-attention        R_xx += A_bar R_xx            (and R_ts += A_bar R_ts in a decoder)
    cross-attention t->s  R_ts += norm(R_tt)^T A_bar norm(R_ss)
where norm(R) = (R - I) with rows renormalised, + I: the residual's share is taken out before the cross term.
Rows of the result say how much each input token is relevant to each output token; unlike rollout they depend
on the explained output through the gradients.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from attention_research.analysis import _checks


def gradient_weighted(weights, grads) -> np.ndarray:
  """E_heads[(grad * weights)^+]: [..., N, T, S] twice -> [..., T, S]."""
  w = _checks.as_array(weights, 'weights', min_rank=3, layout='[..., N, T, S]')
  g = _checks.as_array(grads, 'grads', min_rank=3, layout='[..., N, T, S]')
  if w.shape != g.shape:
    raise ValueError(f'weights {w.shape} and their grads {g.shape} must have the same shape.')
  return np.clip(w * g, 0.0, None).mean(-3)


def _pairs(weights: Sequence, grads: Sequence, name: str) -> list[np.ndarray]:
  if len(weights) != len(grads) or not len(weights):
    raise ValueError(f'{name}: need one gradient per layer and at least one layer; got {len(weights)} weights '
                     f'and {len(grads)} grads.')
  return [gradient_weighted(w, g) for w, g in zip(weights, grads)]


def _eye_like(a: np.ndarray, n: int) -> np.ndarray:
  return np.broadcast_to(np.eye(n), a.shape[:-2] + (n, n)).copy()


def self_attention_relevancy(weights: Sequence, grads: Sequence) -> np.ndarray:
  """Relevancy [..., T, T] of a stack of self-attention layers (first layer first): R = I, R += A_bar R."""
  bars = _pairs(weights, grads, 'self_attention_relevancy')
  T = bars[0].shape[-1]
  r = _eye_like(bars[0], T)
  for i, a in enumerate(bars):
    if a.shape[-2:] != (T, T):
      raise ValueError(f'layer {i} has weights over {a.shape[-2:]}, not self-attention over {T} tokens.')
    r = r + a @ r
  return r


def normalise_residual(r) -> np.ndarray:
  """(R - I) with rows renormalised to sum 1, + I (rows without any weight beyond I stay I)."""
  r = np.asarray(r, np.float64)
  eye = _eye_like(r, r.shape[-1])
  hat = r - eye
  total = hat.sum(-1, keepdims=True)
  return np.divide(hat, total, out=np.zeros_like(hat), where=total > 0) + eye


def encoder_decoder_relevancy(encoder: tuple[Sequence, Sequence] | None, decoder_self: tuple[Sequence, Sequence],
                              cross: tuple[Sequence, Sequence]) -> dict[str, np.ndarray]:
  """Relevancy of an encoder-decoder whose decoder block l runs self-attention then cross-attention.

  Args:
    encoder: (weights, grads) per encoder layer, [..., N, S, S] each; None for a model without one (the source
      tokens then explain only themselves, R_ss = I).
    decoder_self: (weights, grads) per decoder layer, [..., N, T, T].
    cross: (weights, grads) per decoder layer, [..., N, T, S].

  Returns:
    {'source': R_ts [..., T, S] (relevance of each source token to each output token), 'target': R_tt
    [..., T, T], 'encoder': R_ss [..., S, S]}.
  """
  xs = _pairs(*cross, 'cross')
  ds = _pairs(*decoder_self, 'decoder_self')
  if len(xs) != len(ds):
    raise ValueError(f'a decoder block has self- and cross-attention: got {len(ds)} self and {len(xs)} cross '
                     f'layers.')
  T, S = xs[0].shape[-2:]
  r_ss = _eye_like(xs[0][..., :1, :], S) if encoder is None else self_attention_relevancy(*encoder)
  if r_ss.shape[-1] != S:
    raise ValueError(f'the encoder has {r_ss.shape[-1]} tokens but the cross-attention attends over S={S}.')
  r_tt = _eye_like(xs[0][..., :, :1], T)
  r_ts = np.zeros(xs[0].shape)
  bar_ss = normalise_residual(r_ss)
  for a_self, a_cross in zip(ds, xs):
    r_tt = r_tt + a_self @ r_tt
    r_ts = r_ts + a_self @ r_ts
    r_ts = r_ts + np.swapaxes(normalise_residual(r_tt), -1, -2) @ a_cross @ bar_ss
  return {'source': r_ts, 'target': r_tt, 'encoder': r_ss}


def gradient_x_input(grads, inputs, *, reduce: str = 'sum') -> np.ndarray:
  """Per-token attribution of a non-attention baseline: grad * input over the features, [..., L, D] -> [..., L].

  reduce: 'sum' (the first-order Taylor term of each token; signed) or 'norm' (L2 norm of grad * input).
  For token models, take the gradient with respect to the embeddings (`probes.input_gradients`).
  """
  g = _checks.as_array(grads, 'grads', min_rank=1, layout='[..., L, D]')
  x = _checks.as_array(inputs, 'inputs', min_rank=1, layout='[..., L, D]')
  if g.shape != x.shape:
    raise ValueError(f'grads {g.shape} and inputs {x.shape} must have the same shape.')
  if reduce == 'sum':
    return (g * x).sum(-1)
  if reduce == 'norm':
    return np.sqrt(((g * x) ** 2).sum(-1))
  raise ValueError(f"reduce must be 'sum' or 'norm'; got {reduce!r}.")
