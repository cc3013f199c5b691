"""Du-IN's codebook: one l2-normalised EMA codebook (vector-quantize-pytorch) with explicit DDP syncing.

vector-quantize-pytorch decides whether to all-reduce codebook updates when the quantizer is *built*
(a cached ``is_distributed()`` check). A model built before the process group exists would then train
its codebook on each rank's own data and drift apart (or, with DDP's buffer broadcast, on rank 0's data
only). Here ``sync_codebook`` is always explicit: the LightningModules call :meth:`set_sync_codebook`
in ``setup`` (after the process group starts, before DDP wraps the model), and a training forward
refuses to run under DDP with an unsynced codebook.
"""

from __future__ import annotations

import torch
from torch import nn


def world_size() -> int:
    """Number of processes of the default process group (1 without one)."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class CodebookQuantizer(nn.Module):
    """Single vector quantizer with an l2-normalised (cosine) codebook, EMA updates and k-means init.

    Parameters
    ----------
    dim : int
        Code dimension.
    codebook_size : int
        Number of codes.
    decay : float
        EMA decay of the codebook.
    commitment : float
        Weight β of the commitment loss.
    kmeans_init : bool
        Initialise the codebook by k-means on the first training batch.
    dead_code_threshold : float
        Codes whose EMA cluster size falls below this are replaced by batch vectors (0 = never).
    sync_codebook : bool
        All-reduce codebook updates across processes (DDP). Set it with :meth:`set_sync_codebook`.
    """

    def __init__(self, dim: int, codebook_size: int, *, decay: float = 0.99, commitment: float = 1.0,
                 kmeans_init: bool = True, dead_code_threshold: float = 2.0, sync_codebook: bool = False):
        super().__init__()
        self.dim, self.codebook_size = dim, codebook_size
        self._config = dict(dim=dim, codebook_size=codebook_size, decay=decay, commitment_weight=commitment,
                            kmeans_init=kmeans_init, kmeans_iters=10, threshold_ema_dead_code=dead_code_threshold,
                            use_cosine_sim=True, rotation_trick=True)
        self.sync_codebook = bool(sync_codebook)
        self.vq = self._build(self.sync_codebook)

    def _build(self, sync: bool) -> nn.Module:
        from vector_quantize_pytorch import VectorQuantize

        return VectorQuantize(**self._config, sync_codebook=sync, sync_kmeans=True)

    def set_sync_codebook(self, sync: bool) -> None:
        """Rebuild the quantizer with ``sync_codebook=sync``, keeping its codebook state.

        Call before DDP wraps the model (the quantizer has buffers only, no parameters, so an
        optimizer built earlier is unaffected).
        """
        sync = bool(sync)
        if sync == self.sync_codebook:
            return
        fresh = self._build(sync).to(self.codebook.device)
        fresh.load_state_dict(self.vq.state_dict())
        fresh.train(self.training)
        self.vq, self.sync_codebook = fresh, sync

    @property
    def codebook(self) -> torch.Tensor:
        """The codes, (codebook_size, dim)."""
        return self.vq.codebook

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantize ``z`` (B, N, dim) → (quantized (B, N, dim), indices (B, N), commitment loss)."""
        if self.training:
            n = world_size()
            if n > 1 and not self.sync_codebook:
                raise RuntimeError(
                    f"training under {n} processes with an unsynced codebook: each rank would learn its own codes. "
                    "Call set_sync_codebook(True) after the process group starts and before DDP wraps the model "
                    "(the Du-IN LightningModules do this in setup).")
            if self.sync_codebook and n == 1:
                raise RuntimeError("sync_codebook=True but no process group with more than one process is running; "
                                   "call set_sync_codebook(False) for single-process training.")
        quantized, indices, loss = self.vq(z)
        return quantized, indices, loss.reshape(())

    @torch.no_grad()
    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices of ``z`` (B, N, dim) without touching the codebook."""
        codes = nn.functional.normalize(self.codebook, dim=-1)
        z = nn.functional.normalize(z, dim=-1)
        return torch.einsum("bnd,kd->bnk", z, codes).argmax(-1)
