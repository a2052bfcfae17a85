"""The ASR objective's optional evaluations: every decoding mode (WER, CER, utterances/s) and noisy test audio."""

import math
import os

import pytest

from attention_research.training import compare, loop
from attention_research.training.objectives import asr as asr_objective

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(arg):
  return compare.load_config_file(os.path.join(ROOT, 'configs', arg))


def test_every_mode_and_snr_is_reported_at_smoke_size(tmp_path):
  result = loop.train_and_evaluate(load('asr.py:smoke,modes,snr'), str(tmp_path), quiet=True)
  (final,) = result.final_metrics
  labels = ['ctc_greedy', 'attention_greedy', 'attention_beam', 'ctc_prefix_beam', 'rescoring', 'joint0.3',
            'joint0.5']
  for label in labels:
    assert math.isfinite(final[f'wer_{label}']) and math.isfinite(final[f'cer_{label}'])
    assert final[f'utt_s_{label}'] > 0
  # decode_method is ctc_greedy: its extra run repeats the headline columns.
  assert final['wer_ctc_greedy'] == final['wer'] and final['cer_ctc_greedy'] == final['cer']
  for db in (20, 10, 5, 0):
    assert math.isfinite(final[f'wer_snr{db}']) and math.isfinite(final[f'cer_snr{db}'])


def test_default_suite_keeps_its_columns():
  names = [n for n, _ in asr_objective.SpeechRecognition.metric_names]
  assert names == ['cer', 'wer', 'token_accuracy', 'loss']
  options = asr_objective.ASROptions()
  assert options.mode_runs() == []


@pytest.mark.parametrize('field, value, match', [
    ('decoding_modes', 'joint,viterbi', "unknown mode 'viterbi'"),
    ('joint_ctc_weights', '0.3,1.5', 'joint_ctc_weights must be in'),
    ('snr_db', '10,loud', 'loud'),
    ('alignment_examples', -1, 'alignment_examples must be >= 0'),
])
def test_bad_options_raise(field, value, match):
  with pytest.raises(ValueError, match=match):
    asr_objective.ASROptions(**{field: value})
