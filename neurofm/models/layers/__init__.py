"""Building blocks shared by neurofm models."""

from neurofm.models.layers.channels import ChannelEmbedding, channel_vocabulary
from neurofm.models.layers.conv import MultiScalePatchEmbed, TemporalConvBranch
from neurofm.models.layers.rvq import MultiScaleResidualVQ
from neurofm.models.layers.spectral import (
           SpectralTargets,
           multi_resolution_stft_loss,
           rebuild_patch,
           spectral_loss,
)
from neurofm.models.layers.transformer import Transformer

__all__ = ["ChannelEmbedding", "channel_vocabulary", "MultiScalePatchEmbed", "TemporalConvBranch",
           "MultiScaleResidualVQ",
           "SpectralTargets", "multi_resolution_stft_loss", "rebuild_patch", "spectral_loss", "Transformer"]
