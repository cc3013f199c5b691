"""Decoding heads on encoder tokens: masked mean pooling + linear / MLP, and attention pooling.

Every head takes ``tokens`` (B, N, D) and ``token_mask`` (B, N) bool (True = valid token) and returns
(B, n_outputs). Padded tokens never change the output.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

HEADS = ("linear", "mlp", "attention")


def masked_mean(tokens: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over valid tokens: (B, N, D), (B, N) → (B, D)."""
    if token_mask is None:
        return tokens.mean(1)
    w = token_mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * w).sum(1) / w.sum(1).clamp_min(1.0)


class LinearHead(nn.Module):
    """Masked mean pooling → LayerNorm → Linear (the linear probe)."""

    def __init__(self, dim: int, n_outputs: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, n_outputs)

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.drop(self.norm(masked_mean(tokens, token_mask))))


class MLPHead(nn.Module):
    """Masked mean pooling → LayerNorm → Linear → GELU → Dropout → Linear."""

    def __init__(self, dim: int, n_outputs: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_outputs))

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(self.norm(masked_mean(tokens, token_mask)))


class AttentionPoolHead(nn.Module):
    """Learned queries attend over the valid tokens (multi-head), then LayerNorm → Linear.

    Parameters
    ----------
    dim : int
        Token width.
    n_outputs : int
        Classes (or 1 for regression).
    n_heads : int
        Attention heads (``dim`` must be divisible by it; lowered to a divisor otherwise).
    n_queries : int
        Learned queries, concatenated before the classifier.
    """

    def __init__(self, dim: int, n_outputs: int, n_heads: int = 4, n_queries: int = 1, dropout: float = 0.1):
        super().__init__()
        while dim % n_heads:
            n_heads -= 1
        self.query = nn.Parameter(torch.randn(n_queries, dim) * dim**-0.5)
        self.norm_in = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim * n_queries)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim * n_queries, n_outputs)

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        b = tokens.shape[0]
        q = repeat(self.query, "q d -> b q d", b=b)
        kv = self.norm_in(tokens)
        pad = None
        if token_mask is not None:
            pad = ~token_mask
            empty = pad.all(1)
            if empty.any():  # a window without valid tokens: attend to all rather than produce NaN
                pad = pad & ~empty.unsqueeze(1)
        out, _ = self.attn(q, kv, kv, key_padding_mask=pad, need_weights=False)
        return self.fc(self.drop(self.norm(rearrange(out, "b q d -> b (q d)"))))


def create_head(kind: str, dim: int, n_outputs: int, **kwargs) -> nn.Module:
    """``linear`` (probe), ``mlp`` or ``attention``."""
    from neurofm._errors import ConfigError, suggest

    cls = {"linear": LinearHead, "mlp": MLPHead, "attention": AttentionPoolHead}.get(kind)
    if cls is None:
        raise ConfigError(f"unknown head '{kind}'.{suggest(kind, HEADS)}", hint=f"use one of {', '.join(HEADS)}.")
    return cls(dim, n_outputs, **kwargs)
