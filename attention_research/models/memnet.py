"""End-to-end memory network (Sukhbaatar et al. 2015, "End-To-End Memory Networks") for story QA.

Each sentence of a story becomes one memory; the question's embedding u attends over the memories for `hops`
rounds, u <- u + sum_i p_i c_i with p = softmax(u . m_i), and the answer is a class read from the final u.

  - position encoding of words (PE): a sentence is sum_j l_j * A x_j with l_kj = (1 - j/J) - (k/d)(1 - 2j/J),
    so word order counts (J: the sentence's own length);
  - temporal encoding (TE): a learned vector per memory slot, counted from the most recent sentence, as in the
    paper's implementation, so stories longer than in training add only old, rarely trained slots;
  - adjacent weight tying: the output embedding of hop k is the input embedding of hop k + 1 (C^k = A^{k+1}),
    and the question is embedded with A^1; K hops use K + 1 tables (and K + 1 temporal tables).
The answer is a class (a place, yes/no, a list), so the last layer is a linear map to the classes rather than
the paper's W = (C^K)^T over words.

Dimension letters: B batch, M memories (sentences), W words per sentence, D embedding, K hops, C classes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from attention_research.models._checks import check_positive

_MASKED = -1e9


@dataclasses.dataclass(frozen=True)
class MemN2NConfig:
  vocab_size: int | None = None
  num_classes: int | None = None
  max_sentences: int | None = None  # memory slots (temporal encoding rows)
  d_model: int = 32
  hops: int = 3
  position_encoding: bool = True
  temporal_encoding: bool = True
  pad_id: int = 0

  def __post_init__(self):
    for name in ('vocab_size', 'num_classes', 'max_sentences', 'd_model', 'hops'):
      check_positive(name, getattr(self, name))
    for name in ('position_encoding', 'temporal_encoding'):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f'{name} must be True or False, got {getattr(self, name)!r}.')


def position_weights(tokens_XW, pad_id: int, dim: int):
  """PE weights l [..., W, D] of the paper, with J each sentence's own number of words; zero on padding."""
  valid = tokens_XW != pad_id
  J = jnp.maximum(valid.sum(-1, keepdims=True), 1).astype(jnp.float32)[..., None]  # [..., 1, 1]
  j = (jnp.arange(tokens_XW.shape[-1], dtype=jnp.float32) + 1.0)[:, None]  # [W, 1]
  k = (jnp.arange(dim, dtype=jnp.float32) + 1.0) / dim  # [D]
  l = (1.0 - j / J) - k * (1.0 - 2.0 * j / J)
  return l * valid[..., None]


class MemN2N(nnx.Module):
  """story [B, M, W], question [B, W] int (pad_id = padding) -> logits [B, C]."""

  Config = MemN2NConfig

  def __init__(self, cfg: MemN2NConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    init = jax.nn.initializers.normal(0.1)
    K, D = cfg.hops, cfg.d_model
    self.tables_KVD = nnx.Param(init(rngs.params(), (K + 1, cfg.vocab_size, D)))
    self.temporal_KMD = nnx.Param(init(rngs.params(), (K + 1, cfg.max_sentences, D)))
    self.out = nnx.Linear(D, cfg.num_classes, use_bias=False, rngs=rngs)

  def _bag(self, tokens_XW, table_VD):
    cfg = self.cfg
    e_XWD = table_VD[tokens_XW]
    if cfg.position_encoding:
      w_XWD = position_weights(tokens_XW, cfg.pad_id, cfg.d_model)
    else:
      w_XWD = (tokens_XW != cfg.pad_id)[..., None].astype(e_XWD.dtype)
    return jnp.sum(e_XWD * w_XWD, -2)

  def forward(self, story_BMW, question_BW):
    """(logits [B, C], attention over memories at each hop p [B, K, M])."""
    cfg = self.cfg
    M = story_BMW.shape[1]
    if M > cfg.max_sentences:
      raise ValueError(f'story of {M} sentences > max_sentences={cfg.max_sentences}.')
    valid_BM = (story_BMW != cfg.pad_id).any(-1)
    n_B = valid_BM.sum(-1)
    # Slot 0 is the most recent sentence (stories are left-aligned, then padded).
    age_BM = jnp.clip(n_B[:, None] - 1 - jnp.arange(M)[None, :], 0, cfg.max_sentences - 1)
    tables = self.tables_KVD[...]
    temporal = self.temporal_KMD[...]
    mem = []  # mem[k]: memories embedded with table k, [B, M, D]
    for k in range(cfg.hops + 1):
      m_BMD = self._bag(story_BMW, tables[k])
      if cfg.temporal_encoding:
        m_BMD = m_BMD + temporal[k][age_BM]
      mem.append(m_BMD)
    u_BD = self._bag(question_BW, tables[0])
    ps = []
    for k in range(cfg.hops):
      scores_BM = jnp.einsum('BMD,BD->BM', mem[k], u_BD).astype(jnp.float32)
      p_BM = jax.nn.softmax(jnp.where(valid_BM, scores_BM, _MASKED), -1)
      p_BM = jnp.where(valid_BM, p_BM, 0.0)  # a story with no sentence attends to nothing
      u_BD = u_BD + jnp.einsum('BM,BMD->BD', p_BM.astype(mem[k + 1].dtype), mem[k + 1])
      ps.append(p_BM)
    return self.out(u_BD), jnp.stack(ps, 1)

  def __call__(self, story_BMW, question_BW, *, deterministic: bool = True):
    del deterministic  # no dropout: the paper trains without it
    return self.forward(story_BMW, question_BW)[0]

  def hop_attention(self, story_BMW, question_BW):
    """p [B, K, M]: each hop's attention over the memories (zero on padding slots)."""
    return self.forward(story_BMW, question_BW)[1]
