"""Public speech datasets: librispeech (recognition), speech_commands (keyword classification)."""

from __future__ import annotations

import numpy as np

from attention_research.data.adapters._public import PublicData, text
from attention_research.data.builders.spoken_digits import ALPHABET
from attention_research.data.pipeline import Dense, Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import char_tokenizer, encode_all

SAMPLE_RATE = 16_000


def _audio_columns(waves: list) -> dict:
  return {'audio': Ragged([np.asarray(w, np.int16) for w in waves], dtype=np.float32, storage_dtype=np.int16,
                          scale=1 / 32768),
          'audio_lengths': Dense(np.asarray([len(w) for w in waves], np.int32))}


def librispeech(data: PublicData, opts: dict) -> Task:
  """Characters of the lower-cased transcript (the alphabet of spoken_digits), then EOS."""
  tokenizer = char_tokenizer(ALPHABET)
  columns = {}
  for split in data.split_map:
    ex = data.read(split, lambda e: {'audio': e['speech'], 'text': text(e['text']).lower()})
    columns[split] = {**_audio_columns(ex.get('audio', [])),
                      'targets': Ragged(encode_all(tokenizer, ex.get('text', []), add_eos=True,
                                                   max_length=opts['max_target_length']), dtype=np.int32)}
  lengths = pad_lengths(columns)
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'sample_rate': SAMPLE_RATE, 'max_audio_length': lengths['audio'], 'max_target_length': lengths['targets'],
          'pad_lengths': lengths, 'metrics': ('cer', 'wer')}
  return Task(name='librispeech', kind='asr', info=info, tokenizers={'targets': tokenizer}, columns=columns,
              length_key='audio')


def speech_commands(data: PublicData, opts: dict) -> Task:
  """Batches: 'audio', 'audio_lengths' and 'label' (one of the keyword classes)."""
  del opts
  columns = {}
  for split in data.split_map:
    ex = data.read(split, lambda e: {'audio': e['audio'], 'label': int(e['label'])})
    columns[split] = {**_audio_columns(ex.get('audio', [])), 'label': Dense(np.asarray(ex.get('label', []), np.int32))}
  lengths = pad_lengths(columns)
  label = data.features['label']
  info = {'num_classes': label.num_classes, 'class_names': tuple(label.names), 'sample_rate': SAMPLE_RATE,
          'max_audio_length': lengths['audio'], 'pad_lengths': lengths, 'pad_id': 0, 'metrics': ('accuracy',)}
  return Task(name='speech_commands', kind='classification', info=info, tokenizers={}, columns=columns,
              length_key='audio')
