"""Large brainwave model (LBM): a transformer pretrained to predict a frozen tokenizer's masked codes.

The patch embedding is the tokenizer's kind (multi-scale temporal convolutions, scales summed), with
channel (name + position) and temporal embeddings. Pretraining masks 50 % of the tokens, replaces them
by a learned mask token, and predicts every scale's and level's code of the masked tokens; the
complementary mask is run too (symmetric masking), so every token is a target once per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neurofm.models._hub import build
from neurofm.models.layers import ChannelEmbedding, MultiScalePatchEmbed, Transformer
from neurofm.models.tokenizers.base import Tokenizer, channel_mask, token_mask, token_positions
from neurofm.models.tokenizers.neurorvq import DEFAULT_KERNELS


class LBM(nn.Module):
    """Masked-token transformer over (channel, patch) tokens.

    Parameters
    ----------
    n_scales, n_levels, codebook_size : int
        The code layout of the tokenizer whose codes are predicted.
    patch_size, dim, depth, heads, max_patches : int
        Token and transformer sizes.
    use_names : bool
        Embed 10-05 channel names besides positions.
    target_levels : int, optional
        Predict the codes of the first ``target_levels`` residual levels of every scale (default: all). The
        first levels carry the coarse waveform; the last ones code small residuals that the context barely
        predicts, and their logits dominated the cost of a step (4 scales × 10 levels × 1024 codes per token).
    n_band_targets : int
        Size of an optional second pretraining head that regresses each masked token's log band powers
        (:func:`patch_log_band_power`); 0 (default) builds no such head.
    feature_layer : int, optional
        What :meth:`forward_features` (the decoders' features) returns: the tokens after the first
        ``feature_layer`` transformer blocks (0: the embedded tokens, before any block), through the final
        LayerNorm. Default: every block. Pretraining always runs every block; a masked model's last blocks
        specialise in its pretext target, and an earlier layer can hold more of what a task reads.
    """

    def __init__(self, n_scales: int = 4, n_levels: int = 11, codebook_size: int = 512, patch_size: int = 200,
                 dim: int = 128, depth: int = 4, heads: int = 4, max_patches: int = 64, use_names: bool = True,
                 kernels: tuple[tuple[int, int], ...] = DEFAULT_KERNELS, target_levels: int | None = None,
                 n_band_targets: int = 0, feature_layer: int | None = None):
        super().__init__()
        if target_levels is not None and not 1 <= target_levels <= n_levels:
            raise ValueError(f"target_levels={target_levels} must lie between 1 and the tokenizer's {n_levels} levels")
        if feature_layer is not None and not (isinstance(feature_layer, int) and 0 <= feature_layer <= depth):
            raise ValueError(f"feature_layer={feature_layer!r} must be an integer from 0 (the embedded tokens) to "
                             f"depth={depth}")
        self.feature_layer = feature_layer
        self.n_scales, self.n_levels, self.codebook_size = n_scales, n_levels, codebook_size
        self.target_levels = n_levels if target_levels is None else int(target_levels)
        self.patch_size, self.dim = patch_size, dim
        self.patch_embed = MultiScalePatchEmbed(patch_size, dim, tuple(tuple(k) for k in kernels))
        self.channel_embed = ChannelEmbedding(dim, use_names=use_names)
        self.time_embed = nn.Embedding(max_patches, dim)
        # Tokens are z-scored per channel-window; the scale (the side information a tokenizer sends
        # beside its codes) is embedded too, so absolute power reaches the features.
        self.scale_embed = nn.Linear(1, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.time_embed.weight, std=0.02)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.encoder = Transformer(dim, depth, heads)
        self.head = nn.Linear(dim, n_scales * self.target_levels * codebook_size)
        self.band_head = nn.Linear(dim, n_band_targets) if n_band_targets else None

    @property
    def num_features(self) -> int:
        return self.dim

    def tokens(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None):
        """Embedded tokens (B, C·P, dim), token mask (B, C·P) and the shape (B, C, P)."""
        b, c, t = x.shape
        valid = channel_mask(mask, b, c, x.device)
        xz, _, std = Tokenizer.normalize(x.float(), valid)
        p = t // self.patch_size
        if p * self.patch_size != t:
            raise ValueError(f"window of {t} samples is not a multiple of patch_size={self.patch_size}")
        patches = rearrange(xz, "b c (p s) -> (b c p) s", s=self.patch_size)
        emb = rearrange(self.patch_embed(patches).mean(0), "(b n) d -> b n d", b=b)
        spatial = self.channel_embed(b, c, pos=pos, ch_names=ch_names, device=x.device)
        spatial = spatial + self.scale_embed((torch.log(std) - 2.5) * valid[..., None])
        return emb, token_positions(spatial, self.time_embed, p), token_mask(valid, p), (b, c, p)

    def forward(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None, token_mask: torch.Tensor | None = None,
                tokens: tuple | None = None):
        """Encoder output (B, C·P, dim) and token mask; tokens where ``token_mask`` is True are masked out.

        ``tokens``: the output of :meth:`tokens` for this ``x``, when several masks are run on one batch
        (symmetric masking embeds the patches once).
        """
        emb, posemb, tok_valid, _ = tokens if tokens is not None else self.tokens(x, pos=pos, mask=mask,
                                                                                 ch_names=ch_names)
        if token_mask is not None:
            emb = torch.where(token_mask[..., None], self.mask_token.expand_as(emb), emb)
        return self.encoder(emb + posemb, tok_valid), tok_valid

    def predict_codes(self, h: torch.Tensor) -> torch.Tensor:
        """(..., dim) → logits (..., n_scales, target_levels, K)."""
        return rearrange(self.head(h), "... (s l k) -> ... s l k", s=self.n_scales, l=self.target_levels)

    def forward_features(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None):
        """Encoder tokens (B, C·P, dim) without masking (after ``feature_layer`` blocks), and the token mask (B, C·P)."""
        emb, posemb, tok_valid, _ = self.tokens(x, pos=pos, mask=mask, ch_names=ch_names)
        return self.encoder(emb + posemb, tok_valid, n_blocks=self.feature_layer), tok_valid   # None: every block

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters from input to output, for layer-wise learning-rate decay."""
        first = [*self.patch_embed.parameters(), *self.channel_embed.parameters(), *self.time_embed.parameters(),
                 *self.scale_embed.parameters(), self.mask_token]
        groups = [first] + [list(b.parameters()) for b in self.encoder.blocks]
        groups[-1] = groups[-1] + list(self.encoder.norm.parameters())
        return groups

    def masked_code_loss(self, h: torch.Tensor, codes: torch.Tensor, where: torch.Tensor):
        """Cross-entropy (mean over scales × target levels) and top-1 accuracy per target level at the ``where``
        tokens. The code head runs on the selected tokens only.
        """
        sel_codes = codes[where][..., : self.target_levels]       # (M, S, L)
        ok = sel_codes >= 0
        if not ok.any():
            return h.sum() * 0, h.new_zeros(self.target_levels)
        logits = self.predict_codes(h[where])                     # (M, S, L, K)
        loss = F.cross_entropy(logits[ok], sel_codes[ok])
        hit = ((logits.argmax(-1) == sel_codes) & ok).float()
        acc = hit.sum((0, 1)) / ok.float().sum((0, 1)).clamp_min(1)
        return loss, acc

    def masked_band_loss(self, h: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the band head's prediction of ``target`` (B, C·P, n_bands) at the ``where``
        tokens."""
        if self.band_head is None:
            raise ValueError("this LBM has no band head: build it with n_band_targets > 0")
        if not where.any():
            return h.sum() * 0
        return F.mse_loss(self.band_head(h[where]), target[where])


def band_bins(patch_size: int, sfreq: float, bands: list[tuple[float, float]]) -> list[torch.Tensor]:
    """One boolean mask per band over the rFFT bins of a ``patch_size``-sample patch at ``sfreq``: the bins in
    ``[lo, hi)`` Hz. A mask with no True marks a band the patch cannot resolve."""
    freqs = torch.fft.rfftfreq(patch_size, d=1.0 / sfreq)
    return [(freqs >= lo) & (freqs < hi) for lo, hi in bands]


def patch_log_band_power(x: torch.Tensor, valid: torch.Tensor, patch_size: int, sfreq: float,
                         bands: list[tuple[float, float]]) -> torch.Tensor:
    """Standardised log band powers of every (channel, patch) token: (B, C, T) → (B, C·P, n_bands).

    Each channel-window is z-scored as the LBM sees it, each patch Hann-windowed; the power of the bins in
    ``[lo, hi)`` Hz is averaged and logged. Each band is then standardised over the batch's valid tokens,
    so every band weighs the same in the loss. ``valid`` (B, C) marks real channels.
    """
    xz, _, _ = Tokenizer.normalize(x.float(), valid)
    patches = rearrange(xz, "b c (p s) -> b (c p) s", s=patch_size)
    spec = torch.fft.rfft(patches * torch.hann_window(patch_size, device=x.device), dim=-1).abs() ** 2
    out = []
    for (lo, hi), sel in zip(bands, band_bins(patch_size, sfreq, bands), strict=True):
        sel = sel.to(x.device)
        if not sel.any():
            raise ValueError(f"band [{lo}, {hi}) Hz holds no frequency bin of a {patch_size}-sample patch at "
                             f"{sfreq:g} Hz")
        out.append(torch.log(spec[..., sel].mean(-1) + 1e-6))
    bp = torch.stack(out, -1)                                       # (B, C·P, n_bands)
    tok_valid = token_mask(valid, x.shape[-1] // patch_size)
    ref = bp[tok_valid] if tok_valid.any() else bp.flatten(0, 1)
    return (bp - ref.mean(0)) / ref.std(0).clamp_min(1e-3)


CONFIGS = {
    "lbm-tiny": dict(dim=128, depth=4, heads=4),
    "lbm-base": dict(dim=200, depth=12, heads=10),
}


def lbm_tiny(**kwargs) -> LBM:
    return build(LBM, CONFIGS["lbm-tiny"], kwargs)


def lbm_base(**kwargs) -> LBM:
    return build(LBM, CONFIGS["lbm-base"], kwargs)
