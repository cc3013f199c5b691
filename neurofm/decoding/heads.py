"""Decoding heads on encoder tokens: masked mean pooling + linear / MLP, per-channel pooling + linear, and
attention pooling.

Every head takes ``tokens`` (B, N, D) and ``token_mask`` (B, N) bool (True = valid token) and returns
(B, n_outputs). Padded tokens never change the output. Every head pools, then applies its LayerNorm ``norm``
to the ``n_features`` pooled values, then classifies (:mod:`neurofm.decoding.adapt` standardises that input
per subject).
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

HEADS = ("linear", "mlp", "attention", "channels")


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
        self.n_features = dim  # the pooled features entering the LayerNorm
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, n_outputs)

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.drop(self.norm(masked_mean(tokens, token_mask))))


class ChannelHead(nn.Module):
    """Masked mean over each channel's patches → LayerNorm → Dropout → Linear on the (channel × dim) features.

    Mean pooling over every token averages away *where* a feature changed (which channel's alpha dropped); this
    head keeps one pooled vector per channel, as band power keeps one power per channel. Tokens must be laid
    out channel-major, (B, C·P, D) with ``n_chans`` = C, as neurofm tokenizers and LBMs emit them.
    """

    def __init__(self, dim: int, n_outputs: int, n_chans: int | None = None, dropout: float = 0.1):
        super().__init__()
        if not n_chans:
            from neurofm._errors import ConfigError

            raise ConfigError("the 'channels' head pools each channel's tokens and needs the number of channels.",
                              hint="build it through a decoder (neurofm finetune), which passes the task's channels.")
        self.n_chans, self.n_features = int(n_chans), int(n_chans) * dim
        self.norm = nn.LayerNorm(self.n_features)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(self.n_features, n_outputs)

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = tokens.shape
        if n % self.n_chans:
            from neurofm._errors import ContractError

            raise ContractError(f"{n} tokens do not split into {self.n_chans} channels: the encoder's tokens are not "
                                "channel-major.", hint="use --head linear (or attention) for this encoder.")
        t = rearrange(tokens, "b (c p) d -> (b c) p d", c=self.n_chans)
        m = None if token_mask is None else rearrange(token_mask, "b (c p) -> (b c) p", c=self.n_chans)
        pooled = rearrange(masked_mean(t, m), "(b c) d -> b (c d)", b=b)  # a padded channel pools to 0
        return self.fc(self.drop(self.norm(pooled)))


class MLPHead(nn.Module):
    """Masked mean pooling → LayerNorm → Linear → GELU → Dropout → Linear."""

    def __init__(self, dim: int, n_outputs: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.n_features = dim
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
        self.n_features = dim * n_queries
        self.norm = nn.LayerNorm(self.n_features)
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
    """``linear`` (probe), ``mlp``, ``attention`` or ``channels`` (``n_chans=C``; ignored by the others)."""
    from neurofm._errors import ConfigError, suggest

    cls = {"linear": LinearHead, "mlp": MLPHead, "attention": AttentionPoolHead, "channels": ChannelHead}.get(kind)
    if cls is None:
        raise ConfigError(f"unknown head '{kind}'.{suggest(kind, HEADS)}", hint=f"use one of {', '.join(HEADS)}.")
    n_chans = kwargs.pop("n_chans", None)
    if cls is ChannelHead:
        kwargs["n_chans"] = n_chans
    return cls(dim, n_outputs, **kwargs)
