"""Lightning training of neural decoders: class weights, layer-wise LR decay, early stopping, best-on-validation.

Lightning's ``ModelCheckpoint`` writes pickled ``.ckpt`` files, which this project never writes; the best
weights on validation are kept in memory by :class:`BestOnValidation` and restored at the end of ``fit``.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from neurofm.decoding.nets import forward_batch
from neurofm.evaluation.metrics import LOWER_IS_BETTER, scores


class _Slices:
    """Collate a list of indices into a dict of tensor slices (no per-item stacking)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors

    def __call__(self, idx: list[int]) -> dict[str, torch.Tensor]:
        i = torch.as_tensor(idx)
        return {k: v[i] for k, v in self.tensors.items()}


def loader(tensors: dict[str, torch.Tensor], batch_size: int | None, shuffle: bool, seed: int = 0,
           by_group: bool = False) -> DataLoader:
    """Batches of ``batch_size``; with ``by_group``, batches of one group each (``tensors["g"]``; ``batch_size``
    ``None``: one batch per group), for subject-adaptive normalisation (:mod:`neurofm.decoding.adapt`)."""
    if by_group:
        from neurofm.decoding.adapt import GroupBatches

        return DataLoader(list(range(len(tensors["g"]))), collate_fn=_Slices(tensors),
                          batch_sampler=GroupBatches(tensors["g"].numpy(), batch_size, shuffle, seed))
    n = len(next(iter(tensors.values())))
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(list(range(n)), batch_size=batch_size, shuffle=shuffle, collate_fn=_Slices(tensors),
                      generator=gen, drop_last=False)


@dataclass
class TrainConfig:
    """Optimisation settings of a neural decoder (recorded in the checkpoint)."""

    lr: float = 1e-3
    weight_decay: float = 1e-2
    layer_decay: float = 0.75
    batch_size: int = 32
    max_epochs: int = 40
    patience: int = 8
    warmup_epochs: int = 2
    class_weight: str = "balanced"  # or "none"
    monitor: str = "metric"  # early stopping / selection on the task metric (ties: lower val loss), or "loss"
    seed: int = 0
    accelerator: str = "auto"
    grad_clip: float = 1.0
    #: braindecode.augmentation transforms applied in turn to every training batch of raw windows:
    #: class name → constructor arguments, e.g. {"FTSurrogate": {"probability": 0.5}}.
    augment: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


def build_augmentations(spec: dict[str, dict[str, Any]], seed: int = 0, sfreq: float | None = None) -> list:
    """braindecode.augmentation transforms from ``{ClassName: kwargs}``; unknown names/arguments are config errors."""
    import inspect

    from neurofm._errors import ConfigError, suggest

    if not spec:
        return []
    from braindecode import augmentation as A

    names = [n for n in dir(A) if isinstance(getattr(A, n), type) and issubclass(getattr(A, n), A.Transform)
             and n not in ("Transform", "IdentityTransform", "Compose")]
    out = []
    for k, (name, kwargs) in enumerate(spec.items()):
        if name not in names:
            raise ConfigError(f"unknown augmentation '{name}'.{suggest(name, names)}",
                              hint=f"use a braindecode.augmentation transform: {', '.join(sorted(names))}.")
        cls = getattr(A, name)
        kwargs = dict(kwargs or {})
        params = inspect.signature(cls.__init__).parameters
        if "sfreq" in params and "sfreq" not in kwargs and sfreq is not None:
            kwargs["sfreq"] = sfreq
        kwargs.setdefault("probability", 0.5)
        kwargs.setdefault("random_state", seed + k)
        try:
            out.append(cls(**kwargs))
        except TypeError as err:
            raise ConfigError(f"augmentation '{name}' rejects its arguments ({err}).",
                              hint=f"its arguments: {', '.join(p for p in params if p != 'self')}.") from None
    return out


