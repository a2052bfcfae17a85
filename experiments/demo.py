r"""The introductory example of attention: a decoder state attends over encoder outputs.

    python -m experiments.demo [--out_dir=runs/demo] [--seed=0]

A made-up source sentence gets made-up encoder outputs m_s (random vectors, fixed by --seed); the decoder
state h that is about to produce the French word 'chat' is built near the encoder output of 'cat'. h attends
over the m_s first with additive (Bahdanau) attention, `layers.AdditiveAttention`, then with scaled
dot-product attention, `attention.dot_product`. The demo prints, and checks in code, what many tutorials get
wrong:
  * the score is ONE number per source position: e_s = v . tanh(W_q h + W_k m_s), or h . m_s / sqrt(d);
  * the softmax runs over the sequence positions s (the weights sum to 1 over the sentence), not over the
    hidden units of tanh(...) (which gives a matrix of "weights" that do not sum to 1 over the sentence);
  * the context vector sum_s a_s m_s has the size of one encoder output.
It saves bars.png (the weights of 'chat' over the source words) and heatmap.png (every target word's weights).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import app, flags
from flax import nnx

from attention_research import attention, layers
from attention_research.analysis import _plot, bars, heatmaps

_OUT_DIR = flags.DEFINE_string('out_dir', 'runs/demo', 'Directory for bars.png and heatmap.png.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the made-up encoder outputs and the attention parameters.')

SOURCE = ('the', 'cat', 'sat', 'on', 'the', 'mat')
TARGET = ('le', 'chat', 'était', 'assis', 'sur', 'le', 'tapis')
ALIGNED = (0, 1, 2, 2, 3, 4, 5)  # the source word each target word translates
QUERY_WORD = 1  # 'chat'
D = 8  # size of encoder outputs and decoder states
A = 10  # hidden size of the additive score


def _check(condition, message: str):
  """An assertion that `python -O` does not strip."""
  if not condition:
    raise AssertionError(message)


def _softmax(x, axis):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def made_up_states(seed: int):
  """Encoder outputs m [S, D] and decoder states h [T, D], h_t near the encoder output of its aligned word.

  The two 'the' get different vectors: a real encoder's outputs depend on context, not only on the word.
  """
  rng = np.random.default_rng(seed)
  enc = rng.standard_normal((len(SOURCE), D)).astype(np.float32)
  # Equal norms, as after a layer norm: otherwise dot products favour whichever random vector is longest.
  enc = enc / np.linalg.norm(enc, axis=-1, keepdims=True) * np.sqrt(D)
  dec = 2.0 * enc[list(ALIGNED)] + 0.3 * rng.standard_normal((len(TARGET), D))
  return enc.astype(np.float32), dec.astype(np.float32)


def _table(scores, weights):
  rows = [f'    {"position":>8}  {"word":<6} {"score e_s":>10}  {"weight a_s":>10}']
  for s, (word, e, a) in enumerate(zip(SOURCE, scores, weights)):
    rows.append(f'    {s:>8}  {word:<6} {e:>10.4f}  {a:>10.4f}')
  rows.append(f'    {"":>8}  {"sum":<6} {"":>10}  {float(np.sum(weights)):>10.4f}')
  return '\n'.join(rows)


def run(out_dir, seed: int = 0, *, verbose: bool = True) -> dict:
  """Runs the demo; returns the weights, contexts and figure paths (the tests read them)."""
  say = print if verbose else (lambda *a, **k: None)
  S = len(SOURCE)
  enc, dec = made_up_states(seed)
  h = dec[QUERY_WORD]
  say(f'Source: {" ".join(SOURCE)}   ->   target so far: {" ".join(TARGET[:QUERY_WORD])} [{TARGET[QUERY_WORD]}]')
  say(f'Encoder outputs m: shape {enc.shape} (S={S} positions x d={D}); decoder state h: shape {h.shape}.\n')

  # 1. Additive (Bahdanau) attention through the NNX layer, and the same computation written out.
  bahdanau = layers.AdditiveAttention(D, D, A, rngs=nnx.Rngs(seed))
  context_add, weights_add = bahdanau.context_and_weights(h[None], enc[None])  # [1, D], [1, S]
  context_add, weights_add = context_add[0], weights_add[0]
  w_q, w_k, v = (np.asarray(bahdanau.w_q[...]), np.asarray(bahdanau.w_k[...]), np.asarray(bahdanau.v[...]))
  hidden = np.tanh(h @ w_q + enc @ w_k)  # [S, A]
  scores_add = hidden @ v  # [S]: one number per position
  _check(scores_add.shape == (S,), f'the score must be one number per position; got shape {scores_add.shape}')
  manual = _softmax(scores_add, axis=0)  # over the sequence axis
  _check(np.allclose(manual, weights_add, atol=1e-6), 'layer weights differ from softmax over positions')
  _check(abs(float(weights_add.sum()) - 1.0) < 1e-5, f'weights sum to {float(weights_add.sum())}, not 1')
  _check(context_add.shape == (D,), f'context has shape {context_add.shape}, expected ({D},)')
  _check(np.allclose(weights_add @ enc, context_add, atol=1e-5), 'context is not sum_s a_s m_s')
  say('1) Additive (Bahdanau) attention: e_s = v . tanh(W_q h + W_k m_s)')
  say(f'   tanh(W_q h + W_k m_s) for all s has shape {hidden.shape} = [S, A]; multiplying by v [{A}] gives the '
      f'scores e, shape {scores_add.shape}: ONE number per source position.')
  say('   a = softmax(e) over the S positions (axis 0 of e):')
  say(_table(np.asarray(scores_add), np.asarray(weights_add)))
  say(f'   (The parameters are untrained, so these weights need not favour {SOURCE[QUERY_WORD]!r}.)')
  say(f'   context c = sum_s a_s m_s: shape {context_add.shape}, the size of one encoder output.')
  wrong = _softmax(hidden, axis=-1)  # the common mistake: normalising the hidden units
  wrong_sums = np.asarray(wrong.sum(0))
  _check(not np.allclose(wrong_sums, 1.0), 'softmax over hidden units unexpectedly sums to 1 over positions')
  say(f'   The common mistake, softmax(tanh(...), axis=hidden units) without v, gives a {wrong.shape} matrix: '
      f'each row sums to 1 over the {A} hidden units, while its columns sum over the {S} positions to '
      f'{", ".join(f"{x:.2f}" for x in wrong_sums[:4])}, ..., not 1: it is not a distribution over the '
      'sentence, and there is no single score per position.\n')

  # 2. Scaled dot-product attention, in the layout of jax.nn.dot_product_attention: [B, T, N, H].
  q = h[None, None, None, :]  # B=1, T=1 query, N=1 head, H=D
  kv = enc[None, :, None, :]  # B=1, S positions, K=1 head, H=D
  context_dot, weights_dot = attention.dot_product(q, kv, kv, return_weights=True)  # [1,1,1,D], [1,1,1,S]
  scores_dot = enc @ h / np.sqrt(D)
  _check(weights_dot.shape == (1, 1, 1, S), f'weights have shape {weights_dot.shape}, expected [1, 1, 1, {S}]')
  weights_dot = weights_dot[0, 0, 0]
  _check(np.allclose(_softmax(scores_dot, axis=0), weights_dot, atol=1e-6),
         'dot-product weights differ from softmax over positions')
  _check(abs(float(weights_dot.sum()) - 1.0) < 1e-5, f'weights sum to {float(weights_dot.sum())}, not 1')
  _check(context_dot.shape == (1, 1, 1, D), f'context has shape {context_dot.shape}')
  say('2) Scaled dot-product attention: e_s = h . m_s / sqrt(d), a = softmax(e) over the S positions')
  say(f'   attention.dot_product(q [1, 1, 1, {D}], k = v [1, {S}, 1, {D}], return_weights=True) -> weights '
      f'[B, N, T, S] = {(1, 1, 1, S)}:')
  say(_table(np.asarray(scores_dot), np.asarray(weights_dot)))
  say(f'   context: shape {context_dot.shape} = [B, T, N, d]; most attended word: '
      f'{SOURCE[int(np.argmax(weights_dot))]!r}.\n')

  # 3. Every target word's weights, for the heatmap.
  all_add = bahdanau.context_and_weights(dec, np.broadcast_to(enc, (len(TARGET),) + enc.shape))[1]  # [T, S]
  all_dot = attention.dot_product(dec[None, :, None, :], kv, kv, return_weights=True)[1][0, 0]  # [T, S]
  for name, w in (('additive', all_add), ('dot-product', all_dot)):
    _check(np.allclose(np.asarray(w).sum(-1), 1.0, atol=1e-5), f'{name} rows do not sum to 1 over positions')

  out = Path(out_dir)
  fig = _plot.new_figure((9.0, 3.4), 100)
  ax1, ax2 = fig.subplots(1, 2)
  bars.bar_chart(weights_add, SOURCE, ax=ax1, xlabel='source word', title=f"additive: '{TARGET[QUERY_WORD]}' attends "
                 f'(sum = {float(weights_add.sum()):.3f})')
  bars.bar_chart(weights_dot, SOURCE, ax=ax2, xlabel='source word', title=f"dot-product: '{TARGET[QUERY_WORD]}' attends "
                 f'(sum = {float(weights_dot.sum()):.3f})')
  bars_path = _plot.save(fig, out / 'bars.png')
  fig = _plot.new_figure((10.0, 4.2), 100)
  ax1, ax2 = fig.subplots(1, 2)
  for ax, name, w in ((ax1, 'additive (untrained parameters)', all_add), (ax2, 'scaled dot-product', all_dot)):
    heatmaps.heatmap(w, x_labels=SOURCE, y_labels=TARGET, ax=ax, title=name, xlabel='source (keys)',
                     ylabel='target (queries)', vmin=0.0, vmax=1.0)
  fig.suptitle('Each row is one decoder state; its weights sum to 1 over the source positions')
  heatmap_path = _plot.save(fig, out / 'heatmap.png')
  say(f'Saved {bars_path} and {heatmap_path}.')
  return {'additive': np.asarray(weights_add), 'dot_product': np.asarray(weights_dot),
          'additive_all': np.asarray(all_add), 'dot_product_all': np.asarray(all_dot),
          'scores_additive': np.asarray(scores_add), 'context_additive': np.asarray(context_add),
          'context_dot_product': np.asarray(context_dot), 'bars': bars_path, 'heatmap': heatmap_path}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  run(_OUT_DIR.value, _SEED.value)


if __name__ == '__main__':
  app.run(main)
