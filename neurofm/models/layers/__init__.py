"""Building blocks shared by neurofm models."""

from neurofm.models.layers.channels import ChannelEmbedding, channel_vocabulary
from neurofm.models.layers.conv import MultiScalePatchEmbed, TemporalConvBranch
from neurofm.models.layers.spectral import SpectralTargets, rebuild_patch, spectral_loss
from neurofm.models.layers.transformer import Transformer

__all__ = ["ChannelEmbedding", "channel_vocabulary", "MultiScalePatchEmbed", "TemporalConvBranch",
           "SpectralTargets", "rebuild_patch", "spectral_loss", "Transformer"]
