"""LightningModule that trains a neurofm tokenizer (NeuroRVQ-style or LaBraM-style) on a store."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neurofm.evaluation.fidelity import CodeUsage, FidelityAccumulator, bands_for
from neurofm.training.module import NeurofmModule


def crop_channels(batch: dict[str, Any], max_chans: int, generator: torch.Generator | None = None) -> dict[str, Any]:
    """Keep a random subset of at most ``max_chans`` valid channels per window (augmentation and speed)."""
    x, mask = batch["x"], batch["mask"]
    if x.shape[1] <= max_chans:
        return batch
    b = x.shape[0]
    keys = torch.rand(b, x.shape[1], generator=generator) + (~mask.cpu()).float() * 2  # padded channels last
    order = keys.argsort(dim=1)[:, :max_chans].to(x.device)
    out = dict(batch)
    out["x"] = torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[2]))
    out["mask"] = torch.gather(mask, 1, order)
    out["pos"] = torch.gather(batch["pos"], 1, order[..., None].expand(-1, -1, 3))
    out["ch_names"] = [[names[i] if i < len(names) else "" for i in row.tolist()]
                       for names, row in zip(batch["ch_names"], order.cpu(), strict=True)]
    return out


class TokenizerModule(NeurofmModule):
    """Trains the registered tokenizer ``model`` with its own loss; validates fidelity and code usage.

    Parameters
    ----------
    max_chans : int
        Channels kept per training window (random subset); validation uses all.
    **kwargs
        :class:`~neurofm.training.module.NeurofmModule` arguments (model, model_kwargs, lr, ...).
    """

    def __init__(self, model: str, model_kwargs: dict[str, Any] | None = None, max_chans: int = 32, lr: float = 1e-3,
                 weight_decay: float = 0.05, warmup_steps: int = 100, min_lr_ratio: float = 0.05):
        super().__init__(model=model, model_kwargs=model_kwargs, lr=lr, weight_decay=weight_decay,
                         warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)
        self.save_hyperparameters()

    def contract_overrides(self) -> dict[str, Any]:
        return dict(normalization="per channel-window z-score (mean/std sent as float16)", positions_required=True)

    def _forward(self, batch: dict[str, Any]):
        return self.model(batch["x"], pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        batch = crop_channels(batch, self.hparams.max_chans)
        out = self._forward(batch)
        self.log_dict({f"train/{k}": v.detach() for k, v in out.losses.items()}, batch_size=batch["x"].shape[0],
                      prog_bar=False, on_step=True, on_epoch=True)
        self.log("train_loss", out.losses["loss"].detach(), prog_bar=True, batch_size=batch["x"].shape[0])
        return out.losses["loss"]

    def on_validation_epoch_start(self) -> None:
        m = self.model
        sfreq = self.contract.sfreq if self.contract else 200.0
        band = self.contract.band if self.contract and self.contract.band else (None, None)
        self._fid = FidelityAccumulator(sfreq, bands_for(sfreq, band[1]))
        self._usage = CodeUsage(m.n_scales, m.n_levels, m.codebook_size)
        self._n_times = None

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out = self._forward(batch)
        bs = batch["x"].shape[0]
        self.log_dict({f"val/{k}": v for k, v in out.losses.items()}, batch_size=bs, sync_dist=True)
        self.log("val_loss", out.losses["loss"], batch_size=bs, sync_dist=True, prog_bar=True)
        valid = out.valid.cpu().numpy()
        x = batch["x"].detach().cpu().numpy()[valid]
        self._fid.update(x, out.recon.detach().float().cpu().numpy()[valid])
        self._usage.update(out.codes.cpu().numpy()[valid])
        self._n_times = x.shape[-1]

    def on_validation_epoch_end(self) -> None:
        if self._n_times is None:
            return
        fid = self._fid.result(self._n_times)
        usage = self._usage.result()
        metrics = {"val/zmse": fid["zmse"], "val/r": fid["r"], "val/min_code_usage_pct": usage["min_usage_pct"],
                   "val/entropy_bits_per_token": usage["entropy_bits_per_token"]}
        metrics.update({f"val/r_{k}": v for k, v in fid["bands"].items()})
        for s, row in enumerate(np.asarray(usage["usage_pct"])):
            for lvl, u in enumerate(row):
                metrics[f"codes/usage_s{s}_l{lvl}"] = float(u)
                metrics[f"codes/perplexity_s{s}_l{lvl}"] = float(usage["perplexity"][s][lvl])
        self.log_dict(metrics, sync_dist=False)
