"""SentencePiece tokenizers trained offline on a training split, cached beside the data.

A model file is named by a digest of everything that determines it (dataset,
version, text fields, vocab size, sentence cap), and its sha256 is recorded
next to it. A later run reloads that exact model; a missing or altered file
is reported and the model retrained from the same sentences, in one thread
and a fixed order, which gives the same model again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable

from attention_research.data.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID, SentencePieceTokenizer

logger = logging.getLogger(__name__)


def _train(sentences: Iterable[str], vocab_size: int, character_coverage: float) -> bytes:
  import sentencepiece as spm
  model = io.BytesIO()
  spm.set_random_generator_seed(0)  # sampling inside the trainer is seeded
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type='unigram',
      pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID, character_coverage=character_coverage,
      hard_vocab_limit=False,  # small corpora (and mock data) may not support the full size
      shuffle_input_sentence=False, num_threads=1, minloglevel=2)
  return model.getvalue()


def load_or_train(cache_dir: str, settings: dict, sentences_fn, *, vocab_size: int,
                  character_coverage: float = 0.9995) -> SentencePieceTokenizer:
  """The cached model for `settings`, or one trained on sentences_fn() and saved."""
  settings = dict(settings, vocab_size=vocab_size, character_coverage=character_coverage, model_type='unigram')
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
  model_path = os.path.join(cache_dir, f'spm_{vocab_size}_{digest}.model')
  record_path = model_path[:-len('.model')] + '.json'
  if os.path.exists(model_path) or os.path.exists(record_path):
    try:
      with open(record_path) as f:
        record = json.load(f)
      with open(model_path, 'rb') as f:
        proto = f.read()
      if hashlib.sha256(proto).hexdigest() != record['sha256']:
        raise ValueError('its sha256 differs from the one recorded when it was trained')
      return SentencePieceTokenizer(proto)
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
      logger.error('Corrupt tokenizer cache %s (%s). Retraining it from the training split.', model_path, e)
  proto = _train(sentences_fn(), vocab_size, character_coverage)
  tokenizer = SentencePieceTokenizer(proto)
  os.makedirs(cache_dir, exist_ok=True)
  for path, data, mode in ((model_path, proto, 'wb'),
                           (record_path, json.dumps({'sha256': hashlib.sha256(proto).hexdigest(),
                                                     'settings': settings}, indent=1, sort_keys=True), 'w')):
    tmp = path + '.tmp'
    with open(tmp, mode) as f:
      f.write(data)
    os.replace(tmp, path)
  return tokenizer
