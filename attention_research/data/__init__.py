"""Datasets for attention research: built-in offline tasks and public tfds adapters.

Importing this package registers the tfds builders of the built-in tasks
(number_translation, mqar, listops, digits, digit_scenes, scene_vqa, spoken_digits, and the recall family
selective_copying, fuzzy_recall, noisy_recall, compression, memorization), so
`tfds.load('mqar/small')` works; `load_task` returns a `Task` whose
`batches(...)` yields dicts of numpy arrays.
"""

from attention_research.data import builders, metrics
from attention_research.data.loading import BUILTIN_TASKS, load_task, public_datasets, task_names
from attention_research.data.pipeline import BatchIterator
from attention_research.data.task import KINDS, Task
from attention_research.data.tokenizers import (PieceTokenizer, SentencePieceTokenizer, Tokenizer, WordTokenizer,
                                                char_tokenizer)

__all__ = [
    'BUILTIN_TASKS', 'BatchIterator', 'KINDS', 'PieceTokenizer', 'SentencePieceTokenizer', 'Task', 'Tokenizer',
    'WordTokenizer', 'builders', 'char_tokenizer', 'load_task', 'metrics', 'public_datasets', 'task_names',
]
