r"""Speech recognition on spoken_digits: hybrid CTC/attention with a Transformer or Conformer encoder, or
listen-attend-spell (model=las) with a CTC branch.

  python -m experiments.train --config=configs/asr.py --workdir=runs/asr
  python -m experiments.train --config=configs/asr.py:attention=linear --workdir=runs/asr_linear
  python -m experiments.compare --config=configs/asr.py --variants=dot_product,linear,performer --seeds=3
  python -m experiments.train --config=configs/asr.py:model=las --workdir=runs/las --plot
  python -m experiments.compare --config=configs/asr.py:model=las --variants=location,coverage,mocha

Options (after the colon, comma-separated):
  model=transformer|las          asr.ASR (Transformer/Conformer encoder, Transformer decoder), or las.LAS
                                 (listen-attend-spell: pyramidal BLSTM listener, LSTM speller; docs/speech.md).
  attention=<variant>            asr.ASR: the encoder's self-attention variant (the decoder keeps dot_product);
                                 las.LAS: the speller's attention, dot|additive|location|coverage|mocha (the
                                 variants compare runs for this family; default location).
  encoder=conformer|transformer  asr.ASR only.
  ctc_weight=<w>                 weight of CTC in the hybrid loss, in [0, 1] (1: CTC only; las: 0 builds no CTC branch).
  decode=ctc_greedy|attention_greedy|attention_beam|ctc_prefix_beam|rescoring|joint   how test transcripts
                                 are decoded (the wer/cer columns); default ctc_greedy, las: attention_greedy.
  modes                          also score every decoding mode (wer_<mode>, cer_<mode>, utt_s_<mode>: WER, CER and
                                 utterances per second), joint at CTC weights 0.3 and 0.5.
  snr                            also score the test audio with white noise at 20, 10, 5 and 0 dB SNR
                                 (wer_snr<db>, cer_snr<db>; decode method as `decode`).
  voices=all|seen|unseen         all: train and test on spoken_digits' 9 voices; seen: train and test on 7 of them;
                                 unseen: train on the same 7, test on the 2 held out (HELD_OUT_VOICES). seen and
                                 unseen train on the same data, so a seen run's workdir resumes with unseen to score
                                 its checkpoint on the held-out voices (only the test split differs).
  ctc_margin=<frames>            windowed CTC prefix scores in joint and prefix-beam decoding (-1: every frame).
  smoke                          tiny data and model, a few steps: a run of seconds, for tests.
  suite                          the budget of the default suite (`python -m experiments.compare`).
suite,snr,decode=joint,voices=seen with --seeds=3: 10.5 minutes on 2 cores under a load of 4 to 5 (joint-decoding WER
0.021 on the training voices; resumed with voices=unseen, 3.2 more minutes: 0.080 on the held-out ones, docs/speech.md).
model=las budget: 1000 steps of batch 16, the first 200 test utterances; 18 minutes per variant on the shared 2-core
machine under a load average of about 10 (location: attention-greedy WER 0.001, docs/speech.md).
"""

from attention_research.data.builders.spoken_digits import VOICES
from attention_research.training.config_files import make_config, parse_arg

# Held out of training by voices=seen|unseen: an accent and a female variant, each unlike every training voice.
HELD_OUT_VOICES = ('en-gb-scotland', 'en-us+f4')


