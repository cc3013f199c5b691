"""Score a trained decoder on other data with the same layout (e.g. new subjects under another root)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import ConfigError
from neurofm.evaluation.metrics import confusion_matrix, scores
from neurofm.decoding.decoder import Decoder, write_json

SPLITS = ("all", "train", "val", "test")


def evaluate_decoder(checkpoint: str | os.PathLike, *, dataset: str | None = None, root: str | None = None,
                     split: str = "all", cache: str | None = None, n_jobs: int = 1, verbose: bool = True,
                     out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Rebuild the decoder's task data from ``dataset``/``root`` and score the decoder on it.

    The task (recipe, label map, recording filter) comes from the checkpoint, so the data are
    preprocessed exactly as for training; the decoder's training-split normalisation is reused.
    ``split="all"`` scores every window of the new data; ``train``/``val``/``test`` apply the task's
    split protocol to them first.
    """
    from neurofm.tasks.data import prepare_store, read_task
    from neurofm.tasks.spec import parse_task

    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'.", hint=f"use one of {', '.join(SPLITS)}.")
    dec = Decoder.load(checkpoint)
    task = parse_task(dec.config["task"], source=f"{checkpoint}: task")
    store, failures = prepare_store(task, dataset=dataset, root=root, cache=cache, n_jobs=n_jobs, verbose=verbose)
    data = read_task(task, store, failures=failures, ch_names=dec.ch_names)
    from neurofm.models._contract import SignalContract

    contract = SignalContract.from_dict(dec.config["contract"])
    contract.check(sfreq=data.sfreq, n_times=data.n_times, units=data.units, source=str(store))
    if not data.mask.any():
        from neurofm._errors import ContractError

        raise ContractError(f"none of the decoder's channels {dec.ch_names[:6]} occur in the data.", source=str(store),
                            hint="evaluate on data with the decoder's montage (same layout, other subjects).")
    idx = np.arange(len(data.y)) if split == "all" else data.splits()[split]
    outp = dec.predict(data.x[idx], data.mask[idx])
    y = data.y[idx]
    result: dict[str, Any] = dict(
        checkpoint=str(checkpoint), task=task.name, model=dec.config["build"]["model"], family=dec.config["family"],
        dataset=dataset or task.dataset, root=str(root) if root else None, store=str(store), split=split,
        n_windows=int(len(idx)), subjects=sorted(set(data.subjects[idx].tolist())), classes=task.classes,
        metric=task.primary_metric, metrics=scores(task.kind, y, outp),
        trained_on=dec.config.get("splits", {}).get("train", {}).get("subjects"), notes=data.notes)
    if task.kind == "classification":
        result["confusion"] = confusion_matrix(y, outp.argmax(1), len(task.classes)).tolist()
    per = {}
    for s in result["subjects"]:
        sel = data.subjects[idx] == s
        per[s] = dict(n=int(sel.sum()), **scores(task.kind, y[sel], outp[sel]))
    result["per_subject"] = per
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(out, result)
    return result
