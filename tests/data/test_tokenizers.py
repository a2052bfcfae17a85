import numpy as np
import pytest

from attention_research.data import tokenizers
from attention_research.data.tokenizers import EOS_ID, PAD_ID, PieceTokenizer, WordTokenizer, char_tokenizer


def test_special_ids_are_shared():
  for tok in (WordTokenizer(['a', 'b']), PieceTokenizer(['ab', 'a']), char_tokenizer('xyz')):
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.vocab_size == 4 + len(tok.tokens)


def test_decode_stops_at_eos_and_skips_padding():
  tok = WordTokenizer(['one', 'two', 'three'])
  ids = tok.encode('one two three')
  assert tok.decode(np.asarray([1, *ids, EOS_ID, ids[0], PAD_ID])) == 'one two three'
  assert tok.decode([ids[0], PAD_ID, ids[1]]) == 'one two'


def test_piece_tokenizer_is_greedy_longest_match_and_lossless():
  tok = PieceTokenizer(['seven', 'seventeen', 'teen', ' ', 's', 'e', 'v', 'n'])
  assert tok.pieces('seventeen seven') == ['seventeen', ' ', 'seven']
  assert tok.decode(tok.encode('seventeen seven')) == 'seventeen seven'
  assert tok.encode('x') == [tok.unk_id]


def test_round_trip_through_json():
  for tok in (WordTokenizer(['[MAX', ']']), PieceTokenizer(['ein', 'und'])):
    again = tokenizers.from_json(tok.to_json())
    assert type(again) is type(tok) and again.tokens == tok.tokens


def test_bad_json_is_a_clear_error():
  with pytest.raises(ValueError, match='unreadable'):
    tokenizers.from_json('{"kind": ')
  with pytest.raises(ValueError, match='Unknown saved tokenizer kind'):
    tokenizers.from_json('{"kind": "bpe", "tokens": []}')


def test_encode_all_truncates_but_keeps_eos():
  tok = char_tokenizer('abc')
  out = tokenizers.encode_all(tok, ['abcabc', 'a'], add_eos=True, max_length=4)
  assert [o.tolist() for o in out] == [[4, 5, 6, EOS_ID], [4, EOS_ID]]
  assert out[0].dtype == np.int32
