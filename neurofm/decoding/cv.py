"""Leave-subjects-out cross-validation: K folds over every subject of a task, nested validation.

Each fold tests on its own subjects (every subject is tested exactly once) and trains on the others;
its validation subjects (early stopping, regularisation, model selection) are drawn from the
training subjects only. Folds depend on the task and ``seed`` of the fold assignment only, never on
the model or its training seed, so every model of a benchmark sees the same folds. Subjects are
dealt to folds stratified by their majority class (a subject-level label such as a diagnosis stays
balanced across folds).

>>> from neurofm.decoding.cv import finetune_cv
>>> res = finetune_cv("eegmat-arithmetic", "bandpower-lr", folds=6)   # doctest: +SKIP
>>> res.summary["test"]["balanced_accuracy"]                           # mean, std, 95 % CI over folds
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import ConfigError
from neurofm.evaluation.metrics import scores, summarize

VAL_FRACTION = 0.2


@dataclass
class Fold:
    """Window indices and subjects of one fold."""

    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    subjects: dict[str, list[str]]

    def splits(self) -> dict[str, np.ndarray]:
        return dict(train=self.train, val=self.val, test=self.test)


def _majority(data, subjects: list[str]) -> dict[str, int]:
    if data.task.kind != "classification":
        return {s: 0 for s in subjects}
    return {s: int(np.bincount(data.y[data.subjects == s]).argmax()) for s in subjects}


def subject_folds(data, k: int, *, seed: int = 0, val_fraction: float = VAL_FRACTION) -> list[Fold]:
    """``k`` leave-subjects-out folds with nested validation subjects.

    Raises
    ------
    ConfigError
        ``k`` below 2 or above the number of subjects, a task whose data hold one subject, or a fold whose
        training (or validation) subjects lack a class.
    """
    task = data.task
    subjects = sorted({str(s) for s in data.subjects.tolist()})
    n = len(subjects)
    if n < 3:
        raise ConfigError(f"task '{task.name}' holds {n} subject(s) ({subjects}); leave-subjects-out CV needs at least "
                          "3 (train, validation and test subjects).",
                          hint="use the task's fixed split (leave --cv out), or a cross-subject task "
                               "(e.g. eegmmidb-imagery-lr-xsubj).")
    if k < 2:
        raise ConfigError(f"--cv {k}: cross-validation needs at least 2 folds.", hint="pass --cv 2 or more.")
    if k > n:
        raise ConfigError(f"--cv {k} is larger than the {n} subjects of task '{task.name}'.",
                          hint=f"use --cv {n} (leave-one-subject-out) or fewer folds.")
    majority = _majority(data, subjects)
    keys = np.asarray([str(s) for s in data.subjects.tolist()], dtype=object)
    classes = task.classes
    order = [str(s) for s in np.random.default_rng(seed).permutation(subjects)]
    order.sort(key=lambda s: majority[s])  # stable: classes in blocks, shuffled inside each block
    members: list[list[str]] = [[] for _ in range(k)]
    for i, s in enumerate(order):
        members[i % k].append(s)
    folds = []
    for f, test_subj in enumerate(members):
        rest = [s for s in order if s not in test_subj]
        if task.kind == "classification":
            lost = [classes[c] for c in range(len(classes)) if c not in {majority[s] for s in rest}
                    and not np.isin(c, data.y[np.isin(keys, rest)])]
            if lost:
                raise ConfigError(f"task '{task.name}', fold {f} (test subjects {test_subj}): class(es) {lost} have no "
                                  "training window.",
                                  hint="use fewer folds (--cv), or add subjects with those classes.")
        n_val = max(1, int(round(val_fraction * len(rest))))
        by_class: dict[int, list[str]] = {}
        for s in rest:
            by_class.setdefault(majority[s], []).append(s)
        val_subj: list[str] = []
        rot = np.random.default_rng(seed + 1 + f)
        pools = {c: [str(s) for s in rot.permutation(v)] for c, v in sorted(by_class.items())}
        while len(val_subj) < n_val:
            for c in sorted(pools):
                # keep at least one training subject of every class
                if len(val_subj) < n_val and len(pools[c]) > 1:
                    val_subj.append(pools[c].pop())
            if all(len(p) <= 1 for p in pools.values()):
                break
        if not val_subj:
            raise ConfigError(f"task '{task.name}', fold {f}: no subject left for validation after the test subjects "
                              f"{test_subj}.", hint="use fewer folds (--cv) so that training folds hold more subjects.")
        train_subj = [s for s in rest if s not in val_subj]
        idx = {name: np.flatnonzero(np.isin(keys, subj)) for name, subj in
               (("train", train_subj), ("val", val_subj), ("test", test_subj))}
        if task.kind == "classification":
            present = set(np.unique(data.y[idx["train"]]).tolist())
            lost = [classes[c] for c in range(len(classes)) if c not in present]
            if lost:
                raise ConfigError(f"task '{task.name}', fold {f} (test subjects {test_subj}): class(es) {lost} have no "
                                  "training window.",
                                  hint="use fewer folds (--cv), or add subjects with those classes.")
        folds.append(Fold(f, idx["train"], idx["val"], idx["test"],
                          dict(train=sorted(train_subj), val=sorted(val_subj), test=sorted(test_subj))))
    return folds


def check_subject_level(data) -> None:
    """A task scored per subject needs one class per subject."""
    for s in sorted(set(data.subjects.tolist())):
        ys = np.unique(data.y[data.subjects == s])
        if len(ys) != 1:
            raise ConfigError(f"task '{data.task.name}' scores subjects, but subject {s} has windows of classes "
                              f"{[data.task.classes[int(c)] for c in ys]}.",
                              hint="set subject_level: false, or label whole subjects (e.g. a diagnosis).")


def subject_scores(kind: str, y: np.ndarray, out: np.ndarray, subjects: np.ndarray) -> dict[str, dict[str, Any]]:
    """Window-level scores of every subject's windows."""
    per = {}
    for s in sorted(set(subjects.tolist())):
        sel = subjects == s
        per[str(s)] = dict(n=int(sel.sum()), **scores(kind, y[sel], out[sel]))
    return per


