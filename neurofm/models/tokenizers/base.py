"""What every neurofm tokenizer shares: normalisation, patching, embeddings, decoder and loss.

A window ``x`` (B, C, T) in µV is z-scored per channel (the mean and std are the only side
information, 2 × 16 bits per channel-window), cut into patches of ``patch_size`` samples, and each
(channel, patch) becomes one token. Subclasses define how tokens are embedded and quantized. Two decoders:
``"spectral"`` predicts every patch's rFFT log-amplitude and phase and rebuilds the patch by inverse FFT
(NeuroRVQ / LaBraM); ``"waveform"`` emits the patch's samples directly and is trained with time-domain and
multi-resolution STFT log-magnitude losses (SoundStream / EnCodec / DAC). The amplitude/phase terms are
computed for both (from the rFFT of the emitted patch for the waveform decoder) and weighted by config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from neurofm._logging import summarise_kmeans_warnings
from neurofm.models.layers import (
    ChannelEmbedding,
    SpectralTargets,
    Transformer,
    multi_resolution_stft_loss,
    rebuild_patch,
    spectral_loss,
)

summarise_kmeans_warnings()  # the ~44 expected "k-means init received N vectors" lines become one count

SIDE_BITS_PER_CHANNEL_WINDOW = 32  # mean and std as float16


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def channel_mask(mask: torch.Tensor | None, b: int, c: int, device: torch.device) -> torch.Tensor:
    """(B, C) bool mask of real channels (all True when no mask is given)."""
    return torch.ones(b, c, dtype=torch.bool, device=device) if mask is None else mask.to(device).bool()


def token_mask(valid: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C) channel mask → (B, C·P) mask of the channels' tokens."""
    return valid[:, :, None].expand(-1, -1, p).reshape(valid.shape[0], -1)


def z_patches(x: torch.Tensor, mask: torch.Tensor | None, patch_size: int):
    """(B, C, T) window → z-scored patches (B, C, P, patch_size), channel mask (B, C) and the side information
    (mean, std), as every tokenizer codes them (:meth:`Tokenizer.normalize`)."""
    b, c, _ = x.shape
    valid = channel_mask(mask, b, c, x.device)
    xz, mean, std = Tokenizer.normalize(x.float(), valid)
    return rearrange(xz, "b c (p s) -> b c p s", s=patch_size), valid, mean, std


def keep_code_prefix(codes: torch.Tensor, n_codes: int) -> torch.Tensor:
    """(..., n_scales, n_levels) codes with every code after the first ``n_codes`` set to -1 (absent); codes are
    ordered level by level, scale by scale within a level."""
    s, lv = codes.shape[-2:]
    order = torch.arange(s * lv, device=codes.device).reshape(lv, s).T                 # (S, L) position in the order
    return codes.masked_fill(order >= n_codes, -1)


def token_positions(spatial: torch.Tensor, time_embed: nn.Embedding, p: int) -> torch.Tensor:
    """(B, C, dim) channel embeddings + the first ``p`` temporal embeddings → (B, C·P, dim)."""
    if p > time_embed.num_embeddings:
        raise ValueError(f"window of {p} patches exceeds max_patches={time_embed.num_embeddings}")
    return rearrange(spatial[:, :, None] + time_embed.weight[:p][None, None], "b c p d -> b (c p) d")


