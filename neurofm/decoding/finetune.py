"""Fine-tune (or fit) a decoder on a task: train split to fit, validation to select, test scored once.

>>> from neurofm.decoding.finetune import finetune
>>> result = finetune("eegmat-arithmetic", "eegnet", out="runs/eegnet")   # doctest: +SKIP
>>> result.metrics["test"]["balanced_accuracy"]                            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import ConfigError
from neurofm.decoding.decoder import Decoder, channel_stats, normalize, write_json
from neurofm.evaluation.metrics import confusion_matrix, scores
from neurofm.tasks.data import TaskData
from neurofm.tasks.spec import TaskSpec, get_task

log = logging.getLogger("neurofm.decoding")
NORMALIZE = ("channel", "window", "none")


@dataclass
class FinetuneResult:
    """Scores on validation and test, the trained decoder, and what was run."""

    decoder: Decoder
    metrics: dict[str, dict[str, float]]
    confusion: list[list[int]] | None
    record: dict[str, Any]
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _threads(threads: int | None) -> None:
    import torch

    n = threads or int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    torch.set_num_threads(max(1, n))


def finetune(task: TaskSpec | str, model: str | None, *, init: str | None = None, out: str | os.PathLike | None = None,
             data: TaskData | None = None, head: str | None = None, freeze: bool = False,
             normalize_mode: str | None = None, model_kwargs: dict | None = None, head_kwargs: dict | None = None,
             train=None, dataset: str | None = None, root: str | None = None, cache: str | None = None,
             n_jobs: int = 1, verbose: bool = True, threads: int | None = None, align: str | None = None,
             splits: dict[str, np.ndarray] | None = None, adapt: str | None = None) -> FinetuneResult:
    """Fit ``model`` on ``task`` and score it on the task's test split once.

    Parameters
    ----------
    task : TaskSpec | str
        Registered task name, task YAML path, or spec.
    model : str | None
        Registered model (families neurofm-encoder/-tokenizer, braindecode, classical). ``None`` with ``init``:
        the model named in the exported directory.
    init : str | None
        Exported encoder directory (safetensors + config.json) to start from.
    out : path-like | None
        Writes ``decoder/`` (safetensors + JSON), ``results.json``, ``config.json`` and the training log.
    head : {"linear", "mlp", "attention"}
        Head on encoder tokens (encoders only; default linear).
    freeze : bool
        Keep the encoder frozen (linear probe with ``head="linear"``); its tokens are computed once.
    normalize_mode : {"channel", "window", "none"}
        Input normalisation; default ``channel`` (z-score with training-split statistics), or ``none`` for a
        pretrained encoder whose contract says it normalises its input itself.
    train : TrainConfig
        Optimisation settings (seed, epochs, early stopping, learning rates, augmentation).
    align : {"none", "subject", "recording"}
        Align each subject's (recording's) windows with its own unlabelled statistics, at training and at
        test time: Euclidean alignment for neural models, re-centering for tangent space, feature
        standardisation for band power (:mod:`neurofm.decoding.align`). Recorded in the decoder.
    splits : dict of train/val/test window indices
        Override the task's split (one fold of :func:`neurofm.decoding.cv.finetune_cv`).
    adapt : {"none", "adabn", "adabn-features"}
        Subject-adaptive normalisation of a neural model per ``align`` group (:mod:`neurofm.decoding.adapt`):
        one-subject training batches and BatchNorm statistics recomputed from each new subject's windows;
        ``adabn-features`` also standardises the classifier's input features per subject. Recorded in the decoder.
    """
    from neurofm.decoding.align import check_unit, group_ids
    from neurofm.decoding.nets import model_family
    from neurofm.decoding.training import TrainConfig

    t0 = time.perf_counter()
    task = get_task(task)
    cfg = train or TrainConfig()
    if model is None and init is None:
        raise ConfigError("no model given.", hint="pass --model NAME (see `neurofm list models`) or --init DIR.")
    if model is None:
        from neurofm.models._hub import read_config

        model = read_config(init)[1]["model"]
    family = model_family(model)
    if init is not None and family not in ("neurofm-encoder", "neurofm-tokenizer"):
        raise ConfigError(f"--init only applies to neurofm encoders; '{model}' is a {family} model.",
                          hint="leave --init out, or pass an encoder exported by `neurofm export`.")
    if family not in ("neurofm-encoder", "neurofm-tokenizer") and (head is not None or freeze or head_kwargs):
        raise ConfigError(f"--head/--head-kwargs/--freeze apply to neurofm encoders; '{model}' is a {family} model "
                          "trained end to end.", hint="leave --head, --head-kwargs and --freeze out for this model.")
    if family == "classical" and normalize_mode is not None:
        raise ConfigError(f"--normalize applies to neural models; '{model}' standardises its own features "
                          "(training-split statistics).", hint="leave --normalize out for classical models.")
    if normalize_mode is not None and normalize_mode not in NORMALIZE:
        raise ConfigError(f"unknown normalisation '{normalize_mode}'.", hint=f"use one of {', '.join(NORMALIZE)}.")
    align = check_unit(align)
    from neurofm.decoding.adapt import check_mode

    adapt = check_mode(adapt, align=align, family=family, freeze=freeze)
    if data is None:
        from neurofm.tasks.data import load_task

        data = load_task(task, dataset=dataset, root=root, cache=cache, n_jobs=n_jobs, verbose=verbose)
    splits = data.splits() if splits is None else splits
    groups = group_ids(data, align)
    n_classes = len(task.classes)
    if task.kind == "classification":
        present = set(np.unique(data.y[splits["train"]]).tolist())
        if present != set(range(n_classes)):
            lost = [task.classes[k] for k in range(n_classes) if k not in present]
            raise ConfigError(f"task '{task.name}': class(es) {lost} have no training window.",
                              hint="change the split so that every class occurs in the training subjects.")
    notes = list(data.notes)
    base = dict(family=family, kind=task.kind, classes=task.classes, n_outputs=n_classes or 1,
                task=task.frozen().to_dict(), ch_names=data.ch_names, pos=data.pos, sfreq=data.sfreq,
                n_times=data.n_times, units=data.units, contract=data.contract().to_dict(),
                splits={k: dict(n=int(len(v)), subjects=sorted(set(data.subjects[v].tolist())),
                                recordings=sorted(set(data.recordings[v].tolist()))) for k, v in splits.items()})
    if family == "classical":
        decoder, record = _fit_classical(task, model, data, splits, dict(model_kwargs or {}, align=align), cfg.seed,
                                         groups)
    else:
        _threads(threads)
        decoder, record = _fit_neural(task, model, family, data, splits, init=init, head=head, freeze=freeze,
                                      normalize_mode=normalize_mode, model_kwargs=model_kwargs or {},
                                      head_kwargs=head_kwargs or {}, cfg=cfg, verbose=verbose, out=out, notes=notes,
                                      groups=groups, adapt=adapt)
    decoder.config = dict(base, **decoder.config, align=align, adapt=adapt)
    # Score: validation (selection already done) and test, once.
    metrics, preds = {}, {}
    for split in ("val", "test"):
        idx = splits[split]
        outp = decoder.predict(data.x[idx], data.mask[idx], groups=None if groups is None else groups[idx])
        metrics[split] = scores(task.kind, data.y[idx], outp)
        preds[split] = (data.y[idx], outp)
    cm = None
    if task.kind == "classification":
        cm = confusion_matrix(data.y[splits["test"]], preds["test"][1].argmax(1), n_classes).tolist()
    record = dict(task=task.name, model=model, family=family, seed=cfg.seed, metric=task.primary_metric,
                  val=metrics["val"], test=metrics["test"], confusion=cm, classes=task.classes,
                  n={k: int(len(v)) for k, v in splits.items()}, notes=notes, data=data.describe(),
                  align=align, adapt=adapt, seconds=round(time.perf_counter() - t0, 2), **record)
    decoder.config.update(metrics=dict(val=metrics["val"], test=metrics["test"]), notes=notes,
                          train=record.get("train", {}))
    if out is not None:
        out = Path(out)
        decoder.save(out / "decoder")
        write_json(out / "results.json", record)
        write_json(out / "config.json", dict(task=task.frozen().to_dict(), model=model, init=init, head=head,
                                             freeze=freeze, normalize=decoder.config.get("normalize"), align=align,
                                             adapt=adapt,
                                             model_kwargs=model_kwargs or {}, head_kwargs=head_kwargs or {},
                                             train=cfg.to_dict(), store=str(data.store)))
    return FinetuneResult(decoder=decoder, metrics=metrics, confusion=cm, record=record, predictions=preds)


def _fit_classical(task: TaskSpec, model: str, data: TaskData, splits: dict, kwargs: dict,
                   seed: int, groups: np.ndarray | None) -> tuple[Decoder, dict]:
    from neurofm import registry

    t0 = time.perf_counter()
    cls = registry.get_entry("models", model).resolve()
    try:
        clf = cls(sfreq=data.sfreq, kind=task.kind, **kwargs)
    except TypeError as err:
        raise ConfigError(f"model '{model}' rejects its arguments ({err}).", hint="check --model-kwargs.") from None
    tr, va = splits["train"], splits["val"]
    clf.fit(data.x[tr], data.y[tr], data.x[va], data.y[va], metric=task.primary_metric,
            n_classes=len(task.classes), mask_tr=data.mask[tr], mask_va=data.mask[va],
            groups_tr=None if groups is None else groups[tr], groups_va=None if groups is None else groups[va])
    config = dict(build=dict(model=model, kwargs=clf.config()), head=None, normalize="none",
                  train=dict(seed=seed, chosen=clf.readout.chosen, val_grid=clf.readout.val_scores))
    return Decoder(config, {}, classical=clf), dict(train=config["train"], fit_seconds=time.perf_counter() - t0)


def _fit_neural(task: TaskSpec, model: str, family: str, data: TaskData, splits: dict, *, init, head, freeze,
                normalize_mode, model_kwargs, head_kwargs, cfg, verbose, out, notes, groups,
                adapt: str = "none") -> tuple[Decoder, dict]:
    import lightning as L
    import torch

    from neurofm.decoding import nets
    from neurofm.decoding.training import fit

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    tr, va = splits["train"], splits["val"]
    n_outputs = len(task.classes) or 1
    contract = None
    if family == "braindecode":
        net, build, extra = nets.build_braindecode(model, n_chans=len(data.ch_names), n_outputs=n_outputs,
                                                   n_times=data.n_times, sfreq=data.sfreq, ch_names=data.ch_names,
                                                   kwargs=model_kwargs)
        notes += extra
        head_cfg = None
    else:
        encoder, build, contract = nets.build_encoder(model, init=init, n_chans=len(data.ch_names),
                                                      n_times=data.n_times, sfreq=data.sfreq,
                                                      ch_names=data.ch_names, kwargs=model_kwargs)
        if contract is not None:
            notes += contract.check(sfreq=data.sfreq, n_times=data.n_times, ch_names=data.ch_names, units=data.units,
                                    has_positions=bool(np.isfinite(data.pos).all()), source=str(init))
        head_cfg = dict(kind=head or "linear", **head_kwargs)
        net = nets.encoder_decoder(encoder, head_cfg, n_outputs, data.ch_names, data.pos, freeze=freeze)
    if adapt != "none":  # subject-adaptive normalisation (AdaBN): what to rebuild is recorded with the model
        from neurofm.decoding.adapt import prepare

        fnorm = prepare(net, adapt, model=model, example=torch.zeros(2, len(data.ch_names), data.n_times))
        if fnorm:
            build = dict(build, feature_norm=fnorm)
    if normalize_mode is None:
        normalize_mode = "none" if contract is not None and contract.normalization else "channel"
    x = data.x
    if groups is not None:  # Euclidean alignment per subject/recording (unlabelled statistics)
        from neurofm.decoding.align import euclidean_align

        x = euclidean_align(x, data.mask, groups)
    mean, std = channel_stats(x, data.mask, tr)
    xn = normalize(x, data.mask, normalize_mode, mean, std)
    arrays = {"norm.mean": mean, "norm.std": std}
    y = data.y
    if task.kind == "regression":
        y_mean, y_std = float(y[tr].mean()), float(y[tr].std() or 1.0)
        arrays.update({"target.mean": np.array([y_mean], np.float32), "target.std": np.array([y_std], np.float32)})
        y_t = torch.from_numpy(((y - y_mean) / y_std).astype(np.float32))
    else:
        y_t = torch.from_numpy(y.astype(np.int64))
    x_t, m_t = torch.from_numpy(xn), torch.from_numpy(data.mask)

    codes = None
    if adapt != "none":  # integer group codes: one-group training batches, per-group validation statistics
        codes = torch.from_numpy(np.unique(groups.astype(str), return_inverse=True)[1].astype(np.int64))

    def tensors(idx: np.ndarray) -> dict[str, torch.Tensor]:
        i = torch.from_numpy(idx)
        t = dict(x=x_t[i], mask=m_t[i], y=y_t[i])
        return t if codes is None else dict(t, g=codes[i])

    train_t, val_t = tensors(tr), tensors(va)
    if freeze:  # the encoder does not change: compute its tokens once
        train_t, val_t = _frozen_tokens(net, train_t), _frozen_tokens(net, val_t)
    outcome = fit(net, train_t, val_t, kind=task.kind, metric=task.primary_metric, cfg=cfg,
                  n_classes=len(task.classes), verbose=verbose, log_dir=None if out is None else str(Path(out) / "logs"),
                  adapt=adapt != "none")
    config = dict(build=build, head=head_cfg, freeze=freeze, normalize=normalize_mode,
                  train=dict(cfg.to_dict(), best_epoch=outcome.best_epoch, epochs_run=outcome.epochs_run,
                             history=outcome.history))
    return Decoder(config, arrays, net=net), dict(train=config["train"], fit_seconds=round(outcome.seconds, 2))


def _frozen_tokens(net, t: dict) -> dict:
    import torch

    toks, masks = [], []
    with torch.no_grad():
        for i in range(0, len(t["y"]), 64):
            tok, tm = net.features(t["x"][i:i + 64], t["mask"][i:i + 64])
            toks.append(tok)
            masks.append(tm)
    out = dict(tokens=torch.cat(toks), token_mask=torch.cat(masks), y=t["y"])
    return dict(out, g=t["g"]) if "g" in t else out  # group codes: one-subject batches (adabn-features)