def subject_level(y: np.ndarray, prob: np.ndarray, subjects: np.ndarray) -> tuple[dict[str, float], dict[str, Any]]:
    """Subject-level scores: each subject's class = argmax of the mean of its windows' probabilities."""
    ys, ps, per = [], [], {}
    for s in sorted(set(subjects.tolist())):
        sel = subjects == s
        p = prob[sel].mean(0)
        ys.append(int(np.bincount(y[sel]).argmax()))
        ps.append(p)
        per[str(s)] = dict(true=ys[-1], predicted=int(p.argmax()), prob=[round(float(v), 4) for v in p])
    return scores("classification", np.asarray(ys), np.asarray(ps)), per


@dataclass
class CVResult:
    """Per fold and pooled scores of one model and seed under leave-subjects-out CV."""

    folds: list[dict[str, Any]]
    summary: dict[str, Any]
    per_subject: dict[str, dict[str, Any]]
    subject_level: dict[str, Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)


def finetune_cv(task, model: str | None, *, folds: int, out: str | os.PathLike | None = None, data=None,
                fold_seed: int | None = None, verbose: bool = True, save_decoders: bool = True,
                **kwargs: Any) -> CVResult:
    """Run :func:`~neurofm.decoding.finetune.finetune` on every fold; score each fold's test subjects once.

    Parameters
    ----------
    folds : int
        Number of folds K (2 ≤ K ≤ number of subjects; K = subjects is leave-one-subject-out).
    fold_seed : int | None
        Seed of the fold assignment (default: the task's ``split.seed``); the same for every model.
    **kwargs
        Passed to ``finetune`` (init, head, freeze, align, train, model_kwargs, ...).
    """
    from neurofm.decoding.decoder import write_json
    from neurofm.decoding.finetune import finetune
    from neurofm.tasks.data import load_task
    from neurofm.tasks.spec import get_task

    task = get_task(task)
    if data is None:
        data = load_task(task, dataset=kwargs.pop("dataset", None), root=kwargs.pop("root", None),
                         cache=kwargs.pop("cache", None), n_jobs=kwargs.pop("n_jobs", 1), verbose=verbose)
    for key in ("dataset", "root", "cache", "n_jobs"):
        kwargs.pop(key, None)
    seed = task.split.seed if fold_seed is None else fold_seed
    plan = subject_folds(data, folds, seed=seed)
    if task.subject_level:
        check_subject_level(data)
    rows, ys, outs, subj = [], [], [], []
    record: dict[str, Any] = {}
    for fold in plan:
        fold_out = None if out is None or not save_decoders else Path(out) / f"fold{fold.index}"
        res = finetune(task, model, data=data, splits=fold.splits(), out=fold_out, verbose=verbose, **kwargs)
        idx = fold.test
        y, o = res.predictions["test"]
        ys.append(y)
        outs.append(o)
        subj.append(data.subjects[idx])
        rows.append(dict(fold=fold.index, subjects=fold.subjects, n={k: int(len(v)) for k, v in fold.splits().items()},
                         val=res.metrics["val"], test=res.metrics["test"], confusion=res.confusion,
                         best_epoch=res.record.get("train", {}).get("best_epoch"),
                         chosen=res.record.get("train", {}).get("chosen"), seconds=res.record.get("seconds")))
        record = dict(model=res.record["model"], family=res.record["family"], seed=res.record["seed"],
                      align=res.record.get("align"), adapt=res.record.get("adapt"), notes=res.record.get("notes", []))
    y_all, o_all, s_all = np.concatenate(ys), np.concatenate(outs), np.concatenate(subj)
    summary = {split: {m: summarize([r[split].get(m) if r[split].get(m) is not None else float("nan") for r in rows])
                       for m in task.metrics} for split in ("val", "test")}
    summary["pooled_test"] = scores(task.kind, y_all, o_all)
    per_subject = subject_scores(task.kind, y_all, o_all, s_all)
    sl = None
    if task.subject_level:
        metrics, per = subject_level(y_all, o_all, s_all)
        sl = dict(metrics=metrics, subjects=per)
    result = CVResult(rows, summary, per_subject, sl, dict(record, task=task.name, metric=task.primary_metric,
                                                           folds=folds, fold_seed=seed, classes=task.classes))
    if out is not None:
        write_json(Path(out) / "cv.json", dict(result.record, summary=summary, folds=rows, per_subject=per_subject,
                                               subject_level=sl))
    return result
