"""Readers: any recording MNE reads, BIDS trees, and the channel contract."""

from neurofm.io._formats import check_extension, read_edf_header, split_ext
from neurofm.io._read import read_raw, standardize_channels
from neurofm.io.channels import ChannelTable, canonical_scalp_name, shaft_of, type_from_name
from neurofm.io.sidecars import Sidecars

__all__ = [
    "ChannelTable", "Sidecars", "canonical_scalp_name", "check_extension", "read_edf_header", "read_raw",
    "shaft_of", "split_ext", "standardize_channels", "type_from_name",
]
