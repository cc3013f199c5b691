"""Multi-scale residual-VQ tokenizer after NeuroRVQ (Barmpas et al. 2025), written for neurofm.

Blocks → class → configs → entrypoints. Differences from the reference design, on purpose:
Euclidean codebooks on the un-normalised residual (magnitude survives every level), dead-code
replacement, quantizer dropout (one model serves every rate: decode from the first n levels), and
channels embedded by name *and* position, so unknown channels are embedded, never dropped.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from neurofm.models._hub import build
from neurofm.models.layers import MultiScalePatchEmbed, MultiScaleResidualVQ
from neurofm.models.layers.rvq import prefix_errors
from neurofm.models.tokenizers.base import Tokenizer, _distributed

DEFAULT_KERNELS = ((21, 9), (15, 7), (9, 5), (5, 3))


class NeuroRVQ(Tokenizer):
    """Multi-scale temporal conv branches → shared transformer → one residual VQ per scale → decoder.

    All scales go through the encoder in one batched pass, and one quantizer call per level quantizes every
    scale (:class:`~neurofm.models.layers.MultiScaleResidualVQ`). With ``decoder="waveform"`` the decoder
    emits samples: a transformer over the tokens' summed per-scale latents, an MLP head, plus a linear skip
    from the quantized latents straight to the samples.

    Parameters
    ----------
    n_levels : int
        Residual levels per scale.
    codebook_size, code_dim : int
        Codes per level and the latent dimension per scale.
    codebook_dim : int or None
        Factorised lookup dimension (DAC-style low-dimensional codes); None looks up in ``code_dim``.
    cosine : bool
        l2-normalised (cosine-similarity) codes.
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
    dropout_prob : float
        Share of training steps that draw a prefix; the others train every level.
    sync_codebook : bool
        All-reduce codebook statistics across DDP ranks (set by the trainer; see the guide).
    patch_to_code : bool
        Add a linear map of the raw (z-scored) patch to every scale's latent before quantization. The branches'
        GroupNorm and the encoder's final LayerNorm normalise each token's scale away; this path keeps a patch's
        amplitude and fine detail in the codes (measured: the unquantized autoencoder error fell ~3×).
    pca_init : bool
        With ``patch_to_code`` and the waveform decoder: on the first training batch, set the patch path to the
        batch's first ``n_scales × code_dim`` principal components (component j goes to scale j mod n_scales, so
        the scales share the variance evenly), the decoder's skip to its transpose, and the last layers of the
        per-scale projections and of the decoder head to zero: training starts from a transform codec.
    freeze_linear : bool
        Keep the PCA-initialised patch path and skip fixed (measured worse; for experiments).
    code_prefix : bool
        Quantizer dropout draws code prefixes that may end inside a level (see :class:`MultiScaleResidualVQ`), so
        ``decode(..., n_codes=k)`` is trained for every k.
    **kwargs
        :class:`Tokenizer` arguments (patch_size, dim, depth, decoder_depth, heads, decoder, loss_weights, ...).
    """

    def __init__(self, n_levels: int = 8, codebook_size: int = 8192, code_dim: int = 32,
                 kernels: tuple[tuple[int, int], ...] = DEFAULT_KERNELS, branch_channels: int = 8, decay: float = 0.99,
                 dead_code_threshold: float = 1.0, quantize_dropout: bool = True, min_levels: int = 1,
                 dropout_prob: float = 1.0,
                 commitment_weight: float = 1.0, codebook_dim: int | None = None, cosine: bool = False,
                 kmeans_init: bool = True, sync_codebook: bool = False, patch_to_code: bool = False,
                 pca_init: bool = False, freeze_linear: bool = False, code_prefix: bool = False, **kwargs):
        super().__init__(**kwargs)
        kernels = tuple(tuple(k) for k in kernels)
        self.n_scales, self.n_levels, self.codebook_size, self.code_dim = len(kernels), n_levels, codebook_size, code_dim
        self.sync_codebook = sync_codebook
        self.patch_embed = MultiScalePatchEmbed(self.patch_size, self.dim, kernels, branch_channels)
        self.to_code = nn.ModuleList(
            nn.Sequential(nn.Linear(self.dim, self.dim), nn.Tanh(), nn.Linear(self.dim, code_dim))
            for _ in kernels)
        # A linear path from the raw patch to every scale's latent: amplitude and fine detail reach the codes even
        # though GroupNorm (branches) and LayerNorm (encoder output) normalise each token's scale away.
        self.patch_to_code = nn.Linear(self.patch_size, self.n_scales * code_dim) if patch_to_code else None
        self.quantizer = MultiScaleResidualVQ(
            self.n_scales, n_levels, codebook_size, code_dim, codebook_dim=codebook_dim, cosine=cosine, decay=decay,
            kmeans_init=kmeans_init, dead_code_threshold=dead_code_threshold, commitment_weight=commitment_weight,
            quantize_dropout=quantize_dropout, min_levels=min_levels, dropout_prob=dropout_prob,
            sync_codebook=sync_codebook, code_prefix=code_prefix)
        self.from_code = nn.Linear(self.n_scales * code_dim, self.dim)
        self.skip = nn.Linear(self.n_scales * code_dim, self.patch_size) if self.decoder_kind == "waveform" else None
        self.pca_init = pca_init and self.patch_to_code is not None and self.skip is not None
        if self.pca_init and self.n_scales * code_dim > self.patch_size:
            raise ValueError(f"pca_init needs n_scales × code_dim ≤ patch_size ({self.n_scales} × {code_dim} > "
                             f"{self.patch_size}): use smaller codes or pca_init=False")
        self.freeze_linear = freeze_linear and self.pca_init
        if self.pca_init:
            self.register_buffer("linear_initted", torch.tensor(False))
            # weights saved before this option existed are trained weights: never re-initialise them
            self._register_load_state_dict_pre_hook(_trained_without_pca_flag)
        if self.freeze_linear:
            for p in (*self.patch_to_code.parameters(), *self.skip.parameters()):
                p.requires_grad_(False)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(patches)

    def scale_latents(self, h: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """(n_scales, M, dim) encoder output and (M, patch_size) patches → unquantized latent (M, S, code_dim)."""
        if self.pca_init and self.training and not bool(self.linear_initted):
            self._init_linear_from_pca(patches)
        z = torch.stack([proj(h[s]) for s, proj in enumerate(self.to_code)], 1)
        if self.patch_to_code is not None:
            z = z + rearrange(self.patch_to_code(patches), "m (s d) -> m s d", s=self.n_scales)
        return z

    @torch.no_grad()
    def _init_linear_from_pca(self, patches: torch.Tensor) -> None:
        """Start as a transform codec: the patch path projects onto the first batch's principal components and
        the decoder's skip projects back (its transpose), the non-linear paths start at zero."""
        x = patches.detach().float()
        mean = x.mean(0)
        cov = torch.cov((x - mean).T)
        _, vecs = torch.linalg.eigh(cov)
        n = self.n_scales * self.code_dim
        basis = vecs.flip(1)[:, :n].T                                      # (n, patch) by decreasing variance
        # latent (s, j) holds component j·S + s: every scale's quantizer gets an equal share of the variance
        basis = rearrange(basis, "(j s) t -> (s j) t", s=self.n_scales)
        self.patch_to_code.weight.copy_(basis)
        self.patch_to_code.bias.copy_(-basis @ mean)
        self.skip.weight.copy_(basis.T)
        self.skip.bias.copy_(mean)
        for seq in self.to_code:
            nn.init.zeros_(seq[-1].weight)
            nn.init.zeros_(seq[-1].bias)
        last = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        if _distributed():
            for t in (*self.patch_to_code.parameters(), *self.skip.parameters()):
                torch.distributed.broadcast(t.data, src=0)
        self.linear_initted.fill_(True)

    def latent(self, h: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        return rearrange(self.scale_latents(h, patches), "m s d -> m (s d)")

    def quantize(self, h: torch.Tensor, patches: torch.Tensor):
        z = self.scale_latents(h, patches)                                             # (M, S, code_dim)
        q, codes, loss = self.quantizer(z)
        return rearrange(q, "m s d -> m (s d)"), codes, loss / self.n_scales

    def search_errors(self, h: torch.Tensor, patches: torch.Tensor, beam: int) -> torch.Tensor:
        return prefix_errors(self.scale_latents(h, patches), self.quantizer.stacked_codebooks(), beam)

    def search_codes(self, h: torch.Tensor, patches: torch.Tensor, beam: int, n_codes: int | None = None,
                     bits_per_token: float | None = None):
        q, codes = self.quantizer.search(self.scale_latents(h, patches), beam, n_codes, bits_per_token)
        return rearrange(q, "m s d -> m (s d)"), codes

    def lookup(self, codes: torch.Tensor, n_levels: int | None = None) -> torch.Tensor:
        return rearrange(self.quantizer.lookup(codes, n_levels), "m s d -> m (s d)")

    def decoder_input(self, q: torch.Tensor) -> torch.Tensor:
        return self.from_code(q)

    def decoder_skip(self, q: torch.Tensor) -> torch.Tensor | None:
        return None if self.skip is None else self.skip(q)

    def codebooks(self) -> list[torch.Tensor]:
        """Every codebook, (levels, K, d) per scale, for usage statistics and sync checks."""
        return self.quantizer.codebooks()


def _trained_without_pca_flag(state_dict, prefix, *args) -> None:
    state_dict.setdefault(prefix + "linear_initted", torch.tensor(True))


# ---- configs ---------------------------------------------------------------------------------------------
CONFIGS = {
    # Trains on one CPU thread in minutes: 4 scales × 10 levels × 1024 codes = 400 code bits per channel-second,
    # 40 bits per level (every level prefix is a rate point). Waveform decoder on time-domain MSE alone, a linear
    # path from the patch into every scale's latent, quantizer dropout on half the steps (the recipe measured on
    # the validation subjects, see the README: the STFT term cost a quarter of the steps and added decoder noise
    # above β; without the patch path the autoencoder itself could not get below ~0.045 z-MSE).
    # 24-d codes per scale (15-min trials on the validation subjects, fifth session): 16-d quantize more efficiently
    # per level but the 64-d latent floors at ~0.019 z-MSE and loses γ; 32-d floor at 0.002 but each 40-bit level buys
    # less (0.0124 at 408 bits against 0.0087 for 24-d, 0.075 / 0.069 at 168). A dead-code threshold of 0.5 EMA hits
    # per step (~1 token per code per batch): 0.1 left 88-89 % of the deep levels' codes in use on validation, 0.5
    # kept 92 % at the same error; a threshold of 1 would re-seed a third of the codes every step.
    # Ninth session, 6-min trials on the validation subjects (same machine, same budget): starting the patch path and
    # the decoder's skip as a PCA transform codec (components interleaved over the scales) lowered z-MSE at every rate
    # (0.068 → 0.062 at 168 bits, 0.0084 → 0.0067 at 408), and a codebook decay of 0.99 instead of 0.9 lowered it again
    # (0.056, 0.0062; 0.995: the same). Code-prefix dropout adds rate points inside a level (158 bits) at no cost to
    # the level points. Quantizer dropout on every step and lr 5e-3 were both slightly worse.
    "neurorvq-tiny": dict(dim=128, depth=1, decoder_depth=1, heads=4, n_levels=10, codebook_size=1024, code_dim=24,
                          branch_channels=8, decay=0.99, dead_code_threshold=0.5, min_levels=1, dropout_prob=0.5,
                          patch_to_code=True, pca_init=True, code_prefix=True, decoder="waveform", decoder_hidden=512,
                          loss_weights=dict(amp=0.0, phase=0.0, unit=0.0, time=1.0, stft=0.0)),
    # Reference-sized: 4 scales × 8 levels × 8192 codes (416 code bits per channel-second), 12-layer encoder. The
    # tiny recipe (patch path with PCA start, time-domain MSE, dropout on half the steps, code prefixes) carried over,
    # not measured at this size.
    "neurorvq-base": dict(dim=200, depth=12, decoder_depth=3, heads=10, n_levels=8, codebook_size=8192, code_dim=32,
                          branch_channels=8, decay=0.99, dropout_prob=0.5, patch_to_code=True, pca_init=True,
                          code_prefix=True, decoder="waveform",
                          decoder_hidden=800, loss_weights=dict(amp=0.0, phase=0.0, unit=0.0, time=1.0, stft=0.0)),
}


def neurorvq_tiny(**kwargs) -> NeuroRVQ:
    return build(NeuroRVQ, CONFIGS["neurorvq-tiny"], kwargs)


def neurorvq_base(**kwargs) -> NeuroRVQ:
    return build(NeuroRVQ, CONFIGS["neurorvq-base"], kwargs)
