"""Objectives by task kind: `make(task, options)` returns the one for `task.kind`."""

from __future__ import annotations

from typing import Any, Mapping

from attention_research.training.objectives.asr import SpeechRecognition
from attention_research.training.objectives.base import Objective, build_model_config, resolve_model
from attention_research.training.objectives.captioning import Captioning
from attention_research.training.objectives.classification import Classification, TokenClassification
from attention_research.training.objectives.detection import Detection
from attention_research.training.objectives.lm import LanguageModel
from attention_research.training.objectives.ner import NamedEntities
from attention_research.training.objectives.sentiment import Sentiment
from attention_research.training.objectives.segmentation import Segmentation
from attention_research.training.objectives.span_qa import SpanQA
from attention_research.training.objectives.seq2seq import Seq2Seq
from attention_research.training.objectives.story_qa import StoryQA
from attention_research.training.objectives.summarization import Summarization
from attention_research.training.objectives.vqa import VisualQA

OBJECTIVES: dict[str, type[Objective]] = {
    'classification': Classification,
    'token_classification': TokenClassification,
    'seq2seq': Seq2Seq,
    'lm': LanguageModel,
    'captioning': Captioning,
    'asr': SpeechRecognition,
    'ner': NamedEntities,
    'story_qa': StoryQA,
    'sentiment': Sentiment,
    'summarization': Summarization,
    'segmentation': Segmentation,
    'vqa': VisualQA,
    'detection': Detection,
    'span_qa': SpanQA,
}


def make(task, options: Mapping[str, Any] | None = None) -> Objective:
  """options: config.objective; its optional 'kind' trains a task as another kind (an LM on a text column)."""
  options = dict(options or {})
  kind = options.pop('kind', None) or getattr(task, 'kind', None)
  if kind not in OBJECTIVES:
    raise ValueError(f'no objective for task kind {kind!r}; known kinds: {sorted(OBJECTIVES)}.')
  return OBJECTIVES[kind](task, options)


__all__ = ['OBJECTIVES', 'Objective', 'make', 'build_model_config', 'resolve_model']
