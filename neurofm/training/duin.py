"""LightningModules for Du-IN: VQ-VAE pretraining, masked code modelling, fine-tuning (classes or regression).

All three subclass :class:`neurofm.training.module.NeurofmModule` and run through ``neurofm pretrain``
(LightningCLI). In ``setup`` they read the data module's manifest, derive each input key's channels and
regions (:mod:`neurofm.models.duin.regions`, never from labels), add the missing per-subject input
layers, record them in ``model_kwargs`` (so checkpoints and exports rebuild the same model) and in the
contract, and set the codebook's DDP syncing explicitly before DDP wraps the model.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from neurofm._errors import ContractError
from neurofm.models.duin.layers import SHARED
from neurofm.models.duin.quantizer import world_size
from neurofm.models.duin.regions import RegionSpec, subject_channels
from neurofm.training.module import NeurofmModule

_ARCH = ("hidden", "dim", "depth", "heads", "widths", "sfreq", "patch_s", "n_times", "fusion", "size")


class DuINModule(NeurofmModule):
    """Base of the Du-IN modules: input layers from the data, regions in the contract, codebook syncing.

    Parameters
    ----------
    regions : dict | None
        :class:`~neurofm.models.duin.regions.RegionSpec` fields (``by``, ``atlas``, ``select``,
        ``drop_unknown``, ``min_contacts``): which contacts each subject's input layer fuses, and how
        they are grouped (for ``model_kwargs.fusion: region``).
    input_layers : str
        ``"subject"``: one input layer per batch ``subject`` (with :class:`DuINDataModule` that is the
        store-prefixed key); ``"shared"``: one layer for every item (single-channel data, Bonn).
    """

    def __init__(self, model: str, model_kwargs: dict[str, Any] | None = None, regions: dict[str, Any] | None = None,
                 input_layers: str = "subject", lr: float = 1e-3, weight_decay: float = 0.05, warmup_steps: int = 100,
                 min_lr_ratio: float = 0.05):
        if input_layers not in ("subject", "shared"):
            raise ContractError(f"input_layers '{input_layers}' is not 'subject' or 'shared'.",
                                hint="use 'shared' for data whose subjects should share one input layer (Bonn).")
        super().__init__(model, model_kwargs, lr, weight_decay, warmup_steps, min_lr_ratio)
        # save_hyperparameters() records the outermost __init__'s arguments; subclasses resolve some of them
        # (e.g. from a pretrained model's config), so record the values actually used.
        self.hparams.update(model_kwargs=dict(model_kwargs or {}), regions=regions, input_layers=input_layers)
        self.region_spec = RegionSpec(**(regions or {}))
        self.region_record: dict[str, Any] = {}

    # ---- data → input layers ------------------------------------------------------------------------------
    def keys(self, batch: dict[str, Any]) -> list[str]:
        """Input-layer key of every item of a batch."""
        if self.hparams.input_layers == "shared":
            return [SHARED] * len(batch["subject"])
        return [str(s) for s in batch["subject"]]

    def _data_subjects(self, manifest: dict[str, Any]):
        key_of = (lambda rec: SHARED) if self.hparams.input_layers == "shared" else None
        return subject_channels(manifest, self.region_spec, key_of=key_of)

    def _check_contract(self, manifest: dict[str, Any]) -> None:
        rec = manifest["recordings"][0]
        enc = self.model.encoder
        patch = int(rec.get("patch_size") or 0)
        if patch and patch != enc.patch_size:
            raise ContractError(f"the store's patches are {patch} samples but the model's are {enc.patch_size} "
                                f"(sfreq × patch_s).", source=rec.get("file"),
                                hint=f"set model_kwargs.sfreq: {rec['sfreq']:g} and patch_s to the recipe's patch_s.")
        if int(rec["n_times"]) // enc.patch_size > enc.n_patches:
            raise ContractError(f"windows of {rec['n_times']} samples are longer than the model's "
                                f"{enc.n_patches * enc.patch_size}.", source=rec.get("file"),
                                hint=f"set model_kwargs.n_times: {rec['n_times']}.")

    def add_subjects(self, subjects: dict[str, list[str]], regions: dict[str, dict[str, list[str]]]) -> list[str]:
        """Add input layers for keys the model does not have; record them in ``model_kwargs``."""
        have = self.model.subjects()
        new = [k for k in subjects if k not in have]
        for key in new:
            self.model.add_subject(key, subjects[key], regions.get(key))
        kwargs = dict(self.hparams.model_kwargs or {})
        known_regions = dict(kwargs.get("regions") or {})
        known_regions.update({k: regions[k] for k in subjects if k in regions})
        kwargs.update(subjects=self.model.subjects(), regions=known_regions)
        self.hparams.model_kwargs = kwargs
        self.region_record = dict(spec=self.region_spec.to_dict(), fusion=kwargs.get("fusion", "subject"),
                                  input_layers=self.hparams.input_layers, subjects=known_regions)
        return new

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        manifest = getattr(dm, "manifest", None)
        if manifest is not None:
            self._check_contract(manifest)
            subjects, regions = self._data_subjects(manifest)
            self.add_subjects(subjects, regions)
        if hasattr(self.model, "set_sync_codebook"):  # explicit, before DDP wraps the model
            self.model.set_sync_codebook(world_size() > 1)
        super().setup(stage)

    def contract_overrides(self) -> dict[str, Any]:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        norm: dict[str, Any] = {}
        if hasattr(dm, "normalization_record"):
            norm = dm.normalization_record()
        elif getattr(dm, "stats", None) is not None:
            norm = dict(kind="per-channel z-score, training-split statistics", channel_stats=dm.stats)
        return dict(regions=self.region_record or None, normalization=norm.get("kind", "none"),
                    extra=dict(normalization=norm, input_layers=self.hparams.input_layers))

    def _batch_args(self, batch: dict[str, Any]) -> dict[str, Any]:
        return dict(subject=self.keys(batch), ch_names=batch["ch_names"], mask=batch["mask"])

    def _all_params(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` plus zero times every trainable parameter, so that input layers of subjects absent from
        this batch still get a (zero) gradient: DDP then works without ``find_unused_parameters``."""
        if world_size() == 1:
            return loss
        return loss + 0.0 * sum(p.sum() for p in self.model.parameters() if p.requires_grad)


