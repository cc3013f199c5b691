"""Residual vector quantization of several scales side by side: one quantizer call per level.

Every scale has its own codebooks; a level quantizes the residual of all scales in a single
:class:`vector_quantize_pytorch.VectorQuantize` call (``heads = n_scales``, a separate codebook per head),
so a step makes ``n_levels`` quantizer calls instead of ``n_scales × n_levels``. Quantizer dropout draws
one prefix length per step and skips the levels after it (they cost nothing), so one model serves every
rate: decode from the first ``n`` levels.

On one process with Euclidean codes in ``code_dim`` (the tiny and base configs), each level runs
:func:`_quantize_level`, a lean equivalent of the library's forward on the same buffers: argmin of
``|e|² − 2 x·e`` (no square root), a gather instead of a one-hot matrix product, EMA statistics by
scatter-add, the library's k-means initialisation, dead-code replacement and rotation-trick gradients. On a
1-thread CPU it made the quantizer ~5× faster. Under DDP (``sync_codebook``) or with factorised/cosine codes
the library's own forward runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from vector_quantize_pytorch import VectorQuantize
from vector_quantize_pytorch.vector_quantize_pytorch import rotate_to


class MultiScaleResidualVQ(nn.Module):
    """``n_scales`` residual quantizers of ``n_levels`` × ``codebook_size`` codes, run level by level.

    Parameters
    ----------
    n_scales, n_levels, codebook_size, code_dim : int
        Scales, residual levels per scale, codes per codebook, latent dimension per scale.
    codebook_dim : int or None
        Factorised codes (DAC): each scale's residual is projected to this dimension for the lookup and back.
        ``None`` looks up in ``code_dim`` directly.
    cosine : bool
        l2-normalise codes and projected inputs (cosine-similarity lookup); meant with ``codebook_dim``.
    decay, kmeans_init, dead_code_threshold, commitment_weight, sync_codebook
        Passed to every level's ``VectorQuantize`` (EMA decay, k-means initialisation on the first batch,
        re-seeding of codes whose EMA usage falls below the threshold, commitment loss weight, DDP sync).
    quantize_dropout : bool
        Train on a random prefix of ``min_levels``..``n_levels`` levels per step.
    min_levels : int
        Shortest prefix trained with quantizer dropout.
    dropout_prob : float
        Probability that a training step draws a prefix (DAC's quantizer-dropout rate); the other steps train
        every level. 1.0: every step draws one.
    code_prefix : bool
        Draw the prefix in codes rather than levels: codes are ordered level by level, scale by scale within a
        level, and a prefix may end inside a level (its last scales then have one level fewer). Every count of
        codes becomes a rate point (steps of ``log2(codebook_size)`` bits instead of ``n_scales`` times that).
    """

    def __init__(self, n_scales: int, n_levels: int, codebook_size: int, code_dim: int, *,
                 codebook_dim: int | None = None, cosine: bool = False, decay: float = 0.99, kmeans_init: bool = True,
                 dead_code_threshold: float = 1.0, commitment_weight: float = 1.0, quantize_dropout: bool = True,
                 min_levels: int = 1, dropout_prob: float = 1.0, sync_codebook: bool = False,
                 code_prefix: bool = False):
        super().__init__()
        self.code_prefix = code_prefix
        self.n_scales, self.n_levels, self.code_dim = n_scales, n_levels, code_dim
        self.quantize_dropout = quantize_dropout and n_levels > 1
        self.min_levels = max(1, min(min_levels, n_levels))
        self.dropout_prob = dropout_prob
        self.sync_codebook = sync_codebook
        # vector-quantize-pytorch refuses k-means init for several codebooks (heads) under DDP. With sync_codebook,
        # each level is built without DDP and switched to it by _synchronise: EMA statistics and dead-code samples
        # are all-reduced / drawn across ranks as the library does for one codebook, and the k-means run on each
        # rank's first batch is replaced by rank 0's (broadcast in forward), so every rank holds the same codebooks.
        self.levels = nn.ModuleList(
            VectorQuantize(dim=n_scales * code_dim, heads=n_scales, separate_codebook_per_head=True,
                           codebook_dim=codebook_dim or code_dim, codebook_size=codebook_size, decay=decay,
                           kmeans_init=kmeans_init, kmeans_iters=10, threshold_ema_dead_code=dead_code_threshold,
                           commitment_weight=commitment_weight, use_cosine_sim=cosine,
                           sync_codebook=sync_codebook and not kmeans_init)
            for _ in range(n_levels))
        if sync_codebook and kmeans_init:
            for vq in self.levels:
                _synchronise(vq._codebook)
        self.fast = not sync_codebook and not cosine and (codebook_dim or code_dim) == code_dim

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(M, n_scales, code_dim) → (quantized (M, n_scales, code_dim), codes (M, n_scales, n_levels), loss).

        Codes of levels skipped by quantizer dropout are -1.
        """
        m, s_ = z.shape[0], self.n_scales
        k = self.n_levels * s_                                   # codes per token in the prefix
        if self.training and self.quantize_dropout and all(bool(vq._codebook.initted) for vq in self.levels):
            # (every level runs until all are k-means-initialised: a level first reached at inference would
            # otherwise initialise itself on the user's data, and encode would not be reproducible)
            drop = self.dropout_prob >= 1 or bool(torch.rand(()) < self.dropout_prob)
            if drop:
                k = (int(torch.randint(self.min_levels * s_, k + 1, ()).item()) if self.code_prefix
                     else int(torch.randint(self.min_levels, self.n_levels + 1, ()).item()) * s_)
            k = _same_on_every_rank(k, self.sync_codebook, z.device)   # every rank must make the same (collective) calls
        n = -(-k // s_)                                          # levels touched
        partial = k - (n - 1) * s_                               # scales kept at the last of them
        keep = torch.arange(s_, device=z.device) < partial       # (S,)
        codes = z.new_full((m, self.n_scales, self.n_levels), -1, dtype=torch.long)
        loss = z.new_zeros(())
        if self.fast:
            residual = rearrange(z, "m s d -> s m d").float()
            out = torch.zeros_like(residual)
            for lvl, vq in enumerate(self.levels[:n]):
                q, idx, vq_loss = _quantize_level(vq, residual, self.training)
                if lvl == n - 1 and partial < s_:
                    q, idx = q * keep[:, None, None], idx.masked_fill(~keep[:, None], -1)
                residual = residual - q.detach()
                out = out + q
                codes[:, :, lvl] = idx.T
                loss = loss + vq_loss
            return rearrange(out, "s m d -> m s d"), codes, loss
        residual = rearrange(z, "m s d -> 1 m (s d)")  # the library's layout: one call quantizes every scale
        out = torch.zeros_like(residual)
        for lvl, vq in enumerate(self.levels[:n]):
            fresh = self.training and self.sync_codebook and not bool(vq._codebook.initted)
            q, idx, vq_loss = vq(residual)
            if fresh:
                _broadcast_codebook(vq._codebook)
            if lvl == n - 1 and partial < s_:
                q = (rearrange(q, "1 m (s d) -> m s d", s=s_) * keep[:, None]).reshape(q.shape)
                idx = idx.masked_fill(~keep, -1)
            residual = residual - q.detach()
            out = out + q
            codes[:, :, lvl] = idx[0]
            loss = loss + vq_loss.sum()
        return rearrange(out, "1 m (s d) -> m s d", s=self.n_scales), codes, loss

    def stacked_codebooks(self) -> torch.Tensor:
        """Every codebook as one (n_scales, n_levels, codebook_size, code_dim) tensor (Euclidean codes)."""
        return torch.stack([vq._codebook.embed.detach() for vq in self.levels], 1)

    @torch.no_grad()
    def search(self, z: torch.Tensor, beam: int, n_codes: int | torch.Tensor | None = None,
               bits_per_token: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Beam-search encoding (inference): (M, n_scales, code_dim) → (quantized, codes (M, n_scales, n_levels)),
        for ``n_codes`` codes per token or a per-token allocation within ``bits_per_token`` (:func:`encode_at_rate`)."""
        if not self.fast:
            raise ValueError("beam search needs Euclidean codes in code_dim on one process "
                             "(not cosine, factorised or DDP-synchronised codebooks): use beam=1")
        return encode_at_rate(z, self.stacked_codebooks(), beam, n_codes, bits_per_token)

    def lookup(self, codes: torch.Tensor, n_levels: int | None = None) -> torch.Tensor:
        """(M, n_scales, n_levels) codes → (M, n_scales, code_dim), summing the first ``n_levels`` levels;
        a code of -1 (absent: beyond a code prefix) adds nothing."""
        n = self.n_levels if n_levels is None else min(n_levels, self.n_levels)
        out = codes.new_zeros((codes.shape[0], self.n_scales, self.code_dim), dtype=torch.float)
        for lvl, vq in enumerate(self.levels[:n]):
            c = codes[:, :, lvl]
            q = rearrange(vq.get_output_from_indices(c[None].clamp_min(0))[0], "m (s d) -> m s d", s=self.n_scales)
            out = out + q * (c >= 0)[..., None]
        return out

    def codebooks(self) -> list[torch.Tensor]:
        """(n_levels, codebook_size, dim) per scale."""
        books = torch.stack([vq.codebook.detach() for vq in self.levels])      # (L, S, K, d)
        return list(books.transpose(0, 1))


@torch.no_grad()
def encode_at_rate(z: torch.Tensor, books: torch.Tensor, beam: int = 1, n_codes: int | torch.Tensor | None = None,
                   bits_per_token: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual codes of latents ``z`` (M, S, d) in codebooks ``books`` (S, L, K, d) → (quantized (M, S, d), codes
    (M, S, L)), -1 after each token's last code.

    Greedy residual quantization picks each level's nearest code and can never undo a choice; with ``beam`` > 1
    each scale keeps the ``beam`` best partial sums per level (:func:`rvq_beam_paths`), and a token sending l levels
    of a scale gets the best sum found at level l. The count of codes (ordered level by level, scale by scale within
    a level) is ``n_codes`` — one for every token (default: all) or one per token (M,) — or, with
    ``bits_per_token``, each token's own count from :func:`allocate_codes` on the searched errors, the batch's mean
    bits (codes + the counts' entropy) within that budget.
    """
    s_, lv, k_size = books.shape[:3]
    total = s_ * lv
    fixed = bits_per_token is None and not torch.is_tensor(n_codes)
    if fixed and not 0 <= (total if n_codes is None else n_codes) <= total:
        raise ValueError(f"n_codes={n_codes}: a token has 0..{total} codes")
    depth = -(-(total if n_codes is None else n_codes) // s_) if fixed else lv
    if depth == 0:                                                                     # nothing to send
        return torch.zeros_like(z, dtype=torch.float), z.new_full((z.shape[0], s_, lv), -1, dtype=torch.long)
    searched = [rvq_beam_paths(z[:, s].float(), books[s, :depth], beam) for s in range(s_)]
    if bits_per_token is not None:
        errors = torch.stack([e for _, e in searched], 1)                              # (M, S, depth + 1)
        n_codes = allocate_codes(_errors_by_code_count(errors), bits_per_token, math.log2(k_size))
    counts = torch.as_tensor(total if n_codes is None else n_codes, device=z.device).long().expand(z.shape[0])
    if len(counts) and not (0 <= int(counts.min()) and int(counts.max()) <= s_ * depth):
        bad = int(counts.max()) if int(counts.max()) > total else int(counts.min())
        raise ValueError(f"n_codes={bad}: a token has 0..{total} codes")
    codes = z.new_full((z.shape[0], s_, lv), -1, dtype=torch.long)
    out = torch.zeros_like(z, dtype=torch.float)
    rows = torch.arange(z.shape[0], device=z.device)
    for s, (paths, _) in enumerate(searched):
        n = counts // s_ + (s < counts % s_).long()                                    # levels of this scale
        chosen = paths[rows, (n - 1).clamp_min(0)]                                     # (M, depth)
        chosen = chosen.masked_fill(torch.arange(depth, device=z.device)[None] >= n[:, None], -1)
        codes[:, s, :depth] = chosen
        picked = books[s, torch.arange(depth, device=z.device), chosen.clamp_min(0)]   # (M, depth, d)
        out[:, s] = (picked * (chosen >= 0)[..., None]).sum(1)
    return out, codes


@torch.no_grad()
def prefix_errors(z: torch.Tensor, books: torch.Tensor, beam: int = 1) -> torch.Tensor:
    """Latents (M, S, d), codebooks (S, L, K, d) → (M, S·L + 1): each token's squared error with its first k codes
    (k = 0 … all; level by level, scale by scale within a level), each count searched with ``beam``."""
    errors = torch.stack([rvq_beam_paths(z[:, s].float(), books[s], beam)[1] for s in range(books.shape[0])], 1)
    return _errors_by_code_count(errors)


def _errors_by_code_count(errors: torch.Tensor) -> torch.Tensor:
    """(M, S, L + 1) error of each scale after l of its levels → (M, S·L + 1) error after k codes in all."""
    m, s_, lv = errors.shape[0], errors.shape[1], errors.shape[2] - 1
    k = torch.arange(s_ * lv + 1, device=errors.device)
    levels_of = k[None] // s_ + (torch.arange(s_, device=errors.device)[:, None] < k[None] % s_)   # (S, K+1)
    return errors.gather(2, levels_of[None].expand(m, -1, -1)).sum(1)


def rvq_beam_search(x: torch.Tensor, books: torch.Tensor, beam: int, chunk: int = 256) -> torch.Tensor:
    """Residual VQ codes (M, L) of ``x`` (M, d) over codebooks ``books`` (L, K, d): the closest sum after the last
    level found by a beam search of width ``beam`` (1: greedy); see :func:`rvq_beam_paths`."""
    return rvq_beam_paths(x, books, beam, chunk)[0][:, -1]


def rvq_beam_paths(x: torch.Tensor, books: torch.Tensor, beam: int, chunk: int = 256
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search over residual levels: each level extends the ``beam`` partial sums kept so far by every code and
    keeps the ``beam`` closest to ``x`` (M, d). Returns, for every depth l = 1 … L, the codes of the closest sum
    found at that depth, (M, L, L) (entries after l are -1), and its squared error, (M, L + 1) with the error of
    sending nothing first. The search is causal — depth l does not depend on later levels — so depth l is also
    the result of a search of l levels. ``beam=1``: greedy. Works in chunks of tokens to bound memory."""
    n_lv, k, d = books.shape
    sq = (books * books).sum(-1)                                          # (L, K)
    paths, errors = [], []
    for x_ in x.split(chunk):
        m = len(x_)
        rec = x_.new_zeros(m, 1, d)
        hist = torch.zeros(m, 1, 0, dtype=torch.long, device=x.device)
        best = torch.full((m, n_lv, n_lv), -1, dtype=torch.long, device=x.device)
        err = x_.new_zeros(m, n_lv + 1)
        err[:, 0] = (x_ * x_).sum(-1)
        for lvl in range(n_lv):
            r = x_[:, None] - rec                                               # (m, b, d)
            dist = (r * r).sum(-1, keepdim=True) - 2 * r @ books[lvl].T + sq[lvl]   # (m, b, K)
            found = dist.reshape(m, -1).topk(min(beam, dist.shape[1] * k), dim=1, largest=False)
            parent, code = found.indices // k, found.indices % k               # (m, b'), sorted: 0 is the best
            rec = rec.gather(1, parent[..., None].expand(-1, -1, d)) + books[lvl][code]
            hist = torch.cat([hist.gather(1, parent[..., None].expand(-1, -1, lvl)), code[..., None]], -1)
            best[:, lvl, : lvl + 1] = hist[:, 0]
            err[:, lvl + 1] = found.values[:, 0].clamp_min(0)
        paths.append(best)
        errors.append(err)
    return torch.cat(paths), torch.cat(errors)


def allocate_codes(errors: torch.Tensor, bits_per_token: float, bits_per_code: float, iters: int = 4) -> torch.Tensor:
    """Codes per token (M,) for a mean budget of ``bits_per_token`` (codes plus the count itself), from each token's
    error after each prefix ``errors`` (M, K+1).

    Entropy-constrained Lagrangian allocation: every token takes the count k minimising error + λ·(k·bits_per_code +
    ℓ(k)), where ℓ(k) = -log2 p(k) is the count's code length under the previous round's count histogram (an ideal
    static entropy coder, as the DCT reference is counted); λ is bisected so the mean bits meet the budget. Tokens
    that are hard to code get more codes, easy ones fewer; the mean error at a given mean rate falls.
    (:func:`prefix_errors` gives ``errors``.)
    """
    m, n_counts = errors.shape
    if m == 0:
        return torch.zeros(0, dtype=torch.long, device=errors.device)
    cost_codes = torch.arange(n_counts, dtype=errors.dtype, device=errors.device) * bits_per_code
    length = torch.zeros_like(cost_codes)
    counts = torch.zeros(m, dtype=torch.long, device=errors.device)
    for _ in range(iters):
        lo, hi = 1e-12, 1e6
        for _ in range(64):                                   # geometric bisection of λ
            lam = (lo * hi) ** 0.5
            trial = (errors + lam * (cost_codes + length)).argmin(1)
            if mean_bits(trial, n_counts, bits_per_code) > bits_per_token:
                lo = lam
            else:
                hi = lam
        counts = (errors + hi * (cost_codes + length)).argmin(1)
        p = torch.bincount(counts, minlength=n_counts).to(errors.dtype) / max(m, 1)
        length = -torch.log2(p.clamp_min(1.0 / max(m, 1)))
    return counts


def mean_bits(counts: torch.Tensor, n_counts: int, bits_per_code: float) -> float:
    """Mean bits per token of per-token code counts: the codes, plus the counts' empirical entropy."""
    return float(counts.double().mean()) * bits_per_code + count_entropy(counts, n_counts)


def count_entropy(counts: torch.Tensor, n_counts: int) -> float:
    """Empirical entropy (bits) of integer counts in 0..n_counts-1."""
    p = torch.bincount(counts.reshape(-1), minlength=n_counts).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log2()).sum())


def _quantize_level(vq: VectorQuantize, x: torch.Tensor, training: bool):
    """One level of every scale, (S, M, d) residuals → (quantized (S, M, d), codes (S, M), commitment loss).

    The same computation as ``vq(x)`` for Euclidean codes without projection and without DDP, on the same
    buffers (so checkpoints, k-means initialisation and dead-code replacement are the library's), minus its
    one-hot matrices and square roots.
    """
    cb = vq._codebook
    xd = x.detach()
    if not bool(cb.initted):
        cb.init_embed_(xd)
    embed = cb.embed.detach()                                                        # (S, K, d)
    dist = torch.baddbmm((embed * embed).sum(-1)[:, None, :], xd, embed.transpose(1, 2), alpha=-2.0)
    idx = dist.argmin(-1)                                                            # (S, M)
    gather_idx = idx[..., None].expand(-1, -1, embed.shape[-1])
    q = embed.gather(1, gather_idx)
    if not training:
        return q, idx, x.new_zeros(())
    counts = xd.new_zeros(cb.cluster_size.shape).scatter_add_(1, idx, xd.new_ones(idx.shape))
    sums = xd.new_zeros(cb.embed_avg.shape).scatter_add_(1, gather_idx, xd)
    cb.cluster_size.data.lerp_(counts, 1.0 - cb.decay)
    cb.embed_avg.data.lerp_(sums, 1.0 - cb.decay)
    cb.update_ema()
    cb.expire_codes_(xd)
    loss = F.mse_loss(q, x) * vq.commitment_weight if vq.has_commitment_loss else x.new_zeros(())
    q = rotate_to(x, q) if vq.rotation_trick else x + (q - x).detach()
    return q, idx, loss


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _synchronise(codebook: nn.Module) -> None:
    """Switch a codebook built without DDP to DDP's all-reduced EMA updates and cross-rank dead-code samples."""
    from vector_quantize_pytorch import vector_quantize_pytorch as vqp

    codebook.use_ddp = True
    codebook.all_reduce_fn = vqp.distributed.all_reduce
    codebook.replace_sample_fn = vqp.sample_vectors_distributed


def _broadcast_codebook(codebook: nn.Module) -> None:
    """Give every rank rank 0's codebook state (after the k-means initialisation each rank ran on its own batch)."""
    if not _distributed():
        return
    for name in ("embed", "embed_avg", "cluster_size", "initted"):
        torch.distributed.broadcast(getattr(codebook, name).data, src=0)


def _same_on_every_rank(value: int, sync: bool, device: torch.device) -> int:
    if not (sync and _distributed()):
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    torch.distributed.broadcast(t, src=0)
    return int(t.item())
