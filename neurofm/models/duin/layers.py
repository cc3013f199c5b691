"""Building blocks of the Du-IN models: per-subject channel fusion, patch tokenizer, transformer blocks."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neurofm._errors import ContractError

SHARED = "*"  # input-layer key shared by every item (single-channel data such as Bonn, braindecode-style use)


def module_key(key: str) -> str:
    """A ModuleDict-safe version of a subject key (``"bonn/A001"`` → ``"bonn_A001"``)."""
    return "k_" + re.sub(r"[^0-9A-Za-z_]", "_", key)


def allocate(sizes: Sequence[int], total: int) -> list[int]:
    """Split ``total`` hidden channels among regions of these sizes: at least one each, else proportional."""
    if len(sizes) > total:
        raise ContractError(f"{len(sizes)} regions but only {total} hidden channels to fuse them into.",
                            hint="raise model_kwargs.hidden, group by 'shaft' (fewer regions), select fewer regions, "
                                 "or use fusion: subject.")
    out = [1] * len(sizes)
    rest = total - len(sizes)
    weights = [s / sum(sizes) for s in sizes]
    shares = [w * rest for w in weights]
    floors = [int(s) for s in shares]
    out = [o + f for o, f in zip(out, floors, strict=True)]
    left = rest - sum(floors)
    for i in sorted(range(len(sizes)), key=lambda i: shares[i] - floors[i], reverse=True)[:left]:
        out[i] += 1
    return out


class SubjectLayers(nn.Module):
    """Per-subject linear maps between a subject's contacts and a fixed number of hidden channels.

    ``direction="in"`` fuses contacts (C_s) into ``hidden`` channels at every sample (Du-IN's region
    fusion); ``direction="out"`` maps hidden channels back to the contacts (the VQ-VAE's readout).
    With ``fusion="region"`` the map is block-sparse: each region's contacts feed only its own share
    of hidden channels; with ``fusion="subject"`` every contact may feed every hidden channel.

    Parameters
    ----------
    hidden : int
        Hidden channels.
    subjects : dict
        Input key → ordered contact names.
    regions : dict | None
        Input key → {region: contact names}; needed for ``fusion="region"``.
    """

    def __init__(self, hidden: int, subjects: dict[str, list[str]] | None = None,
                 regions: dict[str, dict[str, list[str]]] | None = None, fusion: str = "subject",
                 direction: str = "in"):
        super().__init__()
        if fusion not in ("subject", "region"):
            raise ContractError(f"fusion '{fusion}' is not 'subject' or 'region'.", hint="set model_kwargs.fusion.")
        self.hidden, self.fusion, self.direction = hidden, fusion, direction
        self.layers = nn.ModuleDict()
        self.channels: dict[str, list[str]] = {}
        self._index: dict[tuple[str, tuple[str, ...]], torch.Tensor] = {}
        self._warned: set[str] = set()
        for key, names in (subjects or {}).items():
            self.add(key, names, (regions or {}).get(key))

    def add(self, key: str, names: list[str], regions: dict[str, list[str]] | None = None) -> None:
        """Create the layer of a new input key (call before the optimizer is built)."""
        mkey = module_key(key)
        if mkey in self.layers:
            if self.channels[key] != list(names):
                raise ContractError(f"subject '{key}' already has an input layer for other channels.",
                                    hint="use a new subject key for a different montage.")
            return
        if any(module_key(k) == mkey for k in self.channels):
            raise ContractError(f"subject keys collide after sanitising: '{key}'.", hint="rename the subject.")
        if not names:
            raise ContractError(f"subject '{key}' has no channels.", hint="check the region selection.")
        c = len(names)
        lin = nn.Linear(c, self.hidden) if self.direction == "in" else nn.Linear(self.hidden, c)
        if self.fusion == "region":
            groups = regions or {"all": list(names)}
            sizes = [len(g) for g in groups.values()]
            shares = allocate(sizes, self.hidden)
            block = torch.zeros(self.hidden, c)
            start = 0
            for (_, members), share in zip(groups.items(), shares, strict=True):
                cols = [names.index(m) for m in members]
                block[start:start + share, cols] = 1.0
                start += share
            mask = block if self.direction == "in" else block.T
            lin.register_buffer("block", mask.contiguous())
            with torch.no_grad():
                lin.weight.mul_(lin.block)
        self.layers[mkey] = lin
        self.channels[key] = list(names)

    def keys(self) -> list[str]:
        return list(self.channels)

    def index(self, key: str, ch_names: Sequence[str] | None, n_chans: int) -> torch.Tensor:
        """Positions of the key's channels in an item with ``ch_names`` (-1 where missing)."""
        names = self.channels[key]
        if ch_names is None:
            if n_chans != len(names):
                raise ContractError(f"input has {n_chans} channels but subject '{key}' has {len(names)}, and no "
                                    "channel names were given to match them.",
                                    hint="pass ch_names (and subject) so channels can be matched by name.")
            return torch.arange(len(names))
        ck = (key, tuple(ch_names))
        hit = self._index.get(ck)
        if hit is None:
            where = {n: i for i, n in enumerate(ch_names)}
            hit = torch.tensor([where.get(n, -1) for n in names])
            missing = [n for n in names if n not in where]
            if missing and key not in self._warned:
                self._warned.add(key)
                warnings.warn(f"subject '{key}': {len(missing)} of its channels are missing from the input and are "
                              f"masked (zero after normalisation): {missing[:8]}", stacklevel=3)
            if len(missing) == len(names):
                raise ContractError(f"none of subject '{key}''s channels is in the input {list(ch_names)[:8]}.",
                                    hint="pass the right subject key, or add an input layer with model.add_subject().")
            self._index[ck] = hit
        return hit

    def gather(self, x: torch.Tensor, key: str, ch_names: Sequence[Sequence[str]] | None,
               valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The key's channels of every item of ``x`` (b, C, T) → (b, C_s, T) and a (b, C_s) presence mask."""
        b, c, _ = x.shape
        rows = [self.index(key, None if ch_names is None else ch_names[i], c) for i in range(b)]
        idx = torch.stack(rows).to(x.device)
        present = idx >= 0
        out = torch.gather(x, 1, idx.clamp(min=0).unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        if valid is not None:
            present = present & torch.gather(valid, 1, idx.clamp(min=0))
        return out * present.unsqueeze(-1), present

    def apply(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """(b, C_in, T) → (b, C_out, T) through the key's layer."""
        lin = self.layers[module_key(key)]
        w = lin.weight * lin.block if hasattr(lin, "block") else lin.weight
        return torch.einsum("oc,bct->bot", w, x) + lin.bias[None, :, None]


def resolve_keys(layers: SubjectLayers, n: int, subject: str | Sequence[str] | None,
                 ch_names: Sequence[Sequence[str]] | None) -> list[str]:
    """Input key of each of ``n`` items: given, shared, the only one, or the best channel-name match."""
    if subject is not None:
        keys = [subject] * n if isinstance(subject, str) else [str(s) for s in subject]
        if SHARED in layers.channels:
            keys = [k if k in layers.channels else SHARED for k in keys]
        unknown = sorted({k for k in keys if k not in layers.channels})
        if unknown:
            raise ContractError(f"no input layer for subject(s) {unknown[:5]}; the model knows {layers.keys()[:8]}.",
                                hint="fine-tune with these subjects in the data (the Du-IN modules add their layers in "
                                     "setup), or call model.add_subject(key, ch_names) before building the optimizer.")
        return keys
    if SHARED in layers.channels or len(layers.channels) == 1:
        return [next(iter(layers.channels))] * n if SHARED not in layers.channels else [SHARED] * n
    if ch_names is None:
        raise ContractError(f"the model has input layers for {len(layers.channels)} subjects; say which one.",
                            hint="pass subject=... (or ch_names=... to match by channel names).")
    keys = []
    for names in ch_names:
        overlap = {k: len(set(names) & set(v)) for k, v in layers.channels.items()}
        best = max(overlap, key=overlap.get)
        if overlap[best] == 0:
            raise ContractError(f"channels {list(names)[:6]} match no subject of the model.",
                                hint="pass subject=... or add an input layer with model.add_subject().")
        keys.append(best)
    return keys


class PatchTokenizer(nn.Module):
    """Three Conv1d + BatchNorm + GELU stages over each patch of the fused channels, then a linear token.

    (B, H, T) → (B, N, dim) with N = T // patch_size.
    """

    def __init__(self, in_chans: int, patch_size: int, dim: int, widths: Sequence[int] = (64, 64, 32),
                 kernels: Sequence[int] = (9, 7, 5), strides: Sequence[int] = (2, 2, 2)):
        super().__init__()
        self.patch_size = patch_size
        stages, c = [], in_chans
        for w, k, s in zip(widths, kernels, strides, strict=True):
            stages += [nn.Conv1d(c, w, k, stride=s, padding=k // 2), nn.BatchNorm1d(w), nn.GELU()]
            c = w
        self.convs = nn.Sequential(*stages)
        with torch.no_grad():
            n_out = self.convs(torch.zeros(2, in_chans, patch_size)).shape[-1]
        self.proj = nn.Linear(c * n_out, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        if t % self.patch_size:
            raise ContractError(f"{t} samples are not a multiple of the {self.patch_size}-sample patch.",
                                hint="window the data with window_s a multiple of the patch length.")
        patches = rearrange(x, "b h (n p) -> (b n) h p", p=self.patch_size)
        feats = self.convs(patches).flatten(1)
        return rearrange(self.proj(feats), "(b n) d -> b n d", b=b)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, dim * 3)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out(rearrange(y, "b h n d -> b n (h d)"))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class FlattenHead(nn.Module):
    """Du-IN's classifier: flatten the tokens → hidden → n_outputs."""

    def __init__(self, n_tokens: int, dim: int, n_outputs: int, hidden: int = 128, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(1), nn.Dropout(dropout), nn.Linear(n_tokens * dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, n_outputs))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)


class MeanHead(nn.Module):
    """Mean-pooled tokens → hidden → n_outputs (any number of tokens)."""

    def __init__(self, dim: int, n_outputs: int, hidden: int = 128, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Dropout(dropout), nn.Linear(dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, n_outputs))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens.mean(1))


class TokenRegressionHead(nn.Module):
    """One prediction per token (per 100-ms patch): (B, N, dim) → (B, N, n_outputs)."""

    def __init__(self, dim: int, n_outputs: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_outputs))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)
