"""Benchmark: tasks × models × seeds → one table (mean ± std, 95 % CI), confusion matrices, resolved configs.

Every (task, model, seed) cell is written to ``OUT/cells/TASK/MODEL/seedN.json`` as soon as it finishes;
a rerun skips cells already finished with the same configuration (resumable), and retries failed ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import ConfigError, NeurofmError, suggest
from neurofm.decoding.decoder import clean, write_json
from neurofm.evaluation.metrics import LABELS, LOWER_IS_BETTER, summarize

log = logging.getLogger("neurofm.benchmark")
BASELINE = "bandpower-lr"


@dataclass
class ModelSpec:
    """One benchmark column: a registered model plus how to start and train it."""

    label: str
    model: str
    init: str | None = None
    head: str | None = None
    freeze: bool = False
    align: str = "none"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    train_kwargs: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides for this model
    adapt: str = "none"  # subject-adaptive normalisation (neurofm.decoding.adapt)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if out["adapt"] == "none":  # cells finished before the option existed keep their hash
            del out["adapt"]
        return out


def parse_models(names: list[str], *, init: list[str] = (), head: list[str] = (), freeze: list[str] = (),
                 model_kwargs: list[str] = (), train_kwargs: list[str] = (), align: list[str] = (),
                 adapt: list[str] = ()) -> list[ModelSpec]:
    """``NAME`` or ``LABEL=NAME``; options per label: ``--init LABEL=DIR``, ``--head LABEL=KIND``, ``--freeze LABEL``,
    ``--align LABEL=UNIT``, ``--adapt LABEL=MODE``, ``--model-kwargs LABEL=JSON``, ``--train-kwargs LABEL=JSON``
    (e.g. ``eegnet={"lr": 0.003}``)."""
    specs: dict[str, ModelSpec] = {}
    for item in names:
        label, _, name = item.partition("=")
        name = name or label
        if label in specs:
            raise ConfigError(f"model label '{label}' is given twice.", hint="use LABEL=NAME to tell them apart.")
        specs[label] = ModelSpec(label, name)

    def _pairs(opt: str, items: list[str]):
        for item in items:
            label, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--{opt} '{item}' is not LABEL=VALUE.", hint=f"e.g. --{opt} lbm-tiny=...")
            if label not in specs:
                raise ConfigError(f"--{opt} names '{label}', which is not in --models {list(specs)}.",
                                  hint="use the label given in --models.")
            yield label, value

    for label, value in _pairs("init", list(init)):
        specs[label].init = value
    for label, value in _pairs("head", list(head)):
        specs[label].head = value
    from neurofm.decoding.align import check_unit

    for label, value in _pairs("align", list(align)):
        specs[label].align = check_unit(value)
    from neurofm.decoding.adapt import MODES

    for label, value in _pairs("adapt", list(adapt)):
        if value not in MODES:
            raise ConfigError(f"--adapt {label}={value}: unknown subject adaptation '{value}'.{suggest(value, MODES)}",
                              hint=f"use one of {', '.join(MODES)}.")
        specs[label].adapt = value
    for opt, items in (("model-kwargs", model_kwargs), ("train-kwargs", train_kwargs)):
        for label, value in _pairs(opt, list(items)):
            try:
                parsed = json.loads(value)
            except ValueError as err:
                parsed = err
            if not isinstance(parsed, dict):
                raise ConfigError(f"--{opt} for '{label}' is not a JSON object ({parsed}).",
                                  hint=f"quote it: --{opt} '{label}={{\"lr\": 0.003}}'.")
            setattr(specs[label], opt.replace("-", "_"), parsed)
    from neurofm.decoding.training import TrainConfig

    fields = [f for f in TrainConfig.__dataclass_fields__ if f != "seed"]
    for spec in specs.values():
        for key in spec.train_kwargs:
            if key not in fields:
                raise ConfigError(f"--train-kwargs for '{spec.label}': unknown key '{key}'.{suggest(key, fields)}",
                                  hint=f"valid keys: {', '.join(fields)}.")
    for label in freeze:
        if label not in specs:
            raise ConfigError(f"--freeze names '{label}', which is not in --models {list(specs)}.",
                              hint="use the label given in --models.")
        specs[label].freeze = True
    from neurofm.decoding.nets import model_family

    for spec in specs.values():
        model_family(spec.model)  # unknown names and untrainable families fail before any work
    return list(specs.values())


def _init_sha256(init: str) -> str | None:
    """The weights' sha256 recorded in an ``--init`` directory (or shipped model), ``None`` if unreadable."""
    from neurofm.models._pretrained import resolve

    try:
        return json.loads((resolve(init) / "config.json").read_text()).get("sha256")
    except Exception:  # a missing or broken init fails loudly when the cell runs
        return None


