"""Public text datasets: wmt14_translate/de-en, cnn_dailymail, imdb_reviews, lm1b."""

from __future__ import annotations

import itertools

import numpy as np

from attention_research.data.adapters import spm
from attention_research.data.adapters._public import PublicData, text
from attention_research.data.pipeline import Dense, Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import encode_all


def _tokenizer(data: PublicData, fields: tuple[str, ...], opts: dict):
  """A SentencePiece model trained on the training split's `fields`."""
  def sentences():
    stream = (text(ex[f]) for ex in data.examples('train') for f in fields)
    return itertools.islice(stream, opts['spm_max_sentences'])
  settings = {'dataset': data.name, 'version': data.version, 'fields': fields, 'split': data.split_map['train'],
              'max_examples': data.max_examples, 'max_sentences': opts['spm_max_sentences']}
  return spm.load_or_train(data.cache_dir(), settings, sentences, vocab_size=opts['vocab_size'])


def _info(tokenizer, lengths, **extra) -> dict:
  return {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'pad_lengths': lengths, **extra}


def seq2seq(name: str, data: PublicData, opts: dict, source: str, target: str, metrics) -> Task:
  tokenizer = _tokenizer(data, (source, target), opts)
  columns = {}
  for split in data.split_map:
    ex = data.read(split, lambda e: {'src': text(e[source]), 'tgt': text(e[target])})
    columns[split] = {
        'inputs': Ragged(encode_all(tokenizer, ex.get('src', []), add_eos=True,
                                    max_length=opts['max_input_length']), dtype=np.int32),
        'targets': Ragged(encode_all(tokenizer, ex.get('tgt', []), add_eos=True,
                                     max_length=opts['max_target_length']), dtype=np.int32),
    }
  lengths = pad_lengths(columns)
  info = _info(tokenizer, lengths, input_vocab_size=tokenizer.vocab_size, target_vocab_size=tokenizer.vocab_size,
               max_input_length=lengths['inputs'], max_target_length=lengths['targets'], metrics=metrics)
  return Task(name=name, kind='seq2seq', info=info, tokenizers={'inputs': tokenizer, 'targets': tokenizer},
              columns=columns, length_key='inputs', main_tokenizer_key='targets')


def wmt14(data: PublicData, opts: dict) -> Task:
  source, target = opts['source'], opts['target']
  if {source, target} != {'de', 'en'}:
    raise ValueError(f"wmt14_translate/de-en translates between 'de' and 'en'; got source={source!r}, "
                     f'target={target!r}.')
  return seq2seq('wmt14_translate/de-en', data, opts, source, target, ('bleu', 'chrf'))


def cnn_dailymail(data: PublicData, opts: dict) -> Task:
  return seq2seq('cnn_dailymail', data, opts, 'article', 'highlights', ('bleu', 'chrf'))


def imdb_reviews(data: PublicData, opts: dict) -> Task:
  tokenizer = _tokenizer(data, ('text',), opts)
  columns = {}
  for split in data.split_map:
    ex = data.read(split, lambda e: {'text': text(e['text']), 'label': int(e['label'])})
    columns[split] = {
        'inputs': Ragged(encode_all(tokenizer, ex.get('text', []), max_length=opts['max_length']), dtype=np.int32),
        'label': Dense(np.asarray(ex.get('label', []), np.int32)),
    }
  lengths = pad_lengths(columns)
  info = _info(tokenizer, lengths, num_classes=data.features['label'].num_classes, max_length=lengths['inputs'],
               metrics=('accuracy',))
  return Task(name='imdb_reviews', kind='classification', info=info, tokenizers={'inputs': tokenizer},
              columns=columns, length_key='inputs')


def lm1b(data: PublicData, opts: dict) -> Task:
  tokenizer = _tokenizer(data, ('text',), opts)
  columns = {}
  for split in data.split_map:
    ex = data.read(split, lambda e: {'text': text(e['text'])})
    columns[split] = {'inputs': Ragged(encode_all(tokenizer, ex.get('text', []), add_eos=True,
                                                  max_length=opts['max_length']), dtype=np.int32)}
  lengths = pad_lengths(columns)
  info = _info(tokenizer, lengths, max_length=lengths['inputs'], metrics=('perplexity',))
  return Task(name='lm1b', kind='lm', info=info, tokenizers={'inputs': tokenizer}, columns=columns,
              length_key='inputs')
