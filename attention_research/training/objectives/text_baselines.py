"""Baselines the text objectives report beside the model: a majority rule and a bag-of-words model (logistic
regression; for summaries, nearest-neighbour retrieval; scikit-learn), fitted on the task's train split, applied to
the very batches the model is evaluated on."""

from __future__ import annotations

import collections
from typing import Sequence

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors


def _rows(matrix_rows, width):
  """Sparse [N, width] counts from a list of id arrays (one row each)."""
  indptr = np.cumsum([0] + [len(r) for r in matrix_rows])
  indices = np.concatenate(matrix_rows) if matrix_rows else np.zeros(0, np.int64)
  return sparse.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(matrix_rows), width))


def word_counts(rows, vocab_size: int):
  """Sparse [N, vocab_size] word counts of id rows (padding, id 0, left out): a bag of words per row."""
  return _rows([np.asarray(x)[np.asarray(x) != 0].astype(np.int64) for x in rows], vocab_size)


def _fit(x, y, seed: int = 0):
  if len(np.unique(y)) < 2:  # one class: a constant predictor
    return _Constant(int(y[0]))
  return LogisticRegression(max_iter=300, C=1.0, random_state=seed).fit(x, y)


class _Constant:
  def __init__(self, value):
    self.value = value

  def predict(self, x):
    return np.full(x.shape[0], self.value)


class StoryBaselines:
  """Majority answer, and logistic regression on counts of story words and question words (two bags)."""

  def __init__(self, story_NMW, question_NW, label_N, vocab_size: int):
    self.vocab_size = vocab_size
    self.majority = int(np.bincount(label_N).argmax())
    self.bow = _fit(self.features(story_NMW, question_NW), label_N)

  def features(self, story, question):
    story, question = np.asarray(story), np.asarray(question)
    rows = [np.concatenate([s[s != 0], self.vocab_size + q[q != 0]]).astype(np.int64)
            for s, q in zip(story.reshape(len(story), -1), question)]
    return _rows(rows, 2 * self.vocab_size)

  def predict(self, story, question) -> dict[str, np.ndarray]:
    n = len(question)
    return {'majority': np.full(n, self.majority), 'bow': self.bow.predict(self.features(story, question))}


class TaggingBaselines:
  """Per word its most frequent training tag (unseen words: the most frequent tag), and logistic regression on
  the words at offsets -1, 0, +1 (a bag of the window's words, position by position)."""

  def __init__(self, inputs, targets, vocab_size: int):
    self.vocab_size = vocab_size
    words = np.concatenate([np.asarray(x) for x in inputs])
    tags = np.concatenate([np.asarray(t) for t in targets])
    num_tags = int(tags.max()) + 1
    counts = np.zeros((vocab_size, num_tags), np.int64)
    np.add.at(counts, (words, tags), 1)
    self.default = int(np.bincount(tags).argmax())
    self.table = np.where(counts.sum(1) > 0, counts.argmax(1), self.default)
    self.bow = _fit(self.features(inputs), tags)

  def features(self, inputs):
    rows = []
    V = self.vocab_size
    for x in inputs:
      x = np.asarray(x, np.int64)
      left = np.concatenate([[0], x[:-1]])
      right = np.concatenate([x[1:], [0]])
      rows.extend(np.stack([left, V + x, 2 * V + right], 1))
    return _rows(rows, 3 * V)

  def predict(self, inputs) -> dict[str, list[np.ndarray]]:
    """inputs: list of id arrays without padding -> per baseline, a list of tag arrays."""
    majority = [self.table[np.asarray(x)] for x in inputs]
    flat = self.bow.predict(self.features(inputs)) if inputs else np.zeros(0, np.int64)
    cuts = np.cumsum([len(x) for x in inputs])[:-1]
    return {'majority': majority, 'bow': np.split(flat, cuts)}


class SummaryBaselines:
  """Two summaries that need no reading of the goals: the most frequent training summary (majority), and the
  training summary of the nearest training document by cosine similarity of word counts (bag-of-words retrieval,
  scikit-learn's NearestNeighbors)."""

  def __init__(self, documents, summaries: Sequence[str], vocab_size: int):
    if len(documents) != len(summaries) or not summaries:
      raise ValueError(f'{len(documents)} documents and {len(summaries)} summaries: one each, at least one, '
                       'expected.')
    self.vocab_size = vocab_size
    self.summaries = list(summaries)
    self.majority = collections.Counter(self.summaries).most_common(1)[0][0]  # ties: the first seen
    self.index = NearestNeighbors(n_neighbors=1, metric='cosine').fit(self.features(documents))

  def features(self, documents):
    return word_counts(documents, self.vocab_size)

  def predict(self, documents) -> dict[str, list[str]]:
    if not len(documents):
      return {'majority': [], 'bow': []}
    nearest = self.index.kneighbors(self.features(documents), return_distance=False)[:, 0]
    return {'majority': [self.majority] * len(documents), 'bow': [self.summaries[i] for i in nearest]}
