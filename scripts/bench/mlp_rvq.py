"""The benchmark's reference tokenizer: MLP encoder → ResidualVQ → MLP decoder on z-scored 1-s patches.

Not registered: it exists to be beaten. Same side information as the neurofm tokenizers (per channel-window
mean and std as float16), same patching, plain MSE on the z-scored patch plus the commitment loss, quantizer
dropout in multiples of ``dropout_multiple`` levels so that one model serves every rate. The quantizer keeps
vector-quantize-pytorch's defaults (EMA decay 0.8, no dead-code replacement) except k-means initialisation.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from vector_quantize_pytorch import ResidualVQ

from neurofm.models.layers.rvq import encode_at_rate, prefix_errors
from neurofm.models.tokenizers.base import Tokenizer, TokenizerOutput, channel_mask, z_patches


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, n_out))


class MLPRVQ(nn.Module):
    """Per-token MLP → ResidualVQ(``n_levels`` × ``codebook_size``, dim ``code_dim``) → MLP.

    Codes are (B, C, P, 1, n_levels), like a one-scale neurofm tokenizer, so the project's evaluation runs on it.
    """

    n_scales = 1

    def __init__(self, patch_size: int = 200, hidden: int = 512, code_dim: int = 64, n_levels: int = 40,
                 codebook_size: int = 1024, decay: float = 0.8, dead_code_threshold: float = 0.0,
                 dropout_multiple: int = 4):
        super().__init__()
        self.patch_size, self.n_levels, self.codebook_size = patch_size, n_levels, codebook_size
        self.encoder, self.decoder = mlp(patch_size, hidden, code_dim), mlp(code_dim, hidden, patch_size)
        self.rvq = ResidualVQ(dim=code_dim, num_quantizers=n_levels, codebook_size=codebook_size, decay=decay,
                              kmeans_init=True, kmeans_iters=10, threshold_ema_dead_code=dead_code_threshold,
                              quantize_dropout=n_levels > 1, quantize_dropout_cutoff_index=dropout_multiple - 1,
                              quantize_dropout_multiple_of=dropout_multiple)

    bits_per_token = Tokenizer.bits_per_token   # levels (one scale) × log2(codebook_size)

    def _tokens(self, x: torch.Tensor, mask):
        return z_patches(x, mask, self.patch_size)

    def _grid(self, idx: torch.Tensor, valid: torch.Tensor, p: int) -> torch.Tensor:
        b, c = valid.shape
        codes = idx.new_full((b, c, p, 1, self.n_levels), -1)
        codes[valid] = rearrange(idx, "(n p) l -> n p 1 l", p=p)
        return codes

    def forward(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None) -> TokenizerOutput:
        patches, valid, mean, std = self._tokens(x, mask)
        p = patches.shape[2]
        target = rearrange(patches[valid], "n p s -> (n p) s")
        q, idx, commit = self.rvq(self.encoder(target)[None])
        rec = self.decoder(q[0])
        mse = ((rec - target) ** 2).mean()
        loss = mse + commit.sum()
        full = torch.zeros_like(patches)
        full[valid] = rearrange(rec, "(n p) s -> n p s", p=p)
        recon = rearrange(full, "b c p s -> b c (p s)") * std + mean
        return TokenizerOutput(recon=recon, codes=self._grid(idx[0], valid, p), valid=valid,
                               losses=dict(loss=loss, time=mse.detach(), vq=commit.sum().detach()))

    def _books(self) -> torch.Tensor:
        return torch.stack([layer._codebook.embed[0] for layer in self.rvq.layers])[None]   # (1, L, K, d)

    @torch.no_grad()
    def count_errors(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None, beam: int = 1) -> torch.Tensor:
        """Each real channel's token's error by code count, as :meth:`Tokenizer.count_errors`."""
        patches, valid, _, _ = self._tokens(x, mask)
        return prefix_errors(self.encoder(rearrange(patches[valid], "n p s -> (n p) s"))[:, None], self._books(), beam)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None, beam: int = 1,
               n_codes: int | None = None, bits_per_token: float | None = None) -> dict[str, torch.Tensor]:
        """Greedy codes of every level; or, given a beam, a code count or a bits budget, the search the tokenizers
        use (:func:`~neurofm.models.layers.rvq.encode_at_rate`) over the same codebooks; -1 after the last code."""
        patches, valid, mean, std = self._tokens(x, mask)
        z = self.encoder(rearrange(patches[valid], "n p s -> (n p) s"))
        if beam > 1 or bits_per_token is not None or torch.is_tensor(n_codes):
            _, idx = encode_at_rate(z[:, None], self._books(), beam, n_codes, bits_per_token)
            return dict(codes=self._grid(idx[:, 0], valid, patches.shape[2]), mean=mean, std=std, valid=valid)
        _, idx, _ = self.rvq(z[None])
        if n_codes is not None:
            idx[..., n_codes:] = -1
        return dict(codes=self._grid(idx[0], valid, patches.shape[2]), mean=mean, std=std, valid=valid)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, pos=None, mask=None,
               ch_names=None, n_levels: int | None = None) -> torch.Tensor:
        b, c, p = codes.shape[:3]
        valid = channel_mask(mask, b, c, codes.device)
        idx = rearrange(codes[valid], "n p 1 l -> 1 (n p) l").clone()
        if n_levels is not None:
            idx[..., n_levels:] = -1
        q = self.rvq.get_output_from_indices(idx)
        out = torch.zeros(b, c, p, self.patch_size)
        out[valid] = rearrange(self.decoder(q[0]), "(n p) s -> n p s", p=p)
        return rearrange(out, "b c p s -> b c (p s)") * std + mean
