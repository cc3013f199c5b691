"""Base LightningModule of neurofm pretraining: a registered model, AdamW + warmup/cosine, contract, export."""

from __future__ import annotations

import math
import os
from typing import Any

import lightning as L
import torch

from neurofm.models._contract import SignalContract
from neurofm.registry import create_model


class NeurofmModule(L.LightningModule):
    """Wraps the registered model ``model`` (built with ``model_kwargs``) for training.

    Subclasses implement ``training_step``/``validation_step``. The signal contract is taken from
    the datamodule's store manifest at ``setup`` and travels in checkpoints and exports.

    Parameters
    ----------
    model : str
        Registered model name (``neurofm list models``).
    model_kwargs : dict
        Keyword arguments of the model factory; saved with the weights.
    lr, weight_decay : float
        AdamW settings. Norms, biases and embeddings get no weight decay.
    warmup_steps : int
        Linear warm-up, then cosine decay to ``min_lr_ratio * lr`` over the run.
    """

    def __init__(self, model: str, model_kwargs: dict[str, Any] | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.05, warmup_steps: int = 100, min_lr_ratio: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model, **(model_kwargs or {}))
        self.contract: SignalContract | None = None

    def configure_model(self) -> None:
        """Rebuild quantizing models with ``sync_codebook=True`` once the process group exists.

        vector-quantize-pytorch decides codebook syncing when a module is built. LightningCLI builds
        the model before DDP starts, so it would train each rank's codebooks on its own data.
        Lightning calls this hook after the process group is up and before weights are restored
        or wrapped, so a model with a ``sync_codebook`` attribute that is False is rebuilt here with it on.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return
        if getattr(self.model, "sync_codebook", True) is False:
            self.model = create_model(self.hparams.model, **(self.hparams.model_kwargs or {}), sync_codebook=True)

    def on_train_start(self) -> None:
        """Hand the checkpoint's training-loader position to the loader (exact mid-epoch resume).

        Lightning loads loader states only inside ``fit_loop.setup_data``. ``configure_optimizers`` reads
        ``trainer.estimated_stepping_batches``, which (with ``max_epochs`` set, as in every shipped config)
        builds the train loader *before* the checkpoint is restored; ``setup_data`` then returns early and
        the position is never loaded, so a resumed run replayed the epoch's first batches and ended with other
        weights than an uninterrupted run (found by the SLURM requeue check). The states Lightning kept
        pending are loaded here, after the restore and before the first batch is drawn.
        """
        loop = self.trainer.fit_loop
        if getattr(loop, "_combined_loader_states_to_load", None) and hasattr(loop, "_load_combined_loader_states"):
            loop._load_combined_loader_states()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Reseed every RNG from (global seed, step, rank): a resumed run draws the same masks/crops/codes."""
        import random

        import numpy as np

        seed = (int(os.environ.get("PL_GLOBAL_SEED", 0)) * 1_000_003 + self.global_step * 7919 + self.global_rank) % 2**31
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)

    # ---- contract ---------------------------------------------------------------------------------
    def contract_overrides(self) -> dict[str, Any]:
        """Extra contract fields a subclass knows (e.g. normalisation, positions_required)."""
        return {}

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        manifests = getattr(dm, "manifests", None)
        if manifests is None and getattr(dm, "manifest", None) is not None:
            manifests = [dm.manifest]
        if manifests:  # several stores: every store's channels are part of what the weights were trained on
            contract = SignalContract.from_manifests(manifests, **self.contract_overrides())
            if self.contract is not None:  # resumed: the data must still fit the weights
                self.contract.check(sfreq=contract.sfreq, n_times=contract.n_times, units=contract.units,
                                    source=getattr(dm.hparams, "store", None))
            else:
                self.contract = contract

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["neurofm"] = dict(model=self.hparams.model, model_kwargs=dict(self.hparams.model_kwargs or {}),
                                     contract=None if self.contract is None else self.contract.to_dict())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("neurofm") or {}
        if info.get("contract"):
            self.contract = SignalContract.from_dict(info["contract"])

    # ---- optimisation -------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "embed" in name or "codebook" in name else decay).append(p)
        return [dict(params=decay, weight_decay=self.hparams.weight_decay), dict(params=no_decay, weight_decay=0.0)]

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameter_groups(), lr=hp.lr, betas=(0.9, 0.98))
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warm = min(hp.warmup_steps, total // 2)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = min((step - warm) / max(total - warm, 1), 1.0)
            return hp.min_lr_ratio + (1 - hp.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return dict(optimizer=opt, lr_scheduler=dict(scheduler=sched, interval="step"))

    # ---- export -------------------------------------------------------------------------------------
    def export(self, directory: str | os.PathLike) -> None:
        """Write the model's weights (safetensors), kwargs and contract to ``directory``."""
        from neurofm.models._hub import save_pretrained

        if self.contract is None:
            from neurofm._errors import ContractError

            raise ContractError("the model has no signal contract (it never saw a store).",
                                hint="train or resume it with a StoreDataModule before exporting.")
        save_pretrained(self.model, directory, name=self.hparams.model, kwargs=dict(self.hparams.model_kwargs or {}),
                        contract=self.contract)
