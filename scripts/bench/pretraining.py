"""Does pretraining earn its place? The same encoder from random init and from pretrained weights, on the
same leave-subjects-out folds and seeds, beside the classical baselines of the same run. The encoder is the LBM
(``--encoder lbm-tiny``, the default) or a tokenizer's encoder (``--encoder neurorvq-tiny``: the multi-scale
convolutions and transformer in front of the quantizers, pretrained by reconstruction; columns ``tok-*``).

Per task, one ``neurofm benchmark --cv K`` run (resumable: finished cells are kept) with the columns

- ``bandpower-lr``, ``bp-subj`` (band power standardised per subject), ``ts-subj`` (tangent space re-centred per
  subject): the baselines;
- ``lbm-rand-ch-lp`` / ``lbm-pre-ch-lp``: the encoder frozen, the ``channels`` head (one pooled vector per
  channel) with its features standardised per subject (``--adapt adabn-features``): a probe of what the
  features hold;
- ``lbm-rand-ch`` / ``lbm-pre-ch``: the same, fully fine-tuned (``--ft-epochs`` epochs, patience 2);

all neural columns on Euclidean-aligned input (``--align subject``). The goal line is the paired gain
pretrained − random on the same fold and seed (mean and 95 % t-interval over the fold × seed pairs), for the
fine-tuned and the probed encoder.

    .venv/bin/python scripts/bench/pretraining.py --out results/bench-pretraining            # ~90 core-minutes
    .venv/bin/python scripts/bench/pretraining.py --tasks eegmat-arithmetic:6 --columns classical rand
    .venv/bin/python scripts/bench/pretraining.py --init runs/lbm-tiny/export                  # another LBM
    .venv/bin/python scripts/bench/pretraining.py --encoder neurorvq-tiny --columns rand pre    # the tokenizer's encoder
    .venv/bin/python scripts/bench/pretraining.py --feature-layer 2 --columns rand pre          # an earlier LBM layer
    .venv/bin/python scripts/bench/pretraining.py --pool OUT0 OUT1 OUT2 --out results/bench-pretraining-pooled

One pretraining run is itself a draw, whose variance the fold × seed interval of one run does not contain
(measured over three runs of the shipped recipe: 0.01–0.02 between runs). ``--pool`` reads the
``--out`` folders of runs that differ only in ``--init`` (LBMs pretrained with different seeds, e.g.
``scripts/release/release.py --only lbm --seed N --dest DIR``) and reports, per task and pair, each run's gain,
the gain averaged over runs for every fold × seed pair (interval over the pairs: the test subjects' variance) and
the interval over the runs' means (t with runs − 1 degrees of freedom: the pretraining run's variance). The goal
line asks both to stay above 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

TASKS = ["eegmat-arithmetic:6", "eegmmidb-imagery-lr-xsubj:4"]


def column_prefix(encoder: str) -> str:
    """Column labels' stem: ``lbm`` for an LBM (``lbm-pre-ch``...), ``tok`` for a tokenizer's encoder."""
    return "lbm" if encoder.startswith("lbm") else "tok"


def pairs_of(encoder: str = "lbm-tiny") -> list[tuple[str, str]]:
    """(pretrained, random) column pairs of ``encoder``: fine-tuned, then probed."""
    c = column_prefix(encoder)
    return [(f"{c}-pre-ch", f"{c}-rand-ch"), (f"{c}-pre-ch-lp", f"{c}-rand-ch-lp")]


PAIRS = pairs_of("lbm-tiny")


def random_init_kwargs(encoder: str, init: str) -> dict:
    """Constructor arguments that give the random-init column the pretrained encoder's architecture. An LBM's
    encoder is fixed by its registered size (its export only adds the code layout of its output head), so it gets
    none; a tokenizer's export records the scales, levels and decoder it was trained with, which its registered
    defaults need not match."""
    if column_prefix(encoder) == "lbm":
        return {}
    from neurofm.models._hub import read_config

    _, cfg = read_config(init)
    return dict(cfg.get("kwargs", {}))


def benchmark_args(task: str, k: int, columns: list[str], *, init: str, seeds: int, ft_epochs: int,
                   out: Path, encoder: str = "lbm-tiny", rand_kwargs: dict | None = None,
                   feature_layer: int | None = None) -> list[str]:
    """The ``neurofm benchmark`` command line of one task. ``feature_layer``: every LBM column reads its features
    after that many transformer blocks (``LBM(feature_layer=...)``), pretrained and random alike."""
    models, align, head, adapt, freeze, inits, train_kwargs, model_kwargs = [], [], [], [], [], [], [], []
    stem = column_prefix(encoder)
    if "classical" in columns:
        models += ["bandpower-lr", "bp-subj=bandpower-lr", "ts-subj=tangentspace-lr"]
        align += ["bp-subj=subject", "ts-subj=subject"]
    for kind in ("rand", "pre"):
        if kind not in columns:
            continue
        ft, lp = f"{stem}-{kind}-ch", f"{stem}-{kind}-ch-lp"
        for label in (ft, lp):
            models.append(f"{label}={encoder}")
            head.append(f"{label}=channels")
            align.append(f"{label}=subject")
            adapt.append(f"{label}=adabn-features")
        freeze.append(lp)
        train_kwargs.append(f'{ft}={{"max_epochs": {ft_epochs}, "patience": 2}}')
        if kind == "pre":
            inits += [f"{ft}={init}", f"{lp}={init}"]
        kwargs = {**((rand_kwargs or {}) if kind == "rand" else {}),
                  **({"feature_layer": feature_layer} if feature_layer is not None else {})}
        if kwargs:
            model_kwargs += [f"{label}={json.dumps(kwargs, separators=(',', ':'))}" for label in (ft, lp)]
    args = ["benchmark", "--tasks", task, "--cv", str(k), "--seeds", str(seeds), "--threads", "1", "--quiet",
            "--models", *models, "--align", *align, "--max-epochs", "10", "--patience", "3", "--out", str(out)]
    for flag, values in (("--head", head), ("--adapt", adapt), ("--train-kwargs", train_kwargs),
                         ("--freeze", freeze), ("--init", inits), ("--model-kwargs", model_kwargs)):
        if values:
            args += [flag, *values]
    return args


def _decoders_bench():
    path = Path(__file__).resolve().with_name("decoders.py")
    spec = importlib.util.spec_from_file_location("decoders_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pooled_gains(runs: list[Path], task: str, pairs: list[tuple[str, str]] | None = None) -> dict[str, dict]:
    """Paired gains of several pretraining runs on the fold × seed pairs that every run finished (see the module
    docstring)."""
    from neurofm.evaluation.metrics import summarize

    bench = _decoders_bench()
    out = {}
    for pre, rand in pairs or PAIRS:
        per_run = {str(run): g for run in runs if (g := bench.fold_gains(run / task, task, pre, rand)[0])}
        if not per_run:
            continue
        common = sorted(set.intersection(*(set(g) for g in per_run.values())))
        runs_summary = [dict(run=r, **summarize([g[k] for k in common])) for r, g in per_run.items()]
        out[f"{pre} − {rand}"] = dict(
            runs=runs_summary, pairs=[f"{s}/fold{f}" for s, f in common],
            over_runs=summarize([r["mean"] for r in runs_summary]),
            over_pairs=summarize([sum(g[k] for g in per_run.values()) / len(per_run) for k in common]))
    return out


def pooled_goal_met(gain: dict, target: float = 0.03) -> bool:
    """The goal on pooled runs: mean gain ≥ ``target`` with the interval over the runs' means *and* the interval over
    the fold × seed pairs above 0. The first holds the pretraining run's variance, the second the test subjects'
    (the folds); a gain that clears only one is established for these subjects or for this run, not for new people
    and a new pretraining run."""
    o, p = gain["over_runs"], gain["over_pairs"]
    return bool(o["n"] > 1 and o["mean"] >= target and o["ci_low"] > 0 and p["ci_low"] > 0)


def pool(runs: list[Path], out: Path, tasks: list[str], encoder: str = "lbm-tiny") -> int:
    summary = {}
    for item in tasks:
        task = item.partition(":")[0]
        try:
            gains = pooled_gains(runs, task, pairs_of(encoder))
        except ValueError as err:  # folds that test other subjects, or stale cells of another configuration
            print(f"error: {err}", file=sys.stderr)
            return 1
        if not gains:
            print(f"{task}: no finished pretrained/random cells in {', '.join(map(str, runs))}")
            continue
        summary[task] = gains
        for name, g in gains.items():
            per = ", ".join(f"{r['mean']:+.3f}" for r in g["runs"])
            o, p = g["over_runs"], g["over_pairs"]
            g["goal_met"] = pooled_goal_met(g)
            print(f"{task} {name}: per run {per}; mean over {o['n']} runs {o['mean']:+.3f} "
                  f"[{o['ci_low']:+.3f}, {o['ci_high']:+.3f}] (between runs std {o['std']:.3f}); over {p['n']} "
                  f"fold×seed pairs [{p['ci_low']:+.3f}, {p['ci_high']:+.3f}] → goal ≥ +0.03 with both CIs above 0: "
                  f"{'met' if g['goal_met'] else 'MISSED'}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "pooled.json").write_text(json.dumps(dict(runs=[str(r) for r in runs], tasks=summary), indent=1))
    print(f"results: {out / 'pooled.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=TASKS, help="TASK:K (K leave-subjects-out folds)")
    p.add_argument("--columns", nargs="+", default=["classical", "rand", "pre"], choices=["classical", "rand", "pre"])
    p.add_argument("--encoder", default="lbm-tiny",
                   help="the encoder compared: lbm-tiny (columns lbm-*) or a tokenizer such as neurorvq-tiny, whose "
                        "encoder carries the head (columns tok-*; random init built with the pretrained one's kwargs)")
    p.add_argument("--init", default=None,
                   help="pretrained encoder: shipped name or exported directory (default: ENCODER.eeg, the shipped one)")
    p.add_argument("--held-out", nargs="*", default=[],
                   help="TASK=S1,S2,...: subjects the pretrained encoder never saw (their gain is also reported)")
    p.add_argument("--feature-layer", type=int, default=None,
                   help="LBM columns: features after this many transformer blocks (0: embedded tokens; default: all)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--ft-epochs", type=int, default=4, help="fine-tuning epochs (a CPU budget: ~20 s per epoch and fold)")
    p.add_argument("--out", default="results/bench-pretraining")
    p.add_argument("--pool", nargs="+", metavar="OUT",
                   help="pool finished runs (their --out folders, one pretrained LBM each) instead of running cells")
    args = p.parse_args(argv)
    if args.pool:
        return pool([Path(r) for r in args.pool], Path(args.out), args.tasks, args.encoder)
    init = args.init or f"{args.encoder}.eeg"
    if args.feature_layer is not None and column_prefix(args.encoder) != "lbm":
        p.error(f"--feature-layer applies to an LBM encoder, not {args.encoder}")
    rand_kwargs = random_init_kwargs(args.encoder, init) if "rand" in args.columns else {}

    from neurofm.cli import main as neurofm_main

    bench = _decoders_bench()
    held = {t: tuple(s.split(",")) for t, _, s in (h.partition("=") for h in args.held_out)}
    out, summary, rc = Path(args.out), {}, 0
    for item in args.tasks:
        task, _, k = item.partition(":")
        task_out = out / task
        cmd = benchmark_args(task, int(k or 4), args.columns, init=init, seeds=args.seeds,
                             ft_epochs=args.ft_epochs, out=task_out, encoder=args.encoder, rand_kwargs=rand_kwargs,
                             feature_layer=args.feature_layer)
        print("neurofm " + " ".join(cmd), flush=True)
        rc = max(rc, neurofm_main(cmd))
        results = json.loads((task_out / "results.json").read_text()) if (task_out / "results.json").exists() else {}
        paired = bench.paired_gains(task_out, task, pairs=pairs_of(args.encoder), held_out=held.get(task, ()))
        summary[task] = dict(rows=results.get("rows", []), paired=paired, encoder=args.encoder, init=init, seeds=args.seeds,
                             feature_layer=args.feature_layer,
                             ft_epochs=args.ft_epochs, goals=bench.goals(results.get("rows", []), {task: paired}))
        for line in summary[task]["goals"]:
            print(line)
    write_summary(out, summary)
    print(f"results: {out / 'pretraining.json'}")
    return rc


def write_summary(out: Path, tasks: dict) -> Path:
    """Merge this run's tasks into ``out/pretraining.json``: a task run on its own into the same ``--out`` (each
    with its own seeds) must not erase the tasks run before it. Each task records its own init, seeds and epochs."""
    path = out / "pretraining.json"
    previous = json.loads(path.read_text()).get("tasks", {}) if path.exists() else {}
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(tasks={**previous, **tasks}), indent=1))
    return path


if __name__ == "__main__":
    sys.exit(main())
