"""Signal tokenizers: multi-scale residual VQ (NeuroRVQ-style) and single-codebook VQ (LaBraM-style)."""

from neurofm.models.tokenizers.base import Tokenizer, TokenizerOutput
from neurofm.models.tokenizers.labram_vq import LaBraMVQ
from neurofm.models.tokenizers.neurorvq import NeuroRVQ

__all__ = ["Tokenizer", "TokenizerOutput", "NeuroRVQ", "LaBraMVQ"]
