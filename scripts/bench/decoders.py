"""Decoder benchmark under leave-subjects-out cross-validation: every task × model, one run, same folds.

Runs ``neurofm benchmark --cv K`` (resumable: finished cells are kept) task by task, each task with its own
number of folds, and writes one table and one JSON: primary metric mean ± std and 95 % CI over folds × seeds,
per-subject scores, subject-level scores where the task has them, and the strongest classical baseline of
the same run beside every neural model.

    .venv/bin/python scripts/bench/decoders.py --out results/bench-decoders-cv
    .venv/bin/python scripts/bench/decoders.py --tasks uci-alcohol --seeds 1 --out /tmp/quick
    .venv/bin/python scripts/bench/decoders.py --init lbm-pre=DIR   # add a pretrained encoder (same folds)
    .venv/bin/python scripts/bench/decoders.py --init lbm-pre=lbm-tiny.eeg --linear-probe   # shipped weights + probes
    .venv/bin/python scripts/bench/decoders.py --tasks eegmat-arithmetic --models ts-subj=tangentspace-lr \
        s=shallow-fbcspnet --align s=subject --adapt s=adabn --train-kwargs 's={"max_epochs": 30}'  # any column

An ``--init`` encoder of the LBM family gets the same alignment and train-kwargs as ``lbm-rand`` (a fair, paired
comparison on the same folds and seeds); ``--linear-probe`` adds, for ``lbm-rand`` and every ``--init`` label, a
``LABEL-lp`` column: the same encoder frozen under a linear head (the run's --max-epochs/--patience).

Default models: band power + LR and tangent space + LR, each as is and aligned per subject (feature
standardisation / Riemannian re-centering), EEGNet and ShallowFBCSPNet with Euclidean alignment per subject,
the same with subject-adaptive normalisation (``-abf``: ``--adapt adabn-features``, EEGNet everywhere,
ShallowFBCSPNet on eegmat-arithmetic), TSMNet (``tsm-subj``: Euclidean alignment, and its SPD batch norm re-centring
each subject on its own Fréchet mean, ``--adapt adabn``; 30 epochs, patience 10), and the LBM (tiny, aligned, ``channels`` head with per-subject feature
standardisation, as in ``scripts/bench/pretraining.py``) from random init on eegmat-arithmetic. On uci-alcohol, whose label is the subject's
diagnosis, per-subject alignment removes exactly the between-subject difference to be decoded, so its neural
models run unaligned.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

#: task → number of leave-subjects-out folds
TASKS = {"eegmat-arithmetic": 6, "eegmmidb-imagery-lr-xsubj": 4, "eegmmidb-real-lr-xsubj": 4, "uci-alcohol": 4}
CLASSICAL = ["bandpower-lr", "bp-subj=bandpower-lr", "tangentspace-lr", "ts-subj=tangentspace-lr"]
NEURAL = {  # per task: the LBM (slow on a CPU) only where the pretraining goal is measured
    "eegmat-arithmetic": ["eegnet-ea=eegnet", "shallow-ea=shallow-fbcspnet", "eegnet-abf=eegnet",
                          "shallow-abf=shallow-fbcspnet", "tsm-subj=tsmnet", "lbm-rand=lbm-tiny"],
    "uci-alcohol": ["eegnet=eegnet", "shallow=shallow-fbcspnet", "tsmnet=tsmnet"],
}
DEFAULT_NEURAL = ["eegnet-ea=eegnet", "shallow-ea=shallow-fbcspnet", "eegnet-abf=eegnet", "tsm-subj=tsmnet"]
ALIGN = ["bp-subj=subject", "ts-subj=subject", "eegnet-ea=subject", "shallow-ea=subject", "lbm-rand=subject",
         "eegnet-abf=subject", "shallow-abf=subject", "tsm-subj=subject"]
#: subject-adaptive normalisation (neurofm.decoding.adapt): one-subject batches, BatchNorm statistics and
#: classifier-input standardisation from each subject's own windows, on top of Euclidean alignment
ADAPT = ["eegnet-abf=adabn-features", "shallow-abf=adabn-features", "lbm-rand=adabn-features",
         "tsm-subj=adabn"]  # TSMNet: its SPD batch norm re-centres each subject on its own Fréchet mean
#: the LBM's head pools one vector per channel (mean pooling over every token lost where a feature changed:
#: README, "Why pretraining did not show"); the recipe of scripts/bench/pretraining.py
HEAD = ["lbm-rand=channels"]
TRAIN_KWARGS = ['eegnet-ea={"lr": 0.003}', 'eegnet={"lr": 0.003}',  # EEGNet learns slowly at 1e-3 in few epochs
                'eegnet-abf={"lr": 0.003}',
                'lbm-rand={"max_epochs": 4, "patience": 2}',  # ~15 s per epoch and fold on eegmat (1 thread)
                'tsm-subj={"max_epochs": 30, "patience": 10}',  # ~2 s per epoch and fold on eegmat (1 thread)
                'tsmnet={"max_epochs": 30, "patience": 10}']


def models_for(task: str, extra: list[str]) -> list[str]:
    return CLASSICAL + NEURAL.get(task, DEFAULT_NEURAL) + extra


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="tasks (TASK or TASK:K for K folds)")
    p.add_argument("--models", nargs="*", help="replace the default model list (LABEL=MODEL)")
    p.add_argument("--init", nargs="*", default=[], metavar="LABEL=DIR",
                   help="exported encoders, added as LABEL=<model in DIR/config.json>")
    p.add_argument("--head", nargs="*", default=[], metavar="LABEL=KIND")
    p.add_argument("--freeze", nargs="*", default=[], metavar="LABEL")
    p.add_argument("--linear-probe", action="store_true",
                   help="add LABEL-lp (frozen encoder + linear head) for lbm-rand and every --init label")
    p.add_argument("--align", nargs="*", default=[], metavar="LABEL=UNIT", help="alignment of added --models labels")
    p.add_argument("--adapt", nargs="*", default=[], metavar="LABEL=MODE",
                   help="subject-adaptive normalisation (adabn, adabn-features) of added --models labels")
    p.add_argument("--model-kwargs", nargs="*", default=[], metavar="LABEL=JSON")
    p.add_argument("--train-kwargs", nargs="*", default=[], metavar="LABEL=JSON")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--max-epochs", type=int, default=12)
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default="results/bench-decoders-cv")
    p.add_argument("--cache", help="store cache (default $NEUROFM_CACHE or ~/.cache/neurofm/stores)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the CPU is shared: 1 by default)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from neurofm._errors import NeurofmError
    from neurofm.decoding.benchmark import markdown_table, parse_models, run_benchmark
    from neurofm.decoding.training import TrainConfig

    try:
        extra, init, freeze, align, adapt, head, train_kwargs = init_columns(args.init, linear_probe=args.linear_probe)
        align += args.align
        train_kwargs += args.train_kwargs
        adapt += args.adapt
        head += args.head
    except NeurofmError as err:
        print(f"decoders bench: error: {err}", file=sys.stderr)
        return 2
    train = TrainConfig(max_epochs=args.max_epochs, patience=args.patience, lr=args.lr, batch_size=args.batch_size)
    out = Path(args.out)
    rows, t0, failed = [], time.perf_counter(), 0
    folds = {}
    for item in args.tasks:
        task, _, k = item.partition(":")
        k = int(k) if k else TASKS.get(task, 4)
        folds[task] = k
        names = (list(args.models) + extra) if args.models else models_for(task, extra)
        labels = {m.partition("=")[0] for m in names}
        try:
            specs = parse_models(names, init=[i for i in init if i.partition("=")[0] in labels],
                                 head=[h for h in head if h.partition("=")[0] in labels],
                                 freeze=[f for f in [*args.freeze, *freeze] if f in labels],
                                 align=[a for a in align if a.partition("=")[0] in labels],
                                 adapt=[a for a in adapt if a.partition("=")[0] in labels],
                                 model_kwargs=[m for m in args.model_kwargs if m.partition("=")[0] in labels],
                                 train_kwargs=[t for t in train_kwargs if t.partition("=")[0] in labels])
            summary = run_benchmark([task], specs, seeds=args.seeds, out=out / task, train=train, cache=args.cache,
                                    verbose=not args.quiet, threads=args.threads, cv=k)
        except NeurofmError as err:
            print(f"decoders bench: {task}: error: {err}", file=sys.stderr)
            failed += 1
            continue
        failed += summary["failed"]
        rows += summary["rows"]
        machine = summary["machine"]
    wall = time.perf_counter() - t0
    if not rows:
        return 2
    summary = dict(date=time.strftime("%Y-%m-%d"), baseline="bandpower-lr", seeds=args.seeds, folds=folds, rows=rows,
                   machine=machine, wall_seconds=round(wall, 1), train=train.to_dict(),
                   cell_seconds_total=round(sum((r.get("seconds_per_seed") or 0) * r["n_seeds"] for r in rows), 1))
    summary["paired"] = {task: paired_gains(out / task, task, held_out=PRETRAIN_HELD_OUT.get(task, ())) for task in folds}
    summary["goals"] = goals(rows, summary["paired"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    table = markdown_table(summary)
    (out / "results.md").write_text(table)
    print(table)
    print(f"{wall / 60:.1f} min wall; folds per task {folds}")
    for line in summary["goals"]:
        print(line)
    return 1 if failed else 0


#: subjects the shipped lbm-tiny.eeg never saw in (unsupervised) pretraining (its MODEL_CARD.md)
PRETRAIN_HELD_OUT = {"eegmat-arithmetic": ("18", "19", "20", "21", "22", "23")}
#: (pretrained, random) columns compared fold by fold on the same seed
PAIRS = [("lbm-pre", "lbm-rand"), ("lbm-pre-lp", "lbm-rand-lp")]


def fold_gains(task_out: Path, task: str, pre: str, rand: str,
               held_out: tuple[str, ...] = ()) -> tuple[dict[tuple[str, int], float], list[float]]:
    """``pre`` − ``rand`` per (seed, fold) finished in both columns, read from ``task_out/cells/TASK/LABEL/seedN.json``,
    and the per-subject gains of the ``held_out`` subjects. Folds that test other subjects are refused."""
    gains, subj = {}, []
    root = task_out / "cells" / task
    hashes: dict[str, set] = {pre: set(), rand: set()}
    for path in sorted((root / pre).glob("seed*.json")):
        other = root / rand / path.name
        if not other.exists():
            continue
        a, b = json.loads(path.read_text()), json.loads(other.read_text())
        if a.get("status") != "done" or b.get("status") != "done":
            continue
        for label, cell in ((pre, a), (rand, b)):
            hashes[label].add(cell.get("config_hash"))
            if len(hashes[label] - {None}) > 1:  # e.g. seeds left in the folder by a run with another init
                raise ValueError(f"{root / label}: its cells come from different configurations "
                                 f"({', '.join(sorted(hashes[label] - {None}))}); rerun them or remove the stale ones")
        metric = a["metric"]
        for fa, fb in zip(a["folds"], b["folds"], strict=True):
            if fa["subjects"]["test"] != fb["subjects"]["test"]:
                raise ValueError(f"{path}: fold {fa['fold']} tests other subjects than {other}")
            gains[(path.stem, int(fa["fold"]))] = fa["test"][metric] - fb["test"][metric]
        for s in held_out:
            if s in (a.get("per_subject") or {}) and s in (b.get("per_subject") or {}):
                subj.append(a["per_subject"][s][metric] - b["per_subject"][s][metric])
    return gains, subj


def paired_gains(task_out: Path, task: str, pairs=PAIRS, held_out: tuple[str, ...] = ()) -> dict[str, dict]:
    """Pretrained − random on the same fold and seed: mean and 95 % t-interval over the (fold, seed) pairs.

    Only seeds finished for both columns count. With ``held_out`` subjects, also the gain on those subjects'
    per-subject scores (subjects unseen in pretraining).
    """
    from neurofm.evaluation.metrics import summarize

    out = {}
    for pre, rand in pairs:
        gains, subj = fold_gains(task_out, task, pre, rand, held_out)
        if gains:
            out[f"{pre} − {rand}"] = dict(summarize(list(gains.values())), held_out=summarize(subj) if subj else None)
    return out


def init_columns(items: list[str], *, linear_probe: bool = False):
    """Model columns, ``--init``/``--freeze`` values, alignment, adaptation, head and train-kwargs for the
    pretrained encoders.

    ``items`` are ``LABEL=DIR`` or ``LABEL=NAME`` of shipped weights (``lbm-tiny.eeg``). An LBM-family encoder
    inherits ``lbm-rand``'s alignment, adaptation, head and train-kwargs, so pretrained and random differ only in
    their init; its probe (``LABEL-lp``) inherits all but the train-kwargs.
    Returns ``(extra models, init, freeze labels, align, adapt, head, train_kwargs)``.
    """
    from neurofm.models._pretrained import resolve

    extra, init, freeze = [], [], []
    align, adapt, head, train_kwargs = list(ALIGN), list(ADAPT), list(HEAD), list(TRAIN_KWARGS)
    rand_align = dict(a.partition("=")[::2] for a in ALIGN)["lbm-rand"]
    rand_adapt = dict(a.partition("=")[::2] for a in ADAPT)["lbm-rand"]
    rand_head = dict(h.partition("=")[::2] for h in HEAD)["lbm-rand"]
    rand_train = dict(t.partition("=")[::2] for t in TRAIN_KWARGS)["lbm-rand"]
    probes = [("lbm-rand", "lbm-tiny", None)] if linear_probe else []
    for item in items:
        label, _, where = item.partition("=")
        directory = resolve(where)
        model = json.loads((directory / "config.json").read_text())["model"]
        extra.append(f"{label}={model}")
        init.append(f"{label}={directory}")
        if model.startswith("lbm"):
            align.append(f"{label}={rand_align}")
            adapt.append(f"{label}={rand_adapt}")
            head.append(f"{label}={rand_head}")
            train_kwargs.append(f"{label}={rand_train}")
            probes += [(label, model, directory)] if linear_probe else []
    probe_cols = []  # the probes first: cheap (tokens computed once), and each needs no fine-tuning
    for label, model, directory in probes:
        probe_cols.append(f"{label}-lp={model}")
        init += [f"{label}-lp={directory}"] if directory is not None else []
        freeze.append(f"{label}-lp")
        align.append(f"{label}-lp={rand_align}")
        adapt.append(f"{label}-lp={rand_adapt}")
        head.append(f"{label}-lp={rand_head}")
    extra = probe_cols + extra
    return extra, init, freeze, align, adapt, head, train_kwargs


def _mean(row: dict) -> float | None:
    return (row.get(row["metric"]) or {}).get("mean")


def goals(rows: list[dict], paired: dict[str, dict] | None = None) -> list[str]:
    """The issue's goals, each stated as met or MISSED from this run's rows (and paired gains per task)."""
    out = []
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        if _mean(r) is not None:
            by_task.setdefault(r["task"], []).append(r)
    for task, rs in by_task.items():
        classical = [r for r in rs if r.get("family") == "classical"]
        neural = [r for r in rs if r.get("family") != "classical"]
        bc = max(classical, key=_mean) if classical else None
        bn = max(neural, key=_mean) if neural else None
        line = f"{task}: best classical {bc['model']} {_mean(bc):.3f}" if bc else f"{task}: no classical row"
        if bn:
            line += f"; best neural {bn['model']} {_mean(bn):.3f} (seed-to-seed spread {_seed_spread(bn):.3f})"
        out.append(line)
        if task == "eegmat-arithmetic" and bn:
            met = _mean(bn) >= 0.82 and (bc is None or _mean(bn) > _mean(bc))
            out.append(f"  goal: best neural ≥ 0.82 and above the best classical on the same folds: "
                       f"{'met' if met else 'MISSED'}")
        if task == "uci-alcohol":
            sl = [(r["model"], r["subject_level"]["mean"]) for r in rs if r.get("subject_level")]
            if sl:
                name, best = max(sl, key=lambda t: t[1])
                out.append(f"  goal: subject-level balanced accuracy ≥ 0.85: best {name} {best:.3f} → "
                           f"{'met' if best >= 0.85 else 'MISSED'}")
        gains = (paired or {}).get(task) or {}
        for name, g in gains.items():
            met = g["mean"] >= 0.03 and g["ci_low"] > 0
            out.append(f"  goal: pretrained ≥ random + 0.03, CI above 0: {name} = {g['mean']:+.3f} "
                       f"[{g['ci_low']:+.3f}, {g['ci_high']:+.3f}] over {g['n']} fold×seed pairs → "
                       f"{'met' if met else 'MISSED'}")
        if not gains and task in ("eegmat-arithmetic", "eegmmidb-imagery-lr-xsubj"):
            out.append("  goal: pretrained ≥ random + 0.03: NOT ASSESSED (no pretrained encoder in this run)")
    return out


def _seed_spread(row: dict) -> float:
    """Largest difference between two seeds' mean-over-folds scores (0 with one seed)."""
    per_seed = row.get("per_seed") or []
    return float(max(per_seed) - min(per_seed)) if len(per_seed) > 1 else 0.0


if __name__ == "__main__":
    sys.exit(main())
