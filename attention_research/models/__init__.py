"""Models built from the attention layers: Transformer family, RNN seq2seq, captioner, ASR, ViT, STN classifier.

Each is an NNX module configured by a frozen dataclass that validates itself on construction.
"""

from attention_research.models import ctc, decoding
from attention_research.models.asr import ASR, ASRConfig, hybrid_loss
from attention_research.models.captioner import Captioner, CaptionerConfig
from attention_research.models.seq2seq_rnn import RNNSeq2Seq, RNNSeq2SeqConfig
from attention_research.models.stn import STNClassifier, STNConfig
from attention_research.models.transformer import DecoderLM, Encoder, EncoderDecoder, TransformerConfig
from attention_research.models.vit import ViT, ViTConfig

__all__ = ['ASR', 'ASRConfig', 'Captioner', 'CaptionerConfig', 'DecoderLM', 'Encoder', 'EncoderDecoder',
           'RNNSeq2Seq', 'RNNSeq2SeqConfig', 'STNClassifier', 'STNConfig', 'TransformerConfig', 'ViT', 'ViTConfig',
           'ctc', 'decoding', 'hybrid_loss']