def get_config(arg=None):
  opts = parse_arg(arg, {'model': 'transformer', 'attention': '', 'encoder': '', 'ctc_weight': 0.3,
                         'decode': '', 'smoke': False, 'suite': False, 'modes': False, 'snr': False,
                         'ctc_margin': -1, 'voices': 'all'})
  if opts['model'] == 'las':
    return _las_config(opts)
  if opts['model'] != 'transformer':
    raise ValueError(f"unknown model {opts['model']!r} for configs/asr.py; known: ['transformer', 'las'].")
  model = dict(name='asr.ASR', vocab_size=None, max_target_length=None, num_mel_bins=40, d_model=96,
               num_heads=4, encoder=opts['encoder'] or 'conformer', num_encoder_layers=4, num_decoder_layers=2,
               mlp_dim=192, conv_kernel_size=15, subsampling_channels=32, dropout_rate=0.1, specaugment=True,
               freq_mask_width=8, time_mask_width=20, encoder_attention=opts['attention'] or 'dot_product',
               ctc_weight=opts['ctc_weight'])
  train = dict(steps=6000, batch_size=32, log_every=100, eval_every=1000, checkpoint_every=1000)
  optim = dict(learning_rate=1e-3, warmup_steps=500, weight_decay=0.01)
  data = dict(eval_batch_size=32, options=_voices(opts['voices']))
  objective = _objective(opts)
  compare = dict(variants='dot_product,linear,performer', seeds=3)
  if opts['suite']:
    model.update(d_model=64, mlp_dim=128, num_encoder_layers=2, num_decoder_layers=1, subsampling_channels=16,
                 dropout_rate=0.0, specaugment=False)
    train.update(steps=600, batch_size=16, eval_every=0, checkpoint_every=0)
    optim.update(learning_rate=2e-3, warmup_steps=100)
    data.update(eval_examples=100)
    compare.update(variants='dot_product,linear', seeds=2)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=8, eval_examples=8)
    train.update(steps=4, batch_size=4, log_every=2, eval_every=0, checkpoint_every=2)
    optim.update(warmup_steps=1)
    model.update(num_mel_bins=16, d_model=16, num_heads=2, mlp_dim=32, num_encoder_layers=1,
                 num_decoder_layers=1, subsampling_channels=4, conv_kernel_size=3, dropout_rate=0.0,
                 specaugment=False)
    compare.update(variants='dot_product,linear', seeds=2)
  return make_config(task='spoken_digits', name='asr', kind='asr', model=model, data=data, train=train,
                     optim=optim, objective=objective, variant_fields='model.encoder_attention',
                     compare=compare)


def _objective(opts, decode='ctc_greedy'):
  return dict(decode_method=opts['decode'] or decode, beam_size=4, ctc_margin=opts['ctc_margin'],
              decoding_modes='all' if opts['modes'] else '', snr_db='20,10,5,0' if opts['snr'] else '')


def _voices(choice):
  """spoken_digits options for voices=all|seen|unseen."""
  seen = tuple(v for v in VOICES if v not in HELD_OUT_VOICES)
  options = {'all': {}, 'seen': dict(voices=seen), 'unseen': dict(voices=seen, test_voices=HELD_OUT_VOICES)}
  if choice not in options:
    raise ValueError(f'unknown voices={choice!r} for configs/asr.py; known: {sorted(options)}.')
  return options[choice]


def _las_config(opts):
  """model=las: listen-attend-spell, the variants are the speller's attention (layers.las_attention)."""
  if opts['encoder']:
    raise ValueError(f"encoder={opts['encoder']!r} is an option of model=transformer; las has its pyramidal BLSTM.")
  model = dict(name='las.LAS', vocab_size=None, max_target_length=None, num_mel_bins=40, encoder_hidden=64,
               num_encoder_layers=3, pyramid_layers=2, embed_size=32, decoder_hidden=128, num_decoder_layers=1,
               attention=opts['attention'] or 'location', attention_size=64, dropout_rate=0.1, specaugment=True,
               ctc_weight=opts['ctc_weight'])
  train = dict(steps=1000, batch_size=16, log_every=100, eval_every=0, checkpoint_every=500)
  optim = dict(learning_rate=2e-3, warmup_steps=100, weight_decay=0.01)
  data = dict(eval_batch_size=32, eval_examples=200, options=_voices(opts['voices']))
  compare = dict(variants='location,coverage,mocha', seeds=1)
  if opts['suite']:
    train.update(steps=600, checkpoint_every=0)
    model.update(specaugment=False, dropout_rate=0.0)
    data.update(eval_examples=100)
  if opts['smoke']:
    data.update(size='small', eval_batch_size=8, eval_examples=8)
    train.update(steps=4, batch_size=4, log_every=2, checkpoint_every=2)
    optim.update(warmup_steps=1)
    model.update(num_mel_bins=16, encoder_hidden=8, num_encoder_layers=2, pyramid_layers=1, embed_size=8,
                 decoder_hidden=16, attention_size=8, location_filters=4, location_kernel=5, dropout_rate=0.0,
                 specaugment=False)
    compare.update(variants='location,mocha')
  return make_config(task='spoken_digits', name='asr (las)', kind='asr', model=model, data=data, train=train,
                     optim=optim, objective=_objective(opts, 'attention_greedy'), variant_fields='model.attention',
                     compare=compare)
