"""A pre-norm transformer encoder over tokens with a key-padding mask."""

from __future__ import annotations

import torch
from torch import nn


class Transformer(nn.Module):
    """``depth`` pre-norm blocks (``nn.TransformerEncoderLayer``) and a final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None, n_blocks: int | None = None) -> torch.Tensor:
        """x (B, N, dim); ``valid`` (B, N) True for real tokens; ``n_blocks``: run only the first blocks (then the
        final norm)."""
        pad = None if valid is None or bool(valid.all()) else ~valid
        for block in self.blocks[:n_blocks]:
            x = block(x, src_key_padding_mask=pad)
        return self.norm(x)
