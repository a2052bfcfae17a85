"""Flax NNX layers built on the attention functions. Linen users wrap them with flax.nnx.bridge.to_linen."""

from attention_research.layers.attention import MultiHeadAttention, RandomFeatures
from attention_research.layers.blocks import ACTIVATIONS, MLP, TransformerBlock
from attention_research.layers.capture import capture_attention, capturing
from attention_research.layers.positional import (POSITIONAL_SCHEMES, LearnedPositionEmbedding,
                                                  RelativePositionBias, check_scheme)
from attention_research.layers.rnn_attention import LUONG_SCORES, AdditiveAttention, LuongAttention
from attention_research.layers.spatial_transformer import SpatialTransformer

__all__ = ['MultiHeadAttention', 'RandomFeatures', 'ACTIVATIONS', 'MLP', 'TransformerBlock', 'POSITIONAL_SCHEMES',
           'LearnedPositionEmbedding', 'RelativePositionBias', 'check_scheme', 'AdditiveAttention',
           'LuongAttention', 'LUONG_SCORES', 'capture_attention', 'capturing', 'SpatialTransformer']
