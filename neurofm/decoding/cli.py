"""``neurofm finetune``, ``neurofm evaluate decoder`` and ``neurofm benchmark``.

This module only defines arguments at import time (no torch): ``neurofm list`` stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neurofm._errors import ConfigError


def _train_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (neural models)")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the head / last layer")
    g.add_argument("--weight-decay", type=float, default=1e-2)
    g.add_argument("--layer-decay", type=float, default=0.75, help="layer-wise LR decay for encoder layer groups")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--max-epochs", type=int, default=40)
    g.add_argument("--patience", type=int, default=8, help="early stopping: epochs without a better validation score")
    g.add_argument("--warmup-epochs", type=int, default=2)
    g.add_argument("--class-weight", choices=["balanced", "none"], default="balanced")
    g.add_argument("--monitor", choices=["metric", "loss"], default="metric",
                   help="select / stop on the task metric (ties: lower loss) or on the validation loss")
    g.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu ...")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: $OMP_NUM_THREADS, else 1)")
    g.add_argument("--augment", help="braindecode.augmentation transforms for training batches, JSON "
                                     "{ClassName: kwargs}, e.g. '{\"FTSurrogate\": {\"probability\": 0.5}}'")


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", help="store cache (default $NEUROFM_CACHE, else ~/.cache/neurofm/stores)")
    p.add_argument("--n-jobs", type=int, default=1, help="parallel recordings when preprocessing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _train_config(args: argparse.Namespace, seed: int = 0):
    from neurofm.decoding.training import TrainConfig

    for name in ("batch_size", "max_epochs"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1.", hint="pass a positive number.")
    return TrainConfig(lr=args.lr, weight_decay=args.weight_decay, layer_decay=args.layer_decay,
                       batch_size=args.batch_size, max_epochs=args.max_epochs, patience=args.patience,
                       warmup_epochs=args.warmup_epochs, class_weight=args.class_weight, monitor=args.monitor,
                       seed=seed, accelerator=args.accelerator, augment=_json_arg(args.augment, "--augment"))


def _json_arg(text: str | None, flag: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{flag} is not valid JSON ({err}).", hint=f"e.g. {flag} '{{\"drop_prob\": 0.5}}'.") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object.", hint=f"e.g. {flag} '{{\"drop_prob\": 0.5}}'.")
    return value


# -- finetune ---------------------------------------------------------------------------------------
def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="registered task (neurofm list tasks) or a task YAML file")
    p.add_argument("--model", help="registered model: neurofm encoder, braindecode or classical (neurofm list models)")
    p.add_argument("--init", help="exported encoder directory (safetensors + config.json) or shipped weights name (neurofm list models --pretrained)")
    p.add_argument("--out", required=True, help="output directory: decoder/, results.json, config.json, logs/")
    p.add_argument("--head", choices=["linear", "mlp", "attention", "channels"],
                   help="head on encoder tokens (default linear: mean of all tokens; channels: one pooled vector per "
                        "channel, then linear)")
    p.add_argument("--freeze", action="store_true", help="frozen encoder (with --head linear: a linear probe)")
    p.add_argument("--normalize", choices=["channel", "window", "none"],
                   help="input z-score: channel (training-split statistics, default), window, none")
    p.add_argument("--model-kwargs", help="JSON object of extra model constructor arguments")
    p.add_argument("--head-kwargs", help="JSON object of head arguments, e.g. '{\"hidden\": 128}'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--align", choices=["none", "subject", "recording"], default="none",
                   help="align each subject/recording with its own unlabelled statistics (train and test): "
                        "Euclidean alignment (neural), re-centering (tangent space), standardisation (band power)")
    p.add_argument("--adapt", choices=["none", "adabn", "adabn-features"], default="none",
                   help="neural models, with --align: one-subject training batches and BatchNorm statistics recomputed "
                        "from each new subject's own windows (adabn); adabn-features also standardises the "
                        "classifier's input features per subject (braindecode models; for neurofm encoders the head's "
                        "pooled tokens, also with --freeze)")
    p.add_argument("--cv", type=int, metavar="K",
                   help="leave-subjects-out cross-validation with K folds (nested validation subjects)")
    p.add_argument("--dataset", help="use another registered dataset with the same layout")
    p.add_argument("--root", help="dataset root with the same layout")
    _data_arguments(p)
    _train_arguments(p)


def _finetune_kwargs(args: argparse.Namespace) -> dict:
    """The options ``neurofm finetune`` passes to :func:`finetune` and, with ``--cv``, to :func:`finetune_cv`."""
    return dict(out=args.out, init=args.init, head=args.head, freeze=args.freeze, normalize_mode=args.normalize,
                model_kwargs=_json_arg(args.model_kwargs, "--model-kwargs"),
                head_kwargs=_json_arg(args.head_kwargs, "--head-kwargs"), train=_train_config(args, args.seed),
                dataset=args.dataset, root=args.root, cache=args.cache, n_jobs=args.n_jobs, verbose=not args.quiet,
                threads=args.threads, align=args.align, adapt=args.adapt)


def run_finetune(args: argparse.Namespace) -> int:
    from neurofm.decoding.finetune import finetune

    if args.cv is not None:
        return _run_finetune_cv(args)
    res = finetune(args.task, args.model, **_finetune_kwargs(args))
    r = res.record
    metric = r["metric"]
    print(f"{r['task']} · {r['model']} ({r['family']}), seed {r['seed']}: windows train/val/test "
          f"{r['n']['train']}/{r['n']['val']}/{r['n']['test']}")
    for split in ("val", "test"):
        others = ", ".join(f"{k} {v:.3f}" for k, v in res.metrics[split].items() if k != metric and v == v)
        print(f"  {split:<4} {metric} {res.metrics[split][metric]:.3f}  ({others})")
    for note in r.get("notes", []):
        print(f"  note: {note}")
    print(f"decoder: {Path(args.out).resolve() / 'decoder'}  (neurofm evaluate decoder --checkpoint {args.out} ...)")
    return 0


def _run_finetune_cv(args: argparse.Namespace) -> int:
    from neurofm.decoding.cv import finetune_cv

    res = finetune_cv(args.task, args.model, folds=args.cv, **_finetune_kwargs(args))
    r = res.record
    metric = r["metric"]
    t = res.summary["test"][metric]
    print(f"{r['task']} · {r['model']} ({r['family']}), seed {r['seed']}, {args.cv}-fold leave-subjects-out CV: "
          f"test {metric} {t['mean']:.3f} ± {t['std']:.3f} (95 % CI {t['ci_low']:.3f}-{t['ci_high']:.3f} over folds)")
    for f in res.folds:
        print(f"  fold {f['fold']}: test subjects {', '.join(f['subjects']['test'])} · val "
              f"{', '.join(f['subjects']['val'])}: {metric} {f['test'][metric]:.3f}")
    if res.subject_level:
        print(f"  subject-level {metric} {res.subject_level['metrics'][metric]:.3f} "
              f"({len(res.subject_level['subjects'])} subjects, mean of trial probabilities)")
    print(f"results: {Path(args.out).resolve() / 'cv.json'}  (decoders in fold*/decoder)")
    return 0


# -- evaluate decoder -------------------------------------------------------------------------------
def add_evaluate_decoder_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="decoder directory (finetune --out DIR, or DIR/decoder)")
    p.add_argument("--dataset", help="registered dataset name (default: the task's)")
    p.add_argument("--root", help="dataset root with the same layout (e.g. other subjects)")
    p.add_argument("--split", choices=["all", "train", "val", "test"], default="all",
                   help="score every window (default) or one split of the task's protocol")
    p.add_argument("--out", required=True, help="results JSON file")
    _data_arguments(p)


def run_evaluate_decoder(args: argparse.Namespace) -> int:
    from neurofm.decoding.evaluate import evaluate_decoder

    res = evaluate_decoder(args.checkpoint, dataset=args.dataset, root=args.root, split=args.split, cache=args.cache,
                           n_jobs=args.n_jobs, verbose=not args.quiet, out=args.out)
    metric = res["metric"]
    others = ", ".join(f"{k} {v:.3f}" for k, v in res["metrics"].items() if k != metric and v == v)
    print(f"{res['task']} · {res['model']} on {res['dataset']} ({len(res['subjects'])} subject(s), "
          f"{res['n_windows']} windows): {metric} {res['metrics'][metric]:.3f}  ({others})")
    for note in res.get("notes", []):
        print(f"  note: {note}")
    print(f"results: {Path(args.out).resolve()}")
    return 0


# -- benchmark --------------------------------------------------------------------------------------
def add_benchmark_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", nargs="+", required=True, help="registered task names or task YAML files")
    p.add_argument("--models", nargs="+", required=True, help="registered models, or LABEL=MODEL to run one twice")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per (task, model)")
    p.add_argument("--out", required=True, help="directory: results.md/json, cells/, confusion/, config.json")
    p.add_argument("--init", nargs="*", default=[], metavar="LABEL=DIR", help="exported encoder to start a model from")
    p.add_argument("--head", nargs="*", default=[], metavar="LABEL=KIND", help="head per encoder model")
    p.add_argument("--freeze", nargs="*", default=[], metavar="LABEL", help="frozen encoders (probes)")
    p.add_argument("--align", nargs="*", default=[], metavar="LABEL=UNIT",
                   help="subject alignment per model: LABEL=subject|recording (see finetune --align)")
    p.add_argument("--adapt", nargs="*", default=[], metavar="LABEL=MODE",
                   help="subject-adaptive normalisation per neural model: LABEL=adabn|adabn-features (see finetune --adapt)")
    p.add_argument("--cv", type=int, metavar="K", help="leave-subjects-out CV with K folds (same folds for every model)")
    p.add_argument("--model-kwargs", nargs="*", default=[], metavar="LABEL=JSON", help="constructor arguments per model")
    p.add_argument("--train-kwargs", nargs="*", default=[], metavar="LABEL=JSON",
                   help="training overrides per model, e.g. eegnet='{\"lr\": 0.003}'")
    p.add_argument("--baseline", default="bandpower-lr", help="label of the reference model for ratios")
    p.add_argument("--save-decoders", action="store_true", help="also write every cell's decoder directory")
    _data_arguments(p)
    _train_arguments(p)


def run_benchmark(args: argparse.Namespace) -> int:
    from neurofm.decoding.benchmark import parse_models
    from neurofm.decoding.benchmark import run_benchmark as _run

    if args.seeds < 1:
        raise ConfigError("--seeds must be at least 1.", hint="e.g. --seeds 3.")
    models = parse_models(args.models, init=args.init, head=args.head, freeze=args.freeze,
                          model_kwargs=args.model_kwargs, train_kwargs=args.train_kwargs, align=args.align,
                          adapt=args.adapt)
    summary = _run(args.tasks, models, seeds=args.seeds, out=args.out, train=_train_config(args), cache=args.cache,
                   n_jobs=args.n_jobs, verbose=not args.quiet, threads=args.threads, save_decoders=args.save_decoders,
                   baseline=args.baseline, cv=args.cv)
    print((Path(args.out) / "results.md").read_text())
    print(f"{summary['ran']} cell(s) run, {summary['skipped']} already done, {summary['failed']} failed; "
          f"outputs in {Path(args.out).resolve()}", file=sys.stderr if summary["failed"] else sys.stdout)
    return 1 if summary["failed"] else 0
