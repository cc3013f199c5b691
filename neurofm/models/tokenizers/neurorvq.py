"""Multi-scale residual-VQ tokenizer after NeuroRVQ (Barmpas et al. 2025), written for neurofm.

Blocks → class → configs → entrypoints. Differences from the reference design, on purpose:
Euclidean codebooks on the un-normalised residual (magnitude survives every level), dead-code
replacement, quantizer dropout (one model serves every rate: decode from the first n levels), and
channels embedded by name *and* position, so unknown channels are embedded, never dropped.
"""

from __future__ import annotations

import torch
from torch import nn
from vector_quantize_pytorch import ResidualVQ

from neurofm.models._hub import build
from neurofm.models.layers import MultiScalePatchEmbed
from neurofm.models.tokenizers.base import Tokenizer

DEFAULT_KERNELS = ((21, 9), (15, 7), (9, 5), (5, 3))


class NeuroRVQ(Tokenizer):
    """Multi-scale temporal conv branches → shared transformer → one residual VQ per scale → FFT decoder.

    Parameters
    ----------
    n_levels : int
        Residual levels per scale.
    codebook_size, code_dim : int
        Codes per level and their dimension.
    kernels : sequence of (int, int)
        First- and second-stage kernel of each scale's branch; their count is the number of scales.
    decay : float
        EMA decay of the codebooks.
    dead_code_threshold : float
        Codes whose EMA usage falls below this are re-seeded from the batch.
    quantize_dropout : bool
        Train on random prefixes of the levels so lower rates decode well too.
    min_levels : int
        Shortest prefix trained with quantize dropout (rates below it are not trained for).
    sync_codebook : bool
        All-reduce codebook statistics across DDP ranks (set by the trainer; see the guide).
    **kwargs
        :class:`Tokenizer` arguments (patch_size, dim, depth, decoder_depth, heads, ...).
    """

    def __init__(self, n_levels: int = 8, codebook_size: int = 8192, code_dim: int = 32,
                 kernels: tuple[tuple[int, int], ...] = DEFAULT_KERNELS, branch_channels: int = 8, decay: float = 0.99,
                 dead_code_threshold: float = 1.0, quantize_dropout: bool = True, min_levels: int = 1,
                 commitment_weight: float = 1.0,
                 kmeans_init: bool = True, sync_codebook: bool = False, **kwargs):
        super().__init__(**kwargs)
        kernels = tuple(tuple(k) for k in kernels)
        self.n_scales, self.n_levels, self.codebook_size, self.code_dim = len(kernels), n_levels, codebook_size, code_dim
        self.sync_codebook = sync_codebook
        self.patch_embed = MultiScalePatchEmbed(self.patch_size, self.dim, kernels, branch_channels)
        self.to_code = nn.ModuleList(
            nn.Sequential(nn.Linear(self.dim, self.dim), nn.Tanh(), nn.Linear(self.dim, code_dim))
            for _ in kernels)
        self.quantizers = nn.ModuleList(
            ResidualVQ(dim=code_dim, num_quantizers=n_levels, codebook_size=codebook_size, decay=decay,
                       kmeans_init=kmeans_init, kmeans_iters=10, threshold_ema_dead_code=dead_code_threshold,
                       quantize_dropout=quantize_dropout and n_levels > 1,
                       quantize_dropout_cutoff_index=max(min(min_levels, n_levels) - 1, 0), commitment_weight=commitment_weight,
                       use_cosine_sim=False, sync_codebook=sync_codebook)
            for _ in kernels)
        self.from_code = nn.Linear(self.n_scales * code_dim, self.dim)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(patches)

    def quantize(self, h: torch.Tensor):
        qs, codes, loss = [], [], h.new_zeros(())
        for s, (proj, rvq) in enumerate(zip(self.to_code, self.quantizers, strict=True)):
            q, idx, losses = rvq(proj(h[s])[None])
            qs.append(q[0])
            codes.append(idx[0])
            loss = loss + losses.sum()
        return torch.cat(qs, -1), torch.stack(codes, 1), loss / self.n_scales

    def lookup(self, codes: torch.Tensor, n_levels: int | None = None) -> torch.Tensor:
        codes = codes.clone()
        if n_levels is not None:
            codes[..., n_levels:] = -1
        out = []
        for s, rvq in enumerate(self.quantizers):
            per_level = rvq.get_codes_from_indices(codes[None, :, s])        # (L, 1, M, d)
            out.append(per_level.sum(0)[0])
        return torch.cat(out, -1)

    def decoder_input(self, q: torch.Tensor) -> torch.Tensor:
        return self.from_code(q)

    def codebooks(self) -> list[torch.Tensor]:
        """Every codebook, (levels, K, d) per scale, for usage statistics and sync checks."""
        return [rvq.codebooks.detach() for rvq in self.quantizers]


# ---- configs ---------------------------------------------------------------------------------------------
CONFIGS = {
    # Trains on a 2-core CPU in minutes: 4 scales × 11 levels × 512 codes = 396 code bits per channel-second.
    "neurorvq-tiny": dict(dim=128, depth=2, decoder_depth=2, heads=4, n_levels=11, codebook_size=512, code_dim=32,
                          branch_channels=8, decay=0.9, min_levels=4, loss_weights=dict(time=2.0)),
    # Reference-sized: 4 scales × 8 levels × 8192 codes (416 code bits per channel-second), 12-layer encoder.
    "neurorvq-base": dict(dim=200, depth=12, decoder_depth=3, heads=10, n_levels=8, codebook_size=8192, code_dim=32,
                          branch_channels=8, decay=0.99),
}


def neurorvq_tiny(**kwargs) -> NeuroRVQ:
    return build(NeuroRVQ, CONFIGS["neurorvq-tiny"], kwargs)


def neurorvq_base(**kwargs) -> NeuroRVQ:
    return build(NeuroRVQ, CONFIGS["neurorvq-base"], kwargs)