class DuINVQVAEModule(DuINModule):
    """Trains a Du-IN VQ-VAE: waveform reconstruction (MSE on z-scored contacts) + commitment loss."""

    def __init__(self, model: str = "duin-vqvae-tiny", model_kwargs: dict[str, Any] | None = None,
                 regions: dict[str, Any] | None = None, input_layers: str = "subject", lr: float = 1e-3,
                 weight_decay: float = 0.05, warmup_steps: int = 50, min_lr_ratio: float = 0.05):
        super().__init__(model, model_kwargs, regions, input_layers, lr, weight_decay, warmup_steps, min_lr_ratio)
        self._counts: dict[str, torch.Tensor] = {}

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        out = self.model(batch["x"], **self._batch_args(batch))
        b, kw = batch["x"].shape[0], dict(on_step=False, on_epoch=True, sync_dist=stage != "train")
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, batch_size=b, **kw)
        self.log(f"{stage}/recon_loss", out["recon_loss"], batch_size=b, **kw)
        self.log(f"{stage}/commit_loss", out["commit_loss"], batch_size=b, **kw)
        counts = torch.bincount(out["indices"].flatten(), minlength=self.model.codebook_size).float()
        self._counts[stage] = self._counts[stage] + counts if stage in self._counts else counts
        if stage != "train":
            r = [_pearson(v["recon"], v["target"], v["present"]) for v in out["per_key"].values()]
            self.log(f"{stage}/recon_r", torch.stack(r).mean(), batch_size=b, sync_dist=True)
        return out["loss"]

    def _log_usage(self, stage: str) -> None:
        counts = self._counts.pop(stage, None)
        if counts is None:
            return
        if world_size() > 1:
            counts = self.all_gather(counts).sum(0)
        p = counts / counts.sum().clamp(min=1)
        self.log(f"{stage}/codes_used", (counts > 0).float().mean(), sync_dist=False, rank_zero_only=True)
        self.log(f"{stage}/perplexity", torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum()), rank_zero_only=True)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._all_params(self._step(batch, "train"))

    def on_train_epoch_end(self) -> None:
        self._log_usage("train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_usage("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_usage("test")


def _pearson(a: torch.Tensor, b: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean Pearson r over present channels of (n, C, T) tensors."""
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    r = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-8)
    return r[present].mean() if present.any() else r.new_zeros(())


def _pretrained_kwargs(directory: str, model_kwargs: dict[str, Any] | None, model: str
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config of an exported model, ``model``'s kwargs with its architecture and subjects filled in)."""
    from neurofm.models._hub import read_config

    _, config = read_config(directory)
    src = config.get("kwargs", {})
    kwargs = dict(model_kwargs or {})
    for key in _ARCH:
        if key in src and key not in kwargs:
            kwargs[key] = src[key]
    name = str(config.get("model", ""))
    if model.endswith(("-tiny", "-base")):
        kwargs.pop("size", None)  # the name fixes the size
    elif "size" not in kwargs and name.endswith(("-tiny", "-base")):
        kwargs["size"] = name.rsplit("-", 1)[1]
    subjects = dict(src.get("subjects") or {})
    subjects.update(kwargs.get("subjects") or {})
    regions = dict(src.get("regions") or {})
    regions.update(kwargs.get("regions") or {})
    if subjects:
        kwargs["subjects"], kwargs["regions"] = subjects, regions
    return config, kwargs


class DuINMCMModule(DuINModule):
    """Masked code modelling on a frozen Du-IN VQ-VAE's codes (50 % mask + its complement).

    Parameters
    ----------
    vqvae : str
        Directory of an exported ``duin-vqvae*`` model (safetensors + config.json). Its architecture,
        subjects and region choice are reused; every data subject must be one it knows.
    init_from_vqvae : bool
        Start the encoder from the VQ-VAE's encoder.
    """

    def __init__(self, vqvae: str, model: str = "duin-mcm-tiny", model_kwargs: dict[str, Any] | None = None,
                 mask_ratio: float = 0.5, symmetric: bool = True, init_from_vqvae: bool = True,
                 regions: dict[str, Any] | None = None, input_layers: str | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.05, warmup_steps: int = 50, min_lr_ratio: float = 0.05):
        from neurofm.models._hub import from_pretrained

        config, kwargs = _pretrained_kwargs(vqvae, model_kwargs, model)
        vq_contract = config.get("contract", {})
        vq_regions = (vq_contract.get("regions") or {})
        regions = regions if regions is not None else vq_regions.get("spec")
        input_layers = input_layers or (vq_contract.get("extra", {}) or {}).get("input_layers", "subject")
        vq = from_pretrained(vqvae)
        kwargs["codebook_size"] = int(vq.codebook_size)
        super().__init__(model, kwargs, regions, input_layers, lr, weight_decay, warmup_steps, min_lr_ratio)
        for p in vq.parameters():
            p.requires_grad_(False)
        object.__setattr__(self, "_vq", vq.eval())  # frozen and not a submodule: not trained, not checkpointed
        if init_from_vqvae:
            from neurofm.models.duin.model import load_encoder_weights

            self.init_report = load_encoder_weights(self.model, vq)

    def add_subjects(self, subjects, regions) -> list[str]:
        unknown = sorted(set(subjects) - set(self._vq.subjects()))
        if unknown:
            raise ContractError(f"subjects {unknown[:5]} are not known to the frozen VQ-VAE "
                                f"(it knows {sorted(self._vq.subjects())[:8]}).", source=self.hparams.vqvae,
                                hint="pretrain the VQ-VAE on these stores too (same data.names), or drop them.")
        return super().add_subjects(subjects, regions)

    def train(self, mode: bool = True):
        super().train(mode)
        self._vq.eval()
        return self

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        args = self._batch_args(batch)
        vq = self._vq.to(batch["x"].device)
        codes = vq.tokenize(batch["x"], **args)
        gen = None
        if stage != "train":  # the same masks every validation epoch
            gen = torch.Generator().manual_seed(1234 + int(batch["index"][0]))
        out = self.model.masked_code_loss(batch["x"], codes, ratio=self.hparams.mask_ratio,
                                          symmetric=self.hparams.symmetric, generator=gen, **args)
        b, kw = batch["x"].shape[0], dict(on_step=False, on_epoch=True, sync_dist=stage != "train")
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, batch_size=b, **kw)
        self.log(f"{stage}/code_acc", out["acc"], batch_size=b, **kw)
        return out["loss"]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._all_params(self._step(batch, "train"))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "test")


