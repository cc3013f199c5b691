"""Does pretraining earn its place? The same LBM encoder from random init and from pretrained weights, on the
same leave-subjects-out folds and seeds, beside the classical baselines of the same run.

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
    .venv/bin/python scripts/bench/pretraining.py --init runs/lbm-tiny/export                  # another encoder
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

TASKS = ["eegmat-arithmetic:6", "eegmmidb-imagery-lr-xsubj:4"]
PAIRS = [("lbm-pre-ch", "lbm-rand-ch"), ("lbm-pre-ch-lp", "lbm-rand-ch-lp")]


def benchmark_args(task: str, k: int, columns: list[str], *, init: str, seeds: int, ft_epochs: int,
                   out: Path) -> list[str]:
    """The ``neurofm benchmark`` command line of one task."""
    models, align, head, adapt, freeze, inits, train_kwargs = [], [], [], [], [], [], []
    if "classical" in columns:
        models += ["bandpower-lr", "bp-subj=bandpower-lr", "ts-subj=tangentspace-lr"]
        align += ["bp-subj=subject", "ts-subj=subject"]
    for kind in ("rand", "pre"):
        if kind not in columns:
            continue
        ft, lp = f"lbm-{kind}-ch", f"lbm-{kind}-ch-lp"
        for label in (ft, lp):
            models.append(f"{label}=lbm-tiny")
            head.append(f"{label}=channels")
            align.append(f"{label}=subject")
            adapt.append(f"{label}=adabn-features")
        freeze.append(lp)
        train_kwargs.append(f'{ft}={{"max_epochs": {ft_epochs}, "patience": 2}}')
        if kind == "pre":
            inits += [f"{ft}={init}", f"{lp}={init}"]
    args = ["benchmark", "--tasks", task, "--cv", str(k), "--seeds", str(seeds), "--threads", "1", "--quiet",
            "--models", *models, "--align", *align, "--max-epochs", "10", "--patience", "3", "--out", str(out)]
    for flag, values in (("--head", head), ("--adapt", adapt), ("--train-kwargs", train_kwargs),
                         ("--freeze", freeze), ("--init", inits)):
        if values:
            args += [flag, *values]
    return args


def _decoders_bench():
    path = Path(__file__).resolve().with_name("decoders.py")
    spec = importlib.util.spec_from_file_location("decoders_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=TASKS, help="TASK:K (K leave-subjects-out folds)")
    p.add_argument("--columns", nargs="+", default=["classical", "rand", "pre"], choices=["classical", "rand", "pre"])
    p.add_argument("--init", default="lbm-tiny.eeg", help="pretrained LBM: shipped name or exported directory")
    p.add_argument("--held-out", nargs="*", default=[],
                   help="TASK=S1,S2,...: subjects the pretrained encoder never saw (their gain is also reported)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--ft-epochs", type=int, default=4, help="fine-tuning epochs (a CPU budget: ~20 s per epoch and fold)")
    p.add_argument("--out", default="results/bench-pretraining")
    args = p.parse_args(argv)

    from neurofm.cli import main as neurofm_main

    bench = _decoders_bench()
    held = {t: tuple(s.split(",")) for t, _, s in (h.partition("=") for h in args.held_out)}
    out, summary, rc = Path(args.out), {}, 0
    for item in args.tasks:
        task, _, k = item.partition(":")
        task_out = out / task
        cmd = benchmark_args(task, int(k or 4), args.columns, init=args.init, seeds=args.seeds,
                             ft_epochs=args.ft_epochs, out=task_out)
        print("neurofm " + " ".join(cmd), flush=True)
        rc = max(rc, neurofm_main(cmd))
        results = json.loads((task_out / "results.json").read_text()) if (task_out / "results.json").exists() else {}
        paired = bench.paired_gains(task_out, task, pairs=PAIRS, held_out=held.get(task, ()))
        summary[task] = dict(rows=results.get("rows", []), paired=paired,
                             goals=bench.goals(results.get("rows", []), {task: paired}))
        for line in summary[task]["goals"]:
            print(line)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pretraining.json").write_text(json.dumps(dict(init=args.init, seeds=args.seeds, ft_epochs=args.ft_epochs,
                                                           tasks=summary), indent=1))
    print(f"results: {out / 'pretraining.json'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