@dataclass
class TokenizerOutput:
    """Result of a tokenizer forward pass."""

    recon: torch.Tensor                 # (B, C, T) in the input's units
    codes: torch.Tensor                 # (B, C, P, n_scales, n_levels) long
    losses: dict[str, torch.Tensor]     # every loss term and ``loss`` (weighted sum)
    valid: torch.Tensor                 # (B, C) channel mask
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class Tokenizer(nn.Module):
    """Base class. Subclasses set ``self.n_scales``, ``self.n_levels``, ``self.codebook_size`` and implement
    :meth:`embed_patches`, :meth:`quantize`, :meth:`lookup`.

    Parameters
    ----------
    patch_size : int
        Samples per token (200 = 1 s at 200 Hz).
    dim : int
        Transformer width.
    depth, decoder_depth, heads : int
        Encoder/decoder blocks and attention heads.
    max_patches : int
        Longest window in patches (temporal embedding size).
    use_names : bool
        Embed 10-05 channel names (besides positions).
    loss_weights : dict
        Weights of ``vq``, ``amp``, ``phase``, ``unit``, ``time`` (MSE of the z-scored patch), ``stft``
        (multi-resolution STFT log-magnitude L1 of the z-scored window) and ``diff`` (MSE of the window's first
        difference: a pre-emphasis that weights each band by ~f², so the weak high bands count).
    phase_weighting : str
        ``"amplitude"`` or ``"uniform"`` (see :func:`spectral_loss`).
    decoder : str
        ``"spectral"`` (log-amplitude + phase head, inverse FFT) or ``"waveform"`` (the head emits samples).
    decoder_hidden : int
        Hidden width of a two-layer MLP head (0: one linear layer).
    stft_ffts : sequence of int
        FFT sizes of the multi-resolution STFT loss.
    """

    default_loss_weights = dict(vq=1.0, amp=1.0, phase=1.0, unit=0.1, time=1.0, stft=0.0, diff=0.0)

    def __init__(self, patch_size: int = 200, dim: int = 128, depth: int = 2, decoder_depth: int = 2, heads: int = 4,
                 max_patches: int = 64, use_names: bool = True, loss_weights: dict[str, float] | None = None,
                 phase_weighting: str = "amplitude", decoder: str = "spectral", decoder_hidden: int = 0,
                 stft_ffts: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.patch_size, self.dim = patch_size, dim
        self.n_freqs = patch_size // 2 + 1
        self.loss_weights = {**self.default_loss_weights, **(loss_weights or {})}
        self.phase_weighting = phase_weighting
        self.channel_embed = ChannelEmbedding(dim, use_names=use_names)
        self.time_embed = nn.Embedding(max_patches, dim)
        nn.init.trunc_normal_(self.time_embed.weight, std=0.02)
        self.encoder = Transformer(dim, depth, heads)
        self.decoder = Transformer(dim, decoder_depth, heads)
        if decoder not in ("spectral", "waveform"):
            raise ValueError(f"decoder={decoder!r}: use 'spectral' or 'waveform'")
        self.decoder_kind, self.stft_ffts = decoder, tuple(stft_ffts)
        n_out = 3 * self.n_freqs if decoder == "spectral" else patch_size
        self.head = (nn.Sequential(nn.Linear(dim, decoder_hidden), nn.GELU(), nn.Linear(decoder_hidden, n_out))
                     if decoder_hidden else nn.Linear(dim, n_out))
        # The head predicts z-scored log-amplitudes: per-bin statistics, set from the first training batch
        # and then tracked with a running average (like BatchNorm), saved with the weights.
        self.register_buffer("log_amp_mean", torch.zeros(self.n_freqs))
        self.register_buffer("log_amp_std", torch.ones(self.n_freqs))
        self.register_buffer("log_amp_initted", torch.tensor(False))
        self.log_amp_momentum = 0.01

    # ---- shapes and normalisation ----------------------------------------------------------------------
    @staticmethod
    def normalize(x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z-score each channel of each window; returns (xz, mean, std) with mean/std (B, C, 1)."""
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True).clamp_min(1e-6)
        std = torch.where(valid[..., None], std, torch.ones_like(std))
        # Side information is sent as float16: use the rounded values on both ends.
        mean, std = mean.half().float(), std.half().float()
        return (x - mean) / std, mean, std

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.patch_size:
            raise ValueError(f"window of {x.shape[-1]} samples is not a multiple of patch_size={self.patch_size}")
        return rearrange(x, "b c (p s) -> b c p s", s=self.patch_size)

    def position_embedding(self, b: int, c: int, p: int, pos, ch_names, device) -> torch.Tensor:
        """(B, C·P, dim): channel embedding + temporal embedding of each token."""
        return token_positions(self.channel_embed(b, c, pos=pos, ch_names=ch_names, device=device), self.time_embed, p)

    # ---- to implement -------------------------------------------------------------------------------------
    n_scales: int = 1
    n_levels: int = 1
    codebook_size: int = 1

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, patch_size) → (n_scales, N, dim)."""
        raise NotImplementedError

    def quantize(self, h: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(n_scales, M, dim) encoder output and the (M, patch_size) z-scored patches of M valid tokens →
        (quantized (M, dq), codes (M, S, L), vq loss)."""
        raise NotImplementedError

    def lookup(self, codes: torch.Tensor, n_levels: int | None = None) -> torch.Tensor:
        """(M, S, L) codes → (M, dq) quantized latent, using only the first ``n_levels`` levels."""
        raise NotImplementedError

    @torch.no_grad()
    def count_errors(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None, beam: int = 1) -> torch.Tensor:
        """(M, codes + 1): each valid token's latent error with its first k codes (k = 0 … all), searched with
        ``beam``; for an allocation over more than one batch (:func:`~neurofm.models.layers.rvq.allocate_codes`),
        whose per-token counts then go to :meth:`encode` as ``n_codes``."""
        enc = self.encode_tokens(x, pos=pos, mask=mask, ch_names=ch_names)
        return self.search_errors(*self._valid_tokens(enc), beam=beam)

    def search_errors(self, h: torch.Tensor, patches: torch.Tensor, beam: int) -> torch.Tensor:
        """The inputs of :meth:`quantize` → (M, codes + 1) errors by code count; only residual tokenizers."""
        raise ValueError(f"{type(self).__name__} has no residual levels to search: encode with beam=1")

    def search_codes(self, h: torch.Tensor, patches: torch.Tensor, beam: int, n_codes: int | None = None,
                     bits_per_token: float | None = None):
        """Like :meth:`quantize` at inference, by beam search over residual levels, for ``n_codes`` codes or a
        per-token allocation within ``bits_per_token`` → (quantized, codes); only residual tokenizers implement it."""
        raise ValueError(f"{type(self).__name__} has no residual levels to search: encode with beam=1")

    def latent(self, h: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """The same inputs as :meth:`quantize` → the (M, dq) latent *before* quantization (optional: only
        tokenizers whose quantized latent lives in the same space implement it)."""
        raise NotImplementedError(f"{type(self).__name__} has no unquantized latent")

    def decoder_input(self, q: torch.Tensor) -> torch.Tensor:
        """(M, dq) quantized latent → (M, dim)."""
        raise NotImplementedError

    def decoder_skip(self, q: torch.Tensor) -> torch.Tensor | None:
        """(M, dq) quantized latent → (M, patch_size) added to a waveform decoder's output (None: no skip)."""
        return None

    # ---- the pipeline -------------------------------------------------------------------------------------
    def bits_per_token(self, n_levels: int | None = None, n_codes: int | None = None) -> float:
        """Code bits of one token decoded from the first ``n_levels`` levels, or from its first ``n_codes`` codes."""
        n_codes = n_codes if n_codes is not None else self.n_scales * (n_levels or self.n_levels)
        return n_codes * math.log2(self.codebook_size)

    def encode_tokens(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None):
        """Normalise, patch, embed and run the encoder. Returns a dict of intermediate tensors."""
        b, c, t = x.shape
        valid = channel_mask(mask, b, c, x.device)
        xz, mean, std = self.normalize(x.float(), valid)
        patches = self.patchify(xz)                                       # (B, C, P, S)
        p = patches.shape[2]
        tok_valid = token_mask(valid, p)
        flat = rearrange(patches, "b c p s -> (b c p) s")
        emb = self.embed_patches(flat)                                    # (n_scales, B·C·P, dim)
        emb = rearrange(emb, "k (b n) d -> k b n d", b=b)
        posemb = self.position_embedding(b, c, p, pos, ch_names, x.device)
        h = self.encoder(rearrange(emb + posemb[None], "k b n d -> (k b) n d"),
                         tok_valid.repeat(emb.shape[0], 1))
        h = rearrange(h, "(k b) n d -> k b n d", k=emb.shape[0])
        return dict(xz=xz, mean=mean, std=std, patches=patches, valid=valid, tok_valid=tok_valid, h=h, posemb=posemb,
                    shape=(b, c, p))

    @torch.no_grad()
    def _track_log_amp(self, log_amp: torch.Tensor, valid: torch.Tensor) -> None:
        sel = log_amp[valid].reshape(-1, self.n_freqs)
        if _distributed():
            # Every rank sees other windows: pool the batch statistics so all ranks hold the same buffers (found
            # by the two-node torchrun run: per-rank copies drifted apart, and DDP's buffer broadcast kept rank 0's).
            sel = sel.float()
            packed = torch.cat([sel.sum(0), (sel * sel).sum(0), sel.new_tensor([len(sel)])])
            torch.distributed.all_reduce(packed)
            f = self.n_freqs
            n = float(packed[-1])
            if n < 1:
                return
            mean = packed[:f] / n
            var = (packed[f:2 * f] / n - mean * mean).clamp_min(0) * (n / (n - 1) if n > 1 else 1.0)
            std = var.sqrt().clamp_min(1e-3) if n > 1 else torch.ones_like(mean)
        else:
            if not len(sel):
                return
            mean, std = sel.mean(0), sel.std(0).clamp_min(1e-3) if len(sel) > 1 else torch.ones_like(sel[0])
        if not bool(self.log_amp_initted):
            self.log_amp_mean.copy_(mean)
            self.log_amp_std.copy_(std)
            self.log_amp_initted.fill_(True)
        else:
            m = self.log_amp_momentum
            self.log_amp_mean.lerp_(mean, m)
            self.log_amp_std.lerp_(std, m)

    def decode_latent(self, q: torch.Tensor, enc: dict) -> dict[str, torch.Tensor]:
        """Quantized latents of the valid tokens → predicted spectra and patches (B, C, P, S)."""
        b, c, p = enc["shape"]
        tok_valid = enc["tok_valid"]
        z = torch.zeros(b, c * p, self.dim, device=q.device, dtype=q.dtype)
        z[tok_valid] = self.decoder_input(q)
        z = self.decoder(z + enc["posemb"], tok_valid)
        if self.decoder_kind == "waveform":
            out = self.head(z)
            skip = self.decoder_skip(q)
            if skip is not None:
                out = out.index_put((tok_valid,), out[tok_valid] + skip)
            patches = rearrange(out, "b (c p) s -> b c p s", c=c)
            spec = SpectralTargets.of(patches)
            return dict(log_amp=spec.log_amp, log_amp_z=(spec.log_amp - self.log_amp_mean) / self.log_amp_std,
                        cos=spec.cos, sin=spec.sin, patches=patches)
        out = rearrange(self.head(z), "b (c p) (k f) -> k b c p f", c=c, k=3)
        log_amp_z, cos, sin = out[0], out[1], out[2]
        log_amp = log_amp_z * self.log_amp_std + self.log_amp_mean
        patches = rebuild_patch(log_amp, cos, sin, self.patch_size)
        return dict(log_amp=log_amp, log_amp_z=log_amp_z, cos=cos, sin=sin, patches=patches)

    @staticmethod
    def _valid_tokens(enc: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs of :meth:`quantize` / :meth:`latent` for the valid tokens: encoder output (n_scales, M, dim)
        and the (M, patch_size) z-scored patches, in the same order."""
        tok_valid = enc["tok_valid"]
        return enc["h"][:, tok_valid], rearrange(enc["patches"], "b c p s -> b (c p) s")[tok_valid]

    @staticmethod
    def _code_grid(codes_valid: torch.Tensor, enc: dict) -> torch.Tensor:
        """Codes of the valid tokens → (B, C, P, n_scales, n_levels), -1 at padded channels."""
        b, c, p = enc["shape"]
        codes = codes_valid.new_full((b, c * p, *codes_valid.shape[1:]), -1)
        codes[enc["tok_valid"]] = codes_valid
        return rearrange(codes, "b (c p) k l -> b c p k l", c=c)

    @staticmethod
    def _unpatch(patches: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """(B, C, P, S) z-scored patches → (B, C, T) in the input's units."""
        return rearrange(patches, "b c p s -> b c (p s)") * std + mean

    def forward(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None) -> TokenizerOutput:
        enc = self.encode_tokens(x, pos=pos, mask=mask, ch_names=ch_names)
        q, codes_valid, vq_loss = self.quantize(*self._valid_tokens(enc))
        target = SpectralTargets.of(enc["patches"])
        b, c, p = enc["shape"]
        valid3 = enc["valid"][:, :, None].expand(b, c, p)
        if self.training:
            self._track_log_amp(target.log_amp, valid3)
        dec = self.decode_latent(q, enc)
        # amplitude loss on the z-scored log-amplitude (every bin on the same footing)
        target_z = SpectralTargets((target.log_amp - self.log_amp_mean) / self.log_amp_std, target.cos, target.sin,
                                   target.amp)
        losses = spectral_loss(dec["log_amp_z"], dec["cos"], dec["sin"], target_z, valid3, self.phase_weighting)
        w = valid3.to(x.dtype)
        losses["time"] = (((dec["patches"] - enc["patches"]) ** 2).mean(-1) * w).sum() / w.sum().clamp_min(1)
        losses["vq"] = vq_loss
        rows = enc["valid"].reshape(-1)
        flat = lambda t: rearrange(t, "b c p s -> (b c) (p s)")[rows]  # noqa: E731
        if self.loss_weights["stft"] > 0:
            losses["stft"] = multi_resolution_stft_loss(flat(dec["patches"]), flat(enc["patches"]), self.stft_ffts)
        else:
            losses["stft"] = x.new_zeros(())
        if self.loss_weights["diff"] > 0:   # MSE of the first difference: weights each band by ~f², against 1/f
            losses["diff"] = ((flat(dec["patches"]).diff(dim=-1) - flat(enc["patches"]).diff(dim=-1)) ** 2).mean()
        else:
            losses["diff"] = x.new_zeros(())
        losses["loss"] = sum(self.loss_weights[k] * losses[k]
                             for k in ("vq", "amp", "phase", "unit", "time", "stft", "diff"))
        return TokenizerOutput(recon=self._unpatch(dec["patches"], enc["mean"], enc["std"]),
                               codes=self._code_grid(codes_valid, enc), losses=losses, valid=enc["valid"],
                               extras=dict(mean=enc["mean"], std=enc["std"]))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None, beam: int = 1,
               n_codes: int | None = None, bits_per_token: float | None = None) -> dict[str, torch.Tensor]:
        """Codes (B, C, P, n_scales, n_levels) plus the side information (mean, std).

        ``beam`` > 1 encodes by beam search over the residual levels (:meth:`search_codes`) instead of greedily:
        lower error for the same codes, ``beam`` times the quantizer's work. ``n_codes`` is the rate to encode for
        (codes per token; the rest are -1); with greedy encoding every prefix is already the best it can be, so
        it only masks; a tensor gives each valid token its own count (in the order of :meth:`count_errors`).
        ``bits_per_token`` encodes at a variable rate instead: each token gets its own number of
        codes (:func:`~neurofm.models.layers.rvq.allocate_codes`), so that the batch's mean bits per token — the
        codes plus the entropy of the counts — meet the budget; ``codes >= 0`` per token is the count to send.
        """
        enc = self.encode_tokens(x, pos=pos, mask=mask, ch_names=ch_names)
        if beam > 1 or bits_per_token is not None or torch.is_tensor(n_codes):
            _, codes_valid = self.search_codes(*self._valid_tokens(enc), beam=beam, n_codes=n_codes,
                                               bits_per_token=bits_per_token)
        else:
            _, codes_valid, _ = self.quantize(*self._valid_tokens(enc))
            if n_codes is not None:
                codes_valid = keep_code_prefix(codes_valid, n_codes)
        return dict(codes=self._code_grid(codes_valid, enc), mean=enc["mean"], std=enc["std"], valid=enc["valid"])

    @torch.no_grad()
    def reconstruct_unquantized(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None) -> dict[str, torch.Tensor]:
        """Decode the encoder's latents *before* quantization: the autoencoder's own floor, which no number of
        levels can beat. Returns z-scored ``recon`` and ``target`` patches (B, C, P, S) and the channel mask
        ``valid`` (B, C). Raises NotImplementedError for tokenizers without :meth:`latent`."""
        enc = self.encode_tokens(x, pos=pos, mask=mask, ch_names=ch_names)
        dec = self.decode_latent(self.latent(*self._valid_tokens(enc)), enc)
        return dict(recon=dec["patches"], target=enc["patches"], valid=enc["valid"])

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, pos=None, mask=None, ch_names=None,
               n_levels: int | None = None, n_codes: int | None = None) -> torch.Tensor:
        """Rebuild (B, C, T) from codes and side information, optionally from the first ``n_levels`` levels or
        the first ``n_codes`` codes of each token (ordered level by level, scale by scale within a level)."""
        if n_codes is not None:
            codes, n_levels = keep_code_prefix(codes, n_codes), -(-n_codes // self.n_scales)
        b, c, p = codes.shape[:3]
        tok_valid = token_mask(channel_mask(mask, b, c, codes.device), p)
        flat = rearrange(codes, "b c p k l -> b (c p) k l")[tok_valid]
        q = self.lookup(flat, n_levels)
        enc = dict(shape=(b, c, p), tok_valid=tok_valid,
                   posemb=self.position_embedding(b, c, p, pos, ch_names, codes.device))
        return self._unpatch(self.decode_latent(q, enc)["patches"], mean, std)

    # ---- for downstream heads ------------------------------------------------------------------------------
    @property
    def num_features(self) -> int:
        return self.dim

    def forward_features(self, x: torch.Tensor, *, pos=None, mask=None, ch_names=None):
        """Encoder tokens averaged over scales: ((B, C·P, dim), token mask (B, C·P))."""
        enc = self.encode_tokens(x, pos=pos, mask=mask, ch_names=ch_names)
        return enc["h"].mean(0), enc["tok_valid"]