class DecoderModule(L.LightningModule):
    """Cross-entropy (class-weighted) or MSE on a standardised target; AdamW with layer-wise LR decay."""

    def __init__(self, net: nn.Module, *, kind: str, metric: str, cfg: TrainConfig,
                 class_weights: torch.Tensor | None = None, adapt: bool = False):
        super().__init__()
        self.net, self.kind, self.metric, self.cfg, self.adapt = net, kind, metric, cfg, adapt
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.zeros(0),
                             persistent=False)
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._last_val: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.augmentations = build_augmentations(cfg.augment, cfg.seed, getattr(net, "sfreq", None))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return forward_batch(self.net, batch)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "regression":
            return nn.functional.mse_loss(out[:, 0], y)
        w = self.class_weights if self.class_weights.numel() else None
        return nn.functional.cross_entropy(out, y, weight=w)

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        if self.augmentations and "x" in batch:
            x, y = batch["x"], batch["y"]
            for t in self.augmentations:
                x, y = t(x, y)
            batch = dict(batch, x=x, y=y)
        loss = self.loss(self(batch), batch["y"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["y"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], _: int) -> None:
        if self.adapt:  # one batch = one validation subject: its own BatchNorm statistics (AdaBN)
            from neurofm.decoding.adapt import group_statistics

            with group_statistics(self.net, batch):
                out = self(batch)
        else:
            out = self(batch)
        self._val.append((out.detach().float().cpu(), batch["y"].detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        out = torch.cat([o for o, _ in self._val])
        y = torch.cat([t for _, t in self._val])
        self._val.clear()
        loss = float(self.loss(out.to(self.device), y.to(self.device)))
        probs = out[:, 0].numpy() if self.kind == "regression" else torch.softmax(out, 1).numpy()
        value = scores(self.kind, y.numpy(), probs)[self.metric]
        value = -np.inf if math.isnan(value) else value
        score = -value if self.metric in LOWER_IS_BETTER else value
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_score", float(score), prog_bar=True)
        self._last_val = dict(val_loss=loss, val_metric=float(value))

    def on_train_epoch_end(self) -> None:  # runs after this epoch's validation
        train_loss = float(self.trainer.callback_metrics.get("train_loss", float("nan")))
        self.history.append(dict(epoch=int(self.current_epoch), train_loss=train_loss, **self._last_val))

    def configure_optimizers(self):
        cfg = self.cfg
        opt = torch.optim.AdamW(optimizer_groups(self.net, cfg), lr=cfg.lr)
        steps = max(1, self.trainer.estimated_stepping_batches)
        per_epoch = max(1, steps // max(1, cfg.max_epochs))
        warm = cfg.warmup_epochs * per_epoch

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return dict(optimizer=opt, lr_scheduler=dict(scheduler=sched, interval="step"))


def optimizer_groups(net: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: encoder layer group ``i`` of ``L`` (input → output) at ``lr · layer_decay^(L − i)``,
    the head (and every other trainable parameter) at ``lr``; no weight decay on 1-D parameters."""
    groups_in = net.param_groups()
    in_groups = {id(p) for g in groups_in for p in g}
    head = [p for p in net.parameters() if p.requires_grad and id(p) not in in_groups]
    depth = len(groups_in)
    groups = []
    for i, params in enumerate(groups_in):
        scale = cfg.layer_decay ** (depth - i)
        groups += _split_decay([p for p in params if p.requires_grad], cfg.lr * scale, cfg.weight_decay)
    return groups + _split_decay(head, cfg.lr, cfg.weight_decay)


def _split_decay(params: list[nn.Parameter], lr: float, wd: float) -> list[dict[str, Any]]:
    """No weight decay on biases and norm scales (1-D parameters)."""
    decay = [p for p in params if p.ndim > 1]
    no = [p for p in params if p.ndim <= 1]
    return [g for g in (dict(params=decay, lr=lr, weight_decay=wd), dict(params=no, lr=lr, weight_decay=0.0))
            if g["params"]]


class BestOnValidation(L.Callback):
    """Keep the weights of the best validation epoch in memory; restore them when training ends.

    Best = highest ``val_score`` (ties broken by lower ``val_loss``), or lowest ``val_loss`` with
    ``monitor="loss"``. Only validation data decide.
    """

    def __init__(self, monitor: str = "metric"):
        self.monitor = monitor
        self.best: tuple[float, float] | None = None
        self.best_epoch = -1
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        loss = float(trainer.callback_metrics["val_loss"])
        score = float(trainer.callback_metrics["val_score"])
        key = (-loss, 0.0) if self.monitor == "loss" else (score, -loss)
        if self.best is None or key > self.best:
            self.best, self.best_epoch = key, int(trainer.current_epoch)
            self.state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)


@dataclass
class FitOutcome:
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def fit(net: nn.Module, train: dict[str, torch.Tensor], val: dict[str, torch.Tensor], *, kind: str, metric: str,
        cfg: TrainConfig, n_classes: int, verbose: bool = False, log_dir: str | None = None,
        adapt: bool = False) -> FitOutcome:
    """Train ``net`` in place and leave it with its best weights on validation.

    With ``adapt`` (AdaBN), ``train``/``val`` carry group codes ``g``: every training batch holds one group, and
    each validation group is scored with BatchNorm statistics of its own windows.
    """
    import time

    from lightning.pytorch.callbacks import EarlyStopping

    t0 = time.perf_counter()
    if not verbose:
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.WARNING)
    weights = None
    if kind == "classification" and cfg.class_weight == "balanced":
        counts = torch.bincount(train["y"], minlength=n_classes).float()
        weights = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    module = DecoderModule(net, kind=kind, metric=metric, cfg=cfg, class_weights=weights, adapt=adapt)
    best = BestOnValidation(cfg.monitor)
    stop = EarlyStopping(monitor="val_loss" if cfg.monitor == "loss" else "val_score",
                         mode="min" if cfg.monitor == "loss" else "max", patience=cfg.patience)
    logger = False
    if log_dir is not None:
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(log_dir, name="", version="")
    n_batches = math.ceil(len(train["y"]) / cfg.batch_size)
    trainer = L.Trainer(max_epochs=cfg.max_epochs, accelerator=cfg.accelerator, devices=1, logger=logger,
                        callbacks=[best, stop], enable_checkpointing=False, enable_progress_bar=verbose and sys.stdout.isatty(),
                        enable_model_summary=False, num_sanity_val_steps=0, deterministic="warn",
                        log_every_n_steps=max(1, min(50, n_batches)), gradient_clip_val=cfg.grad_clip or None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", ".*deterministic.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")  # lightning's own use of a deprecated torch API
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")  # a frozen encoder, on purpose
        trainer.fit(module, loader(train, cfg.batch_size, True, cfg.seed, by_group=adapt),
                    loader(val, None if adapt else 256, False, by_group=adapt))
    net.to("cpu")
    net.eval()
    return FitOutcome(best_epoch=best.best_epoch, epochs_run=int(trainer.current_epoch),
                      history=module.history, seconds=time.perf_counter() - t0)


@torch.no_grad()
def predict(net: nn.Module, tensors: dict[str, torch.Tensor], kind: str, batch_size: int = 256,
            groups: list[np.ndarray] | None = None) -> np.ndarray:
    """Probabilities (n, n_classes), or the standardised regression output (n,), on the CPU.

    ``groups`` (index arrays, e.g. from :func:`neurofm.decoding.adapt.check_groups`): adapt BatchNorm statistics
    to each group's windows (AdaBN) and predict them with those.
    """
    net.eval()
    if groups is not None:
        from neurofm.decoding.adapt import group_statistics

        out = None
        for idx in groups:
            i = torch.from_numpy(idx)
            part = {k: v[i] for k, v in tensors.items()}
            with group_statistics(net, part):
                p = predict(net, part, kind, batch_size)
            if out is None:
                out = np.zeros((len(next(iter(tensors.values()))), *p.shape[1:]), dtype=p.dtype)
            out[idx] = p
        return out
    outs = [forward_batch(net, batch).float() for batch in loader(tensors, batch_size, False)]
    out = torch.cat(outs)
    return out[:, 0].numpy() if kind == "regression" else torch.softmax(out, 1).numpy()
