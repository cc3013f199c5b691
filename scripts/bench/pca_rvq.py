"""A transform-coding reference for the tokenizer benchmark: PCA of z-scored 1-s patches + residual k-means VQ.

Not registered, not trained by gradient: the principal components of the training patches (the first
``n_groups × group_dim``) are dealt round-robin to ``n_groups`` groups, so every group holds an equal share of
the variance, and each group gets a residual vector quantizer of ``n_levels`` codebooks fitted level by level
with k-means (Lloyd) on the training residuals. Same side information (per channel-window mean and std as
float16), same patches, same code layout (B, C, P, groups, levels) and the same code and level prefixes as
``neurorvq-tiny``, so the project's evaluation runs on it unchanged. It answers: how far does a linear
transform with well-fitted codebooks go at each rate, with no context across patches or channels?
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from neurofm.models.layers.rvq import encode_at_rate, prefix_errors
from neurofm.models.tokenizers.base import Tokenizer, keep_code_prefix, z_patches


def kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    """Lloyd's algorithm from k random points; an empty cluster is re-seeded with a random point."""
    centres = x[torch.randperm(len(x), generator=gen)[:k]].clone()
    for _ in range(iters):
        assign = _nearest(x, centres)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        fresh = x[torch.randint(len(x), (k,), generator=gen)]
        centres = torch.where((counts > 0)[:, None], sums / counts.clamp_min(1)[:, None], fresh)
    return centres


def _nearest(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return torch.addmm((centres * centres).sum(1)[None], x, centres.T, alpha=-2.0).argmin(1)


class PCARVQ(nn.Module):
    """PCA (``n_groups × group_dim`` components, dealt round-robin) → per-group residual k-means VQ."""

    def __init__(self, patch_size: int = 200, n_groups: int = 4, group_dim: int = 24, n_levels: int = 10,
                 codebook_size: int = 1024):
        super().__init__()
        self.patch_size, self.n_scales, self.group_dim = patch_size, n_groups, group_dim
        self.n_levels, self.codebook_size = n_levels, codebook_size
        self.register_buffer("mean", torch.zeros(patch_size))
        self.register_buffer("basis", torch.zeros(n_groups * group_dim, patch_size))
        self.register_buffer("codebooks", torch.zeros(n_levels, n_groups, codebook_size, group_dim))

    bits_per_token = Tokenizer.bits_per_token   # n_scales × levels (or n_codes) × log2(codebook_size)

    def _coefficients(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, patch) → (N, groups, group_dim)."""
        return rearrange((patches - self.mean) @ self.basis.T, "n (j g) -> n g j", g=self.n_scales)

    @torch.no_grad()
    def fit(self, patches: torch.Tensor, iters: int = 15, seed: int = 0) -> None:
        """Fit the components and every codebook on (N, patch_size) z-scored training patches."""
        gen = torch.Generator().manual_seed(seed)
        patches = patches.float()
        self.mean.copy_(patches.mean(0))
        _, vecs = torch.linalg.eigh(torch.cov((patches - self.mean).T))
        self.basis.copy_(vecs.flip(1)[:, : self.basis.shape[0]].T)    # component j·G + g goes to group g
        residual = self._coefficients(patches)
        for lvl in range(self.n_levels):
            for g in range(self.n_scales):
                book = kmeans(residual[:, g], self.codebook_size, iters, gen)
                self.codebooks[lvl, g] = book
                residual[:, g] -= book[_nearest(residual[:, g], book)]

    def _tokens(self, x: torch.Tensor, mask):
        return z_patches(x, mask, self.patch_size)

    @torch.no_grad()
    def count_errors(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None, beam: int = 1) -> torch.Tensor:
        """Each real channel's token's error by code count, as :meth:`Tokenizer.count_errors`."""
        patches, valid, _, _ = self._tokens(x, mask)
        coef = self._coefficients(rearrange(patches[valid], "n p s -> (n p) s"))
        return prefix_errors(coef, self.codebooks.transpose(0, 1), beam)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None, beam: int = 1,
               n_codes: int | None = None, bits_per_token: float | None = None) -> dict[str, torch.Tensor]:
        """Greedy residual codes (``beam`` 1), or beam search, at a fixed or allocated rate, as the tokenizers."""
        patches, valid, mean, std = self._tokens(x, mask)
        p = patches.shape[2]
        coef = self._coefficients(rearrange(patches[valid], "n p s -> (n p) s"))          # the real channels' tokens
        _, found = encode_at_rate(coef, self.codebooks.transpose(0, 1), beam, n_codes, bits_per_token)
        codes = found.new_full((*patches.shape[:3], self.n_scales, self.n_levels), -1)
        codes[valid] = rearrange(found, "(n p) g l -> n p g l", p=p)
        return dict(codes=codes, mean=mean, std=std, valid=valid)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, pos=None, mask=None,
               ch_names=None, n_levels: int | None = None, n_codes: int | None = None) -> torch.Tensor:
        s_, l_ = codes.shape[3:]
        codes = keep_code_prefix(codes, n_codes if n_codes is not None else s_ * (n_levels or l_))
        flat = rearrange(codes, "b c p g l -> (b c p) g l")
        coef = torch.zeros(len(flat), s_, self.group_dim)
        for lvl in range(l_):
            for g in range(s_):
                c = flat[:, g, lvl]
                coef[:, g] += self.codebooks[lvl, g][c.clamp_min(0)] * (c >= 0)[:, None]
        patches = rearrange(coef, "n g j -> n (j g)") @ self.basis + self.mean
        b, c, p = codes.shape[:3]
        return rearrange(patches, "(b c p) s -> b c (p s)", b=b, c=c) * std + mean
