"""Spatial embedding of channels: by canonical name where known, always by position.

Unknown channels (not in the 10-05 vocabulary, e.g. sEEG contacts) are embedded from their
positions alone; channels with neither a known name nor a position get a learned "unknown"
vector, and the model reports them. Nothing is dropped.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn


@lru_cache(maxsize=1)
def channel_vocabulary() -> tuple[str, ...]:
    """The canonical 10-05 names (index 0 is reserved for "not in the vocabulary")."""
    from neurofm.io.channels import _standard_positions

    return ("<unk>", *sorted(canonical for canonical, _ in _standard_positions().values()))


class FourierPosition(nn.Module):
    """Random Fourier features of 3-D positions (metres) → ``dim``."""

    def __init__(self, dim: int, n_freqs: int = 32, scale_m: float = 0.1, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(3, n_freqs, generator=g) * (2 * math.pi / scale_m), persistent=False)
        self.proj = nn.Sequential(nn.Linear(2 * n_freqs, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        z = pos @ self.freqs
        return self.proj(torch.cat([z.sin(), z.cos()], dim=-1))


class ChannelEmbedding(nn.Module):
    """``name embedding + position embedding`` per channel.

    Parameters
    ----------
    dim : int
        Embedding width.
    use_names : bool
        Learn one vector per 10-05 name (scalp EEG). Off for intracranial-only models.
    """

    def __init__(self, dim: int, use_names: bool = True):
        super().__init__()
        self.vocab = channel_vocabulary()
        self.index = {name: i for i, name in enumerate(self.vocab)}
        self.use_names = use_names
        self.names = nn.Embedding(len(self.vocab), dim) if use_names else None
        self.position = FourierPosition(dim)
        self.no_position = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.no_position, std=0.02)
        if self.names is not None:
            nn.init.trunc_normal_(self.names.weight, std=0.02)

    def name_ids(self, ch_names: list[list[str]], n_chans: int, device: torch.device) -> torch.Tensor:
        ids = torch.zeros(len(ch_names), n_chans, dtype=torch.long)
        for b, names in enumerate(ch_names):
            for c, name in enumerate(names[:n_chans]):
                ids[b, c] = self.index.get(name, 0)
        return ids.to(device)

    def forward(self, n_batch: int, n_chans: int, *, pos: torch.Tensor | None = None,
                ch_names: list[list[str]] | None = None, device: torch.device | None = None) -> torch.Tensor:
        """(B, C, dim) embeddings."""
        device = device or self.no_position.device
        out = torch.zeros(n_batch, n_chans, self.no_position.shape[0], device=device)
        if pos is not None:
            known = torch.isfinite(pos).all(-1)
            emb = self.position(torch.nan_to_num(pos.to(device), nan=0.0))
            out = torch.where(known[..., None], emb, self.no_position.expand_as(out))
        else:
            out = out + self.no_position
        if self.names is not None and ch_names is not None:
            ids = self.name_ids(ch_names, n_chans, device)
            out = out + self.names(ids) * (ids > 0)[..., None]
        return out