class DuINClassifierModule(DuINModule):
    """Fine-tunes a Du-IN encoder with a classification head (balanced accuracy) or per-token regression (r).

    Parameters
    ----------
    pretrained : str | None
        Exported ``duin-vqvae*``/``duin-mcm*`` directory whose encoder starts the model (architecture,
        contract and the input layers of shared subjects are taken from it). ``None`` = from scratch.
    freeze_encoder : bool
        Train the head only (linear probing).
    layer_decay : float
        Layer-wise learning-rate decay: the group ``i`` of ``L`` (input → output) trains at
        ``lr * layer_decay ** (L - 1 - i)``.
    label_smoothing : float
        Cross-entropy label smoothing.
    augment : bool
        Training-time augmentation: random polarity flip and a random gain (log-normal, σ = 0.1) per item.
    """

    def __init__(self, model: str = "duin-classifier-tiny", model_kwargs: dict[str, Any] | None = None,
                 pretrained: str | None = None, freeze_encoder: bool = False, layer_decay: float = 1.0,
                 label_smoothing: float = 0.0, augment: bool = False, regions: dict[str, Any] | None = None,
                 input_layers: str | None = None,
                 lr: float = 1e-3, weight_decay: float = 0.05, warmup_steps: int = 50, min_lr_ratio: float = 0.05):
        source = None
        if pretrained:
            from neurofm.models._hub import from_pretrained

            config, model_kwargs = _pretrained_kwargs(pretrained, model_kwargs, model)
            contract = config.get("contract", {})
            regions = regions if regions is not None else (contract.get("regions") or {}).get("spec")
            input_layers = input_layers or (contract.get("extra", {}) or {}).get("input_layers", "subject")
            source = from_pretrained(pretrained)
        super().__init__(model, model_kwargs, regions, input_layers or "subject", lr, weight_decay, warmup_steps,
                         min_lr_ratio)
        self.init_report: dict[str, list[str]] = {}
        if source is not None:
            from neurofm.models.duin.model import load_encoder_weights

            self.init_report = load_encoder_weights(self.model, source)
        if freeze_encoder:
            for p in self.model.encoder.parameters():
                p.requires_grad_(False)
        self._reset_metrics()

    def _reset_metrics(self) -> None:
        self._preds: dict[str, list[torch.Tensor]] = {}
        self._truth: dict[str, list[torch.Tensor]] = {}

    @property
    def is_regression(self) -> bool:
        return self.model.task == "regression"

    def patch_targets(self, batch: dict[str, Any]) -> torch.Tensor:
        """Continuous target per token: the mean of each patch's samples, (B, N)."""
        t = batch["target"]
        return t.reshape(t.shape[0], -1, self.model.patch_size).mean(-1)

    def _outputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(batch["x"], **self._batch_args(batch))
        if self.is_regression:
            if "target" not in batch:
                raise ContractError("a regression head needs a continuous target, but the batch has none.",
                                    hint="preprocess a dataset with a target channel (e.g. gripforce).")
            truth = self.patch_targets(batch)
            pred = out[..., 0]
            return pred, truth, F.mse_loss(pred, truth)
        y = batch["y"]
        if (y < 0).any():
            raise ContractError("some windows have no label (y = -1).",
                                hint="fine-tune on a labelled store, or on windows of labelled spans only.")
        return out, y, F.cross_entropy(out, y, label_smoothing=self.hparams.label_smoothing)

    def augmentation(self, x: torch.Tensor) -> torch.Tensor:
        """Random polarity and gain per item: (B, C, T) → (B, C, T)."""
        b = x.shape[0]
        sign = torch.where(torch.rand(b, 1, 1, device=x.device) < 0.5, -1.0, 1.0)
        gain = torch.exp(0.1 * torch.randn(b, 1, 1, device=x.device))
        return x * sign * gain

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.hparams.augment:
            batch = dict(batch, x=self.augmentation(batch["x"]))
        _, _, loss = self._outputs(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["x"].shape[0], on_step=False, on_epoch=True)
        return self._all_params(loss)

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        pred, truth, loss = self._outputs(batch)
        self.log(f"{stage}/loss", loss, batch_size=batch["x"].shape[0], sync_dist=True)
        self._preds.setdefault(stage, []).append(pred.detach())
        self._truth.setdefault(stage, []).append(truth.detach())

    def _eval_end(self, stage: str) -> None:
        if stage not in self._preds:
            return
        pred, truth = torch.cat(self._preds.pop(stage)), torch.cat(self._truth.pop(stage))
        if world_size() > 1:
            pred, truth = self.all_gather(pred).flatten(0, 1), self.all_gather(truth).flatten(0, 1)
        if self.is_regression:
            self.log(f"{stage}/r", pearson_r(pred.flatten(), truth.flatten()), prog_bar=True)
        else:
            self.log(f"{stage}/bacc", balanced_accuracy(pred.argmax(-1), truth, pred.shape[-1]), prog_bar=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        out = self.model(batch["x"], **self._batch_args(batch))
        res = dict(output=out.detach().cpu(), index=batch["index"].cpu(), y=batch["y"].cpu())
        if self.is_regression and "target" in batch:
            res["target"] = self.patch_targets(batch).cpu()
        return res

    def parameter_groups(self) -> list[dict[str, Any]]:
        hp = self.hparams
        groups = self.model.layer_groups()
        covered = {id(p) for g in groups for p in g}
        groups[-1] = groups[-1] + [p for p in self.model.parameters() if id(p) not in covered]
        out = []
        for i, params in enumerate(groups):
            scale = hp.layer_decay ** (len(groups) - 1 - i)
            decay = [p for p in params if p.requires_grad and p.ndim >= 2]
            no_decay = [p for p in params if p.requires_grad and p.ndim < 2]
            out += [dict(params=decay, weight_decay=hp.weight_decay, lr=hp.lr * scale),
                    dict(params=no_decay, weight_decay=0.0, lr=hp.lr * scale)]
        return [g for g in out if g["params"]]


def balanced_accuracy(pred: torch.Tensor, truth: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean per-class recall over the classes present in ``truth``."""
    recalls = [(pred[truth == c] == c).float().mean() for c in range(n_classes) if (truth == c).any()]
    return torch.stack(recalls).mean() if recalls else pred.new_zeros((), dtype=torch.float)


def pearson_r(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.float() - a.float().mean(), b.float() - b.float().mean()
    return (a * b).sum() / (a.norm() * b.norm()).clamp(min=1e-12)


class BestState(L.Callback):
    """Keep the model state of the best validation epoch and restore it when fitting ends.

    Only strictly better values replace the kept state, so a tie keeps the earlier epoch; the test split
    is never consulted.
    """

    def __init__(self, monitor: str = "val/bacc", mode: str = "max"):
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch = value, trainer.current_epoch
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.state_dict().items()})

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)