def _cell_hash(task: dict, spec: ModelSpec, train: dict) -> str:
    """What a finished cell was computed from; a rerun keeps the cell only if this is unchanged. A pretrained init
    is identified by its weights' sha256, not only its name or path: retrained weights under the same name
    (shipped models) or an overwritten export directory make the cell run again."""
    model = spec.to_dict()
    if spec.init:
        model["init_sha256"] = _init_sha256(spec.init)
    blob = json.dumps(dict(task=task, model=model, train={k: v for k, v in train.items() if k != "seed"}),
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_benchmark(tasks: list[str], models: list[ModelSpec], *, seeds: int = 3, out: str | os.PathLike,
                  train=None, cache: str | None = None, n_jobs: int = 1, verbose: bool = True,
                  threads: int | None = None, save_decoders: bool = False, baseline: str = BASELINE,
                  cv: int | None = None) -> dict[str, Any]:
    """Run every (task, model, seed) cell not already finished, then write the tables and plots.

    With ``cv=K`` every cell is a leave-subjects-out cross-validation (:mod:`neurofm.decoding.cv`): the same K
    folds for every model and seed, each fold's test subjects scored once; scores are summarised over
    folds × seeds, with per-subject and (for tasks with ``subject_level``) subject-level scores.
    """
    from tqdm.auto import tqdm

    from neurofm.decoding.finetune import finetune
    from neurofm.decoding.training import TrainConfig
    from neurofm.tasks.data import load_task
    from neurofm.tasks.spec import get_task

    out = Path(out)
    train = train or TrainConfig()
    specs = [get_task(t) for t in tasks]
    frozen = {t.name: t.frozen().to_dict() for t in specs}
    write_json(out / "config.json", dict(tasks=frozen, models=[m.to_dict() for m in models], seeds=seeds, cv=cv,
                                         train=train.to_dict(), cache=cache, machine=machine()))
    cells = [(t, m, s) for t in specs for m in models for s in range(seeds)]
    bar = tqdm(total=len(cells), desc="benchmark", unit="cell", disable=not verbose or not sys.stderr.isatty())
    data_cache: dict[str, Any] = {}
    ran = skipped = failed = 0
    for task, spec, seed in cells:
        path = out / "cells" / task.name / spec.label / f"seed{seed}.json"
        chash = _cell_hash(frozen[task.name], spec, dict(train.to_dict(), cv=cv))
        if path.exists():
            try:
                prev = json.loads(path.read_text())
            except ValueError:
                prev = {}
            if prev.get("status") == "done" and prev.get("config_hash") == chash:
                skipped += 1
                bar.update()
                continue
        bar.set_postfix_str(f"{task.name} · {spec.label} · seed {seed}")
        t0 = time.perf_counter()
        try:
            if task.name not in data_cache:
                data_cache[task.name] = load_task(task, cache=cache, n_jobs=n_jobs, verbose=verbose)
            cell_train = replace(train, **spec.train_kwargs, seed=seed)
            decoders = out / "decoders" / task.name / spec.label / f"seed{seed}" if save_decoders else None
            if cv:
                rec = _cv_cell(task, spec, cv, data_cache[task.name], cell_train, threads, decoders)
            else:
                res = finetune(task, spec.model, init=spec.init, data=data_cache[task.name], head=spec.head,
                               freeze=spec.freeze, model_kwargs=spec.model_kwargs, align=spec.align,
                               adapt=spec.adapt, train=cell_train, verbose=False, threads=threads, out=decoders)
                rec = dict(res.record, status="done")
                fit = rec.pop("train", None) or {}
                rec.update(best_epoch=fit.get("best_epoch"), epochs_run=fit.get("epochs_run"), chosen=fit.get("chosen"))
            ran += 1
        except NeurofmError as err:
            rec = dict(task=task.name, model=spec.model, seed=seed, status="failed", error=str(err))
            log.warning("%s / %s / seed %d failed: %s", task.name, spec.label, seed, err)
            failed += 1
        rec.update(label=spec.label, config_hash=chash, seconds=round(time.perf_counter() - t0, 2))
        write_json(path, rec)
        bar.update()
    bar.close()
    summary = summarize_cells(out, specs, models, seeds, baseline=baseline)
    summary.update(ran=ran, skipped=skipped, failed=failed)
    write_json(out / "results.json", summary)
    (out / "results.md").write_text(markdown_table(summary))
    plot_confusions(out, summary)
    return summary


def _cv_cell(task, spec: ModelSpec, k: int, data, train, threads, out) -> dict[str, Any]:
    from neurofm.decoding.cv import finetune_cv

    res = finetune_cv(task, spec.model, folds=k, data=data, out=out, save_decoders=out is not None, verbose=False,
                      init=spec.init, head=spec.head, freeze=spec.freeze, model_kwargs=spec.model_kwargs,
                      align=spec.align, adapt=spec.adapt, train=train, threads=threads)
    cm = [f["confusion"] for f in res.folds if f.get("confusion") is not None]
    return dict(res.record, status="done", cv=k, folds=res.folds, test=res.summary["pooled_test"],
                val={m: v["mean"] for m, v in res.summary["val"].items()},
                confusion=np.sum(cm, axis=0).tolist() if cm else None, per_subject=res.per_subject,
                subject_level=res.subject_level, n=res.folds[0]["n"],
                best_epoch=[f.get("best_epoch") for f in res.folds])


def _values(cell: dict, split: str, metric: str) -> list[float]:
    """One value per fold (CV cell) or the single split score (fixed split)."""
    rows = cell["folds"] if cell.get("folds") else [cell]
    vals = []
    for r in rows:
        v = (r.get(split) or {}).get(metric)
        vals.append(float("nan") if v is None else float(v))
    return vals


def summarize_cells(out: Path, tasks: list, models: list[ModelSpec], seeds: int, *, baseline: str) -> dict[str, Any]:
    rows = []
    for task in tasks:
        base_mean = None
        for spec in models:
            cells = []
            for seed in range(seeds):
                path = out / "cells" / task.name / spec.label / f"seed{seed}.json"
                if path.exists():
                    cells.append(json.loads(path.read_text()))
            done = [c for c in cells if c.get("status") == "done"]
            row: dict[str, Any] = dict(task=task.name, model=spec.label, registered=spec.model,
                                       family=_family(spec.model), description=describe_spec(spec),
                                       metric=task.primary_metric, kind=task.kind, classes=task.classes,
                                       n_seeds=len(done), failed=[c.get("error") for c in cells if c.get("status") != "done"],
                                       seconds_per_seed=float(np.mean([c["seconds"] for c in done])) if done else None)
            for m in task.metrics:
                row[m] = summarize([v for c in done for v in _values(c, "test", m)])
            row["val_" + task.primary_metric] = summarize([v for c in done for v in _values(c, "val", task.primary_metric)])
            row["cv"] = done[0].get("cv") if done else None
            row["per_seed"] = [float(np.nanmean(_values(c, "test", task.primary_metric))) for c in done]
            row["n_scores"] = row[task.primary_metric].get("n")
            sl = [c["subject_level"]["metrics"].get(task.primary_metric) for c in done if c.get("subject_level")]
            row["subject_level"] = summarize(sl) if sl else None
            subj: dict[str, list[float]] = {}
            for c in done:
                for s, v in (c.get("per_subject") or {}).items():
                    subj.setdefault(s, []).append(v.get(task.primary_metric))
            row["per_subject"] = {s: float(np.nanmean([x if x is not None else np.nan for x in v]))
                                  for s, v in subj.items()} if subj else None
            if done and task.kind == "classification":
                row["confusion"] = np.sum([c["confusion"] for c in done], axis=0).tolist()
            row["n"] = done[0]["n"] if done else None
            row["best_epochs"] = [c.get("best_epoch") for c in done]
            row["align"] = spec.align
            row["adapt"] = spec.adapt
            row["notes"] = sorted({n for c in done for n in c.get("notes", [])})
            if spec.label == baseline and done:
                base_mean = row[task.primary_metric]["mean"]
            rows.append(row)
        for row in rows:
            if row["task"] == task.name:
                mean = row[task.primary_metric]["mean"] if row["n_seeds"] else None
                ok = base_mean is not None and mean is not None and base_mean and np.isfinite(mean)
                ratio = (mean / base_mean if task.primary_metric not in LOWER_IS_BETTER else base_mean / mean) if ok else None
                row["ratio_vs_baseline"] = ratio
    total = 0.0
    for path in (out / "cells").rglob("seed*.json"):
        total += float(json.loads(path.read_text()).get("seconds") or 0.0)
    return clean(dict(baseline=baseline, seeds=seeds, rows=rows, machine=machine(), cell_seconds_total=round(total, 1),
                      date=time.strftime("%Y-%m-%d")))


def _family(model: str) -> str:
    from neurofm import registry

    return str(registry.get_entry("models", model).meta.get("family", ""))


def describe_spec(spec: ModelSpec) -> str:
    """``label`` or ``label = model (pretrained, frozen, attention head, {...})`` for the table."""
    parts = (["pretrained"] if spec.init else []) + (["frozen"] if spec.freeze else [])
    parts += [f"{spec.head} head"] if spec.head else []
    parts += [f"aligned per {spec.align}"] if spec.align != "none" else []
    parts += [spec.adapt] if spec.adapt != "none" else []
    parts += [json.dumps(kw) for kw in (spec.model_kwargs, spec.train_kwargs) if kw]
    if spec.label == spec.model and not parts:
        return spec.label
    name = spec.label if spec.label == spec.model else f"{spec.label} = {spec.model}"
    return f"{name} ({', '.join(parts)})" if parts else name


def _fmt(s: dict | None, digits: int = 3) -> str:
    if not s or s.get("mean") is None:
        return "—"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _ci(s: dict | None, digits: int = 3) -> str:
    if not s or s.get("mean") is None:
        return "—"
    return f"[{s['ci_low']:.{digits}f}, {s['ci_high']:.{digits}f}]"


def markdown_table(summary: dict[str, Any]) -> str:
    """One table over every task and model: primary metric mean ± std and 95 % CI, AUROC and κ (or R²/RMSE)."""
    cv = next((r.get("cv") for r in summary["rows"] if r.get("cv")), None)
    over = f"{cv} leave-subjects-out folds × {summary['seeds']} seed(s)" if cv else f"{summary['seeds']} seed(s)"
    lines = [f"Test scores, mean ± std over {over}, 95 % t-interval of the mean; "
             f"ratio = primary metric / {summary['baseline']}'s on the same task; subject = subject-level score "
             "(mean of each subject's window probabilities), mean ± std over seeds.", "",
             "| task | model | metric | test (mean ± std) | 95 % CI | AUROC / R² | Cohen's κ / RMSE | "
             f"vs {summary['baseline']} | val | subject | scores | s / seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        pm = r["metric"]
        second, third = ("auroc", "kappa") if r["kind"] == "classification" else ("r2", "rmse")
        ratio = f"{r['ratio_vs_baseline']:.2f}×" if r.get("ratio_vs_baseline") is not None else "—"
        if not r["n_seeds"]:
            err = (r["failed"] or ["not run"])[0] or "failed"
            lines.append(f"| {r['task']} | {r['description']} | {LABELS[pm]} | failed: {err[:120]} | | | | | | | 0 | |")
            continue
        secs = f"{r['seconds_per_seed']:.0f}" if r.get("seconds_per_seed") is not None else "—"
        lines.append(f"| {r['task']} | {r['description']} | {LABELS[pm]} | {_fmt(r[pm])} | {_ci(r[pm])} | "
                     f"{_fmt(r.get(second))} | {_fmt(r.get(third))} | {ratio} | {_fmt(r.get('val_' + pm))} | "
                     f"{_fmt(r.get('subject_level'))} | {r.get('n_scores') or r['n_seeds']} | {secs} |")
    m = summary.get("machine", {})
    lines += ["", f"{summary.get('date')}, {m.get('cpu', '?')} ({m.get('cores', '?')} cores, torch threads "
                  f"{m.get('torch_threads', '?')}), Python {m.get('python')}, torch {m.get('torch')}, "
                  f"braindecode {m.get('braindecode')}; {summary.get('cell_seconds_total', 0) / 60:.1f} min of "
                  "training and scoring summed over cells."]
    return "\n".join(lines) + "\n"


def plot_confusions(out: Path, summary: dict[str, Any]) -> list[Path]:
    """One PNG per (task, model): row-normalised confusion summed over seeds, counts annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for r in summary["rows"]:
        cm = r.get("confusion")
        if not cm:
            continue
        cm = np.asarray(cm, dtype=float)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        k = len(r["classes"])
        fig, ax = plt.subplots(figsize=(1.2 * k + 2.2, 1.1 * k + 1.6))
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.2f}", ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
        ax.set_xticks(range(k), r["classes"], rotation=30, ha="right")
        ax.set_yticks(range(k), r["classes"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{r['task']}\n{r['model']} (test, {r['n_seeds']} seed(s))", fontsize=9)
        fig.tight_layout()
        path = out / "confusion" / f"{r['task']}__{r['model']}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def machine() -> dict[str, Any]:
    info: dict[str, Any] = dict(python=platform.python_version(), platform=platform.platform(),
                                cores=os.cpu_count(), cpu=_cpu_name())
    from importlib import metadata

    for dist in ("torch", "braindecode", "scikit-learn", "pyriemann", "lightning", "mne"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"
