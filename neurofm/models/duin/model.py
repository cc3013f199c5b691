"""Du-IN-style models for intracranial recordings: VQ-VAE, masked code model, classifier/regressor.

After Zheng et al. (Du-IN, NeurIPS 2024; MIT-licensed reference code, reimplemented here):

- per-subject **fusion** of a subject's contacts (any number, grouped into regions from data) into a
  fixed number of hidden channels at every sample;
- a **patch tokenizer** (three Conv1d + BatchNorm stages per 100-ms patch) and a **transformer**
  trunk shared across subjects;
- a **VQ-VAE** whose codes (one l2-normalised EMA codebook) reconstruct the contacts' waveforms;
- **masked code modelling**: 50 % of the tokens replaced by a mask token, plus the complementary mask,
  cross-entropy on the frozen VQ-VAE's codes;
- a **classifier** (flatten → 128 → n_outputs, as Du-IN) or a per-token **regression** head.

Inputs are ``(batch, n_chans, n_times)`` tensors, z-scored per channel with training-split statistics
(the data modules do that), with ``ch_names`` and ``subject`` per item to pick each item's input layer.
Every model exposes ``num_features``, ``forward_features`` (tokens and a token mask) and
``layer_groups`` (parameters from input to output, for layer-wise learning-rate decay).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neurofm._errors import ContractError
from neurofm.models.duin.layers import (
    SHARED,
    Block,
    FlattenHead,
    MeanHead,
    PatchTokenizer,
    SubjectLayers,
    TokenRegressionHead,
    resolve_keys,
)
from neurofm.models.duin.quantizer import CodebookQuantizer

SIZES: dict[str, dict[str, Any]] = {
    # Du-IN as published: 16 hidden channels, 160-d tokens, 8 blocks × 8 heads, codebook 2048 × 64.
    "base": dict(hidden=16, dim=160, depth=8, heads=8, widths=(64, 64, 32), code_dim=64, codebook_size=2048,
                 decoder_depth=4),
    # For CPUs, tests and the small shared recordings.
    "tiny": dict(hidden=16, dim=64, depth=2, heads=4, widths=(32, 32, 16), code_dim=32, codebook_size=256,
                 decoder_depth=1),
}


def _as_names(ch_names: Any, n: int) -> list[list[str]] | None:
    """Per-item channel names from a list of lists, a single list (same for all) or None."""
    if ch_names is None:
        return None
    if len(ch_names) and isinstance(ch_names[0], str):
        return [list(ch_names)] * n
    return [list(c) for c in ch_names]


class DuINEncoder(nn.Module):
    """Per-subject fusion → patch tokenizer → positional embedding → transformer.

    Parameters
    ----------
    subjects : dict | None
        Input key → ordered channel names (one input layer each).
    regions : dict | None
        Input key → {region: channel names}, for ``fusion="region"`` (and recorded in the contract).
    n_chans, ch_names, chs_info : int, list of str, list of dict
        braindecode-style use without subjects: one shared input layer over these channels (matched by
        name when ``ch_names`` are passed at forward time, else by position).
    sfreq, patch_s, n_times : float, float, int
        The signal contract: ``patch_size = round(patch_s * sfreq)`` samples per token; ``n_times``
        fixes the number of tokens (``n_times // patch_size``) the positional embedding covers.
    """

    def __init__(self, *, hidden: int = 16, dim: int = 160, depth: int = 8, heads: int = 8, mlp_ratio: float = 4.0,
                 widths: Sequence[int] = (64, 64, 32), dropout: float = 0.1, sfreq: float = 1000.0,
                 patch_s: float = 0.1, n_times: int = 3000, fusion: str = "subject",
                 subjects: dict[str, list[str]] | None = None, regions: dict[str, dict[str, list[str]]] | None = None,
                 n_chans: int | None = None, chs_info: list[dict] | None = None, ch_names: list[str] | None = None):
        super().__init__()
        self.patch_size = int(round(patch_s * sfreq))
        if self.patch_size < 4:
            raise ContractError(f"patch of {self.patch_size} samples ({patch_s} s at {sfreq} Hz) is too short.",
                                hint="use patch_s ≥ 4 samples (Du-IN: 0.1 s at 1000 Hz).")
        self.n_patches = n_times // self.patch_size
        self.hidden, self.dim = hidden, dim
        if not subjects and (n_chans or ch_names or chs_info):
            names = (list(ch_names) if ch_names else [c["ch_name"] for c in chs_info] if chs_info
                     else [f"ch{i}" for i in range(n_chans)])
            if n_chans and len(names) != n_chans:
                raise ContractError(f"{len(names)} channel names for n_chans={n_chans}.", hint="give one name per channel.")
            subjects = {SHARED: names}
        self.inputs = SubjectLayers(hidden, subjects, regions, fusion, "in")
        self.tokenizer = PatchTokenizer(hidden, self.patch_size, dim, widths)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.n_patches, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def fuse(self, x: torch.Tensor, keys: Sequence[str], ch_names: list[list[str]] | None,
             valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T) → (B, hidden, T), each item through its own subject's layer."""
        out = x.new_zeros(x.shape[0], self.hidden, x.shape[-1])
        for key in dict.fromkeys(keys):
            rows = [i for i, k in enumerate(keys) if k == key]
            sel = torch.tensor(rows, device=x.device)
            names = None if ch_names is None else [ch_names[i] for i in rows]
            xs, _ = self.inputs.gather(x[sel], key, names, None if valid is None else valid[sel])
            out[sel] = self.inputs.apply(key, xs)
        return out

    def forward(self, x: torch.Tensor, keys: Sequence[str], ch_names: list[list[str]] | None = None,
                valid: torch.Tensor | None = None, replace: torch.Tensor | None = None,
                mask_token: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, N, dim). ``replace`` (B, N) bool swaps those tokens for ``mask_token`` before the trunk."""
        tokens = self.tokenizer(self.fuse(x, keys, ch_names, valid))
        n = tokens.shape[1]
        if n > self.n_patches:
            raise ContractError(f"{n} patches per window, but the model was built for {self.n_patches}.",
                                hint=f"use windows of at most {self.n_patches * self.patch_size} samples, or build "
                                     "the model with a larger n_times.")
        if replace is not None:
            tokens = torch.where(replace.unsqueeze(-1), mask_token.to(tokens.dtype).expand_as(tokens), tokens)
        h = tokens + self.pos_embed[:, :n]
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        first = [*self.inputs.parameters(), *self.tokenizer.parameters(), self.pos_embed]
        return [first, *[list(b.parameters()) for b in self.blocks], list(self.norm.parameters())]


class _DuINBase(nn.Module):
    """Shared plumbing: subject resolution, forward_features, layer groups, new subjects."""

    encoder: DuINEncoder

    @property
    def num_features(self) -> int:
        return self.encoder.dim

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    def subjects(self) -> dict[str, list[str]]:
        return dict(self.encoder.inputs.channels)

    def add_subject(self, key: str, ch_names: list[str], regions: dict[str, list[str]] | None = None) -> None:
        """Add an input layer (and readout, for the VQ-VAE) for a new subject; before building the optimizer."""
        self.encoder.inputs.add(key, ch_names, regions)

    def _keys(self, x: torch.Tensor, subject: Any, ch_names: Any) -> tuple[list[str], list[list[str]] | None]:
        names = _as_names(ch_names, x.shape[0])
        return resolve_keys(self.encoder.inputs, x.shape[0], subject, names), names

    def forward_features(self, x: torch.Tensor, *, pos: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                         ch_names: Any = None, subject: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder tokens (B, N, dim) and a token mask (B, N), True = real token (all, here).

        ``mask`` (B, C) marks real channels (padding is ignored); ``pos`` is unused (fusion is learned per
        subject); ``subject`` picks the input layer (else the shared one, or the best channel-name match).
        """
        keys, names = self._keys(x, subject, ch_names)
        tokens = self.encoder(x, keys, names, mask)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        return self.encoder.layer_groups()


class DuINVQVAE(_DuINBase):
    """Encoder → code projection → codebook → transformer decoder → per-subject readout of the waveforms.

    ``forward`` returns a dict with ``loss`` (reconstruction MSE + commitment), ``recon_loss``,
    ``commit_loss``, ``indices`` (B, N) and ``recon``/``target``/``present`` per subject key.
    """

    def __init__(self, *, hidden: int = 16, dim: int = 160, depth: int = 8, heads: int = 8,
                 widths: Sequence[int] = (64, 64, 32), code_dim: int = 64, codebook_size: int = 2048,
                 decoder_depth: int = 4, ema_decay: float = 0.99, commitment: float = 1.0, kmeans_init: bool = True,
                 dead_code_threshold: float = 2.0, dropout: float = 0.0, **contract: Any):
        super().__init__()
        self.encoder = DuINEncoder(hidden=hidden, dim=dim, depth=depth, heads=heads, widths=widths, dropout=dropout,
                                   **contract)
        self.to_code = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, code_dim))
        self.quantizer = CodebookQuantizer(code_dim, codebook_size, decay=ema_decay, commitment=commitment,
                                           kmeans_init=kmeans_init, dead_code_threshold=dead_code_threshold)
        self.from_code = nn.Linear(code_dim, dim)
        self.dec_pos = nn.Parameter(torch.zeros(1, self.encoder.n_patches, dim))
        nn.init.trunc_normal_(self.dec_pos, std=0.02)
        self.decoder = nn.ModuleList(Block(dim, heads, 4.0, dropout) for _ in range(decoder_depth))
        self.dec_norm = nn.LayerNorm(dim)
        self.dec_head = nn.Linear(dim, hidden * self.encoder.patch_size)
        self.readout = SubjectLayers(hidden, self.encoder.inputs.channels,
                                     contract.get("regions"), contract.get("fusion", "subject"), "out")

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def set_sync_codebook(self, sync: bool) -> None:
        self.quantizer.set_sync_codebook(sync)

    def add_subject(self, key: str, ch_names: list[str], regions: dict[str, list[str]] | None = None) -> None:
        super().add_subject(key, ch_names, regions)
        self.readout.add(key, ch_names, regions)

    def encode(self, x: torch.Tensor, keys: Sequence[str], names: list[list[str]] | None,
               valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.to_code(self.encoder(x, keys, names, valid))

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor, *, subject: Any = None, ch_names: Any = None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """Code indices (B, N) of each patch: the targets of masked code modelling."""
        keys, names = self._keys(x, subject, ch_names)
        return self.quantizer.indices(self.encode(x, keys, names, mask))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Quantized codes (B, N, code_dim) → fused hidden waveforms (B, hidden, N * patch)."""
        h = self.from_code(codes) + self.dec_pos[:, :codes.shape[1]]
        for blk in self.decoder:
            h = blk(h)
        out = self.dec_head(self.dec_norm(h))
        return rearrange(out, "b n (h p) -> b h (n p)", h=self.encoder.hidden)

    def forward(self, x: torch.Tensor, *, subject: Any = None, ch_names: Any = None,
                mask: torch.Tensor | None = None) -> dict[str, Any]:
        keys, names = self._keys(x, subject, ch_names)
        z = self.encode(x, keys, names, mask)
        quantized, indices, commit = self.quantizer(z)
        fused = self.decode(quantized)
        sq_err, count, per_key = x.new_zeros(()), x.new_zeros(()), {}
        for key in dict.fromkeys(keys):
            rows = [i for i, k in enumerate(keys) if k == key]
            sel = torch.tensor(rows, device=x.device)
            sub_names = None if names is None else [names[i] for i in rows]
            target, present = self.encoder.inputs.gather(x[sel], key, sub_names, None if mask is None else mask[sel])
            recon = self.readout.apply(key, fused[sel])
            weight = present.unsqueeze(-1).to(x.dtype)
            sq_err = sq_err + (((recon - target) ** 2) * weight).sum()
            count = count + weight.sum() * x.shape[-1]
            per_key[key] = dict(recon=recon, target=target, present=present)
        recon_loss = sq_err / count.clamp(min=1)
        return dict(loss=recon_loss + commit, recon_loss=recon_loss, commit_loss=commit, indices=indices,
                    per_key=per_key)


class DuINMCM(_DuINBase):
    """Masked code model: predicts the frozen VQ-VAE's code of every masked token."""

    def __init__(self, *, hidden: int = 16, dim: int = 160, depth: int = 8, heads: int = 8,
                 widths: Sequence[int] = (64, 64, 32), codebook_size: int = 2048, dropout: float = 0.1,
                 code_dim: int | None = None, decoder_depth: int | None = None, **contract: Any):
        super().__init__()
        self.encoder = DuINEncoder(hidden=hidden, dim=dim, depth=depth, heads=heads, widths=widths, dropout=dropout,
                                   **contract)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, codebook_size))
        self.codebook_size = codebook_size

    def forward(self, x: torch.Tensor, *, subject: Any = None, ch_names: Any = None, mask: torch.Tensor | None = None,
                replace: torch.Tensor | None = None) -> torch.Tensor:
        """Code logits (B, N, codebook_size); tokens where ``replace`` is True are masked."""
        keys, names = self._keys(x, subject, ch_names)
        return self.head(self.encoder(x, keys, names, mask, replace, self.mask_token))

    def masked_code_loss(self, x: torch.Tensor, codes: torch.Tensor, *, subject: Any = None, ch_names: Any = None,
                         mask: torch.Tensor | None = None, ratio: float = 0.5, symmetric: bool = True,
                         generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Cross-entropy on the codes of masked tokens; with ``symmetric`` also on the complementary mask."""
        b, n = codes.shape
        scores = torch.rand(b, n, generator=generator).to(x.device)
        k = max(1, min(n - 1, int(round(ratio * n))))
        replace = torch.zeros(b, n, dtype=torch.bool, device=x.device)
        replace.scatter_(1, scores.argsort(1)[:, :k], True)
        masks = [replace, ~replace] if symmetric else [replace]
        losses, correct, total = [], x.new_zeros(()), 0
        for m in masks:
            logits = self(x, subject=subject, ch_names=ch_names, mask=mask, replace=m)
            losses.append(F.cross_entropy(logits[m], codes[m]))
            correct = correct + (logits[m].argmax(-1) == codes[m]).sum()
            total += int(m.sum())
        return dict(loss=torch.stack(losses).mean(), acc=correct / max(total, 1))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        groups = self.encoder.layer_groups()
        groups[0].append(self.mask_token)
        return [*groups, list(self.head.parameters())]


class DuINClassifier(_DuINBase):
    """Encoder + classification head (Du-IN: flatten → 128 → n_outputs) or per-token regression head.

    ``task="classification"`` returns logits (B, n_outputs); ``task="regression"`` returns one value per
    token and output, (B, N, n_outputs) — e.g. grip force per 100-ms patch.
    """

    def __init__(self, *, n_outputs: int = 61, task: str = "classification", head: str = "flatten",
                 head_hidden: int = 128, head_dropout: float = 0.5, hidden: int = 16, dim: int = 160, depth: int = 8,
                 heads: int = 8, widths: Sequence[int] = (64, 64, 32), dropout: float = 0.1,
                 code_dim: int | None = None, codebook_size: int | None = None, decoder_depth: int | None = None,
                 **contract: Any):
        super().__init__()
        if task not in ("classification", "regression"):
            raise ContractError(f"task '{task}' is not 'classification' or 'regression'.", hint="set model_kwargs.task.")
        if head not in ("flatten", "mean"):
            raise ContractError(f"head '{head}' is not 'flatten' or 'mean'.", hint="set model_kwargs.head.")
        self.task, self.n_outputs = task, n_outputs
        self.encoder = DuINEncoder(hidden=hidden, dim=dim, depth=depth, heads=heads, widths=widths, dropout=dropout,
                                   **contract)
        if task == "regression":
            self.head = TokenRegressionHead(dim, n_outputs, head_hidden, min(head_dropout, 0.2))
        elif head == "flatten":
            self.head = FlattenHead(self.encoder.n_patches, dim, n_outputs, head_hidden, head_dropout)
        else:
            self.head = MeanHead(dim, n_outputs, head_hidden, head_dropout)

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(tokens)

    def forward(self, x: torch.Tensor, *, subject: Any = None, ch_names: Any = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        tokens, _ = self.forward_features(x, mask=mask, ch_names=ch_names, subject=subject)
        return self.forward_head(tokens)

    def reset_classifier(self, n_outputs: int) -> None:
        """A fresh head for ``n_outputs`` (same kind)."""
        old = self.head
        dim = self.encoder.dim
        if isinstance(old, TokenRegressionHead):
            self.head = TokenRegressionHead(dim, n_outputs)
        elif isinstance(old, FlattenHead):
            self.head = FlattenHead(self.encoder.n_patches, dim, n_outputs)
        else:
            self.head = MeanHead(dim, n_outputs)
        self.n_outputs = n_outputs

    def layer_groups(self) -> list[list[nn.Parameter]]:
        return [*self.encoder.layer_groups(), list(self.head.parameters())]


def load_encoder_weights(model: _DuINBase, source: nn.Module) -> dict[str, list[str]]:
    """Copy ``source.encoder``'s weights into ``model.encoder`` where names and shapes agree.

    Input layers of subjects both know are copied too; new subjects keep their fresh layers. Returns
    ``{"loaded": [...], "skipped": [...]}`` (parameter names) so callers can report it.
    """
    src = source.encoder.state_dict()
    dst = model.encoder.state_dict()
    loaded, skipped = [], []
    for name, tensor in src.items():
        if name in dst and dst[name].shape == tensor.shape:
            dst[name] = tensor
            loaded.append(name)
        elif name == "pos_embed" and name in dst and dst[name].shape[1] < tensor.shape[1]:
            dst[name] = tensor[:, :dst[name].shape[1]]  # shorter windows: the leading positions
            loaded.append(name)
        else:
            skipped.append(name)
    model.encoder.load_state_dict(dst)
    return dict(loaded=loaded, skipped=skipped)


# ---- entrypoints (registered in neurofm/_builtins.py) -------------------------------------------------------
def _sized(size: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if size not in SIZES:
        raise ContractError(f"unknown Du-IN size '{size}'.", hint=f"use one of {sorted(SIZES)}.")
    return {**SIZES[size], **kwargs}


def duin_vqvae(size: str = "base", *, n_chans: int | None = None, n_times: int = 3000, sfreq: float = 1000.0,
               ch_names: list[str] | None = None, **kwargs: Any) -> DuINVQVAE:
    return DuINVQVAE(**_sized(size, dict(kwargs, n_chans=n_chans, n_times=n_times, sfreq=sfreq, ch_names=ch_names)))


def duin_mcm(size: str = "base", *, n_chans: int | None = None, n_times: int = 3000, sfreq: float = 1000.0,
             ch_names: list[str] | None = None, **kwargs: Any) -> DuINMCM:
    return DuINMCM(**_sized(size, dict(kwargs, n_chans=n_chans, n_times=n_times, sfreq=sfreq, ch_names=ch_names)))


def duin_classifier(size: str = "base", *, n_chans: int | None = None, n_outputs: int = 61, n_times: int = 3000,
                    sfreq: float = 1000.0, ch_names: list[str] | None = None, **kwargs: Any) -> DuINClassifier:
    return DuINClassifier(**_sized(size, dict(kwargs, n_chans=n_chans, n_outputs=n_outputs, n_times=n_times,
                                              sfreq=sfreq, ch_names=ch_names)))


def duin_vqvae_tiny(*, n_chans: int | None = None, n_times: int = 3000, sfreq: float = 1000.0,
                    ch_names: list[str] | None = None, **kwargs: Any) -> DuINVQVAE:
    return duin_vqvae("tiny", n_chans=n_chans, n_times=n_times, sfreq=sfreq, ch_names=ch_names, **kwargs)


def duin_vqvae_base(*, n_chans: int | None = None, n_times: int = 3000, sfreq: float = 1000.0,
                    ch_names: list[str] | None = None, **kwargs: Any) -> DuINVQVAE:
    return duin_vqvae("base", n_chans=n_chans, n_times=n_times, sfreq=sfreq, ch_names=ch_names, **kwargs)


def duin_mcm_tiny(*, n_chans: int | None = None, n_times: int = 3000, sfreq: float = 1000.0,
                  ch_names: list[str] | None = None, **kwargs: Any) -> DuINMCM:
    return duin_mcm("tiny", n_chans=n_chans, n_times=n_times, sfreq=sfreq, ch_names=ch_names, **kwargs)


def duin_mcm_base(*, n_chans: int | None = None, n_times: int = 3000, sfreq: float = 1000.0,
                  ch_names: list[str] | None = None, **kwargs: Any) -> DuINMCM:
    return duin_mcm("base", n_chans=n_chans, n_times=n_times, sfreq=sfreq, ch_names=ch_names, **kwargs)


def duin_classifier_tiny(*, n_chans: int | None = None, n_outputs: int = 61, n_times: int = 3000,
                         sfreq: float = 1000.0, ch_names: list[str] | None = None, **kwargs: Any) -> DuINClassifier:
    return duin_classifier("tiny", n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, sfreq=sfreq,
                           ch_names=ch_names, **kwargs)


def duin_classifier_base(*, n_chans: int | None = None, n_outputs: int = 61, n_times: int = 3000,
                         sfreq: float = 1000.0, ch_names: list[str] | None = None, **kwargs: Any) -> DuINClassifier:
    return duin_classifier("base", n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, sfreq=sfreq,
                           ch_names=ch_names, **kwargs)
