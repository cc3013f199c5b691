"""The ``neurofm`` command line.

Sub-commands import their heavy dependencies lazily, so ``neurofm list`` stays fast
and never imports torch. User mistakes (a missing file, an unknown key) print one
line naming the input and the fix and exit non-zero; tracebacks are kept for bugs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from neurofm import __version__
from neurofm._errors import NeurofmError


def _cmd_list(args: argparse.Namespace) -> int:
    if args.pretrained:
        return _list_pretrained(args)
    from neurofm import registry

    found = registry.entries(args.kind, args.pattern)
    if not found:
        print(f"no {args.kind} match '{args.pattern}'")
        return 0
    width = max(len(e.name) for e in found)
    for e in found:
        print(f"{e.name:<{width}}  {e.description}")
    return 0


def _list_pretrained(args: argparse.Namespace) -> int:
    from neurofm.models._pretrained import WEIGHTS_ROOT, describe, shipped

    if args.kind != "models":
        raise NeurofmError(f"--pretrained lists models, not {args.kind}.", hint="run `neurofm list models --pretrained`.")
    found = shipped(args.pattern)
    if not found:
        print(f"no shipped weights match '{args.pattern}' (in {WEIGHTS_ROOT})")
        return 0
    width = max(len(n) for n in found)
    for name, directory in found.items():
        d = describe(directory)
        print(f"{name:<{width}}  {d['model']}, {d['modality']} {d['sfreq']:g} Hz x {d['n_times']} samples, "
              f"{d['size_mb']} MB  ({directory / 'MODEL_CARD.md'})")
    return 0


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess, summarize

    recipe = resolve_recipe(args.pipeline, args.config)
    if args.exact:
        recipe = recipe.model_copy(update=dict(mode="exact"))
    dataset = get_dataset(args.dataset, args.root)
    if args.subject_pattern is not None:
        from neurofm._errors import ConfigError
        from neurofm.datasets.generic import Folder, compile_subject_pattern

        if not isinstance(dataset, Folder):
            raise ConfigError("--subject-pattern applies to folder:PATH datasets only.", source=args.dataset,
                              hint="registered and bids: datasets know their subjects; drop the option.")
        dataset.subject_pattern = compile_subject_pattern(args.subject_pattern)
    result = preprocess(dataset, recipe, args.out, n_jobs=args.n_jobs, shard=args.shard, report=not args.no_report,
                        force=args.force, limit=args.limit, verbose=not args.quiet, line_freq=args.line_freq,
                        sfreq=args.sfreq, max_memory=args.max_memory)
    print(summarize(result), file=sys.stderr if result.failed else sys.stdout)
    print(f"store: {Path(args.out).resolve()}  (neurofm info {args.out})")
    return result.exit_code


def _cmd_info(args: argparse.Namespace) -> int:
    from neurofm.data.dataset import open_manifest

    m = open_manifest(args.store)
    if args.json:
        print(json.dumps({k: v for k, v in m.items() if k != "recordings"}, indent=1))
        return 0
    recs = m["recordings"]
    print(f"store       {Path(args.store).resolve()}")
    print(f"dataset     {m['dataset'].get('name')}  ({m['dataset'].get('root')})")
    print(f"recipe      {m['recipe']['name']}  hash {m['recipe_hash']}")
    print(f"recordings  {m['n_recordings']}  subjects {len({r['subject'] for r in recs})}  windows {m['n_windows']}")
    if recs:
        shapes = Counter((r["shape"][1], r["shape"][2], r["sfreq"]) for r in recs)
        for (nc, nt, sf), cnt in shapes.most_common(5):
            print(f"shape       {cnt} recording(s): {nc} channels × {nt} samples at {sf:g} Hz, units {recs[0]['units']}"
                  f", patch {recs[0].get('patch_size')} samples")
        labels = Counter(lab for r in recs for lab in r["labels"])
        print("labels      " + (", ".join(f"{k or '(none)'}: {v}" for k, v in sorted(labels.items())) or "none"))
        bads = sum(len(r["bads"]) for r in recs)
        print(f"bad chans   {bads} marked ({sum(len(r['interpolated']) for r in recs)} interpolated)")
    if m.get("stale"):
        print(f"stale       {len(m['stale'])} recording(s) made with another recipe (rerun preprocess to redo)")
    if m.get("failures"):
        print(f"failed      {len(m['failures'])}:")
        for f in m["failures"]:
            print(f"  - {f['error']}")
    return 0


def _cmd_connectome(args: argparse.Namespace) -> int:
    from neurofm.connectome import outputs
    from neurofm.connectome.pipeline import ConnectomeConfig, run_connectome
    from neurofm.connectome.sources import sources_from_dataset, sources_from_store
    from neurofm.data.store import write_json

    if (args.store is None) == (args.dataset is None):
        from neurofm._errors import ConfigError

        raise ConfigError("give exactly one of --store DIR or --dataset NAME.", hint="see `neurofm connectome -h`.")
    if args.store is not None:
        sources = sources_from_store(args.store)
    else:
        from neurofm.datasets import get_dataset

        sources = sources_from_dataset(get_dataset(args.dataset, args.root), types=args.types, limit=args.limit,
                                       max_seconds=args.max_seconds)
    cfg = ConnectomeConfig(method=args.method, band=tuple(args.band),
                           window_s=args.window_s, step_s=args.step_s, rank=args.rank,
                           ranks=tuple(range(args.ranks[0], args.ranks[1] + 1)), n_replicates=args.replicates,
                           n_surrogates=args.surrogates, seed=args.seed)
    result = run_connectome(sources, cfg)
    paths = outputs.save(result, args.out, report=not args.no_report)
    write_json(Path(args.out) / "config.json", dict(vars(args), func=None))
    print(f"{len(sources)} recording(s), {len(result.ch_names)} channels, tensor {result.tensor_shape}, "
          f"rank {result.rank}, fit {result.fit:.4f}")
    for c in result.components:
        extra = f", surrogate p={c.p_value:.3g}" if c.p_value is not None else ""
        if c.contrast:
            extra += f", {c.contrast['test']} p={c.contrast['p_value']:.3g}"
        print(f"  component {c.index}: weight {c.weight:.3g}{' (flat baseline)' if c.flat else ''}, "
              f"{c.communities.n_communities} communities, modularity {c.communities.modularity:.3f}{extra}")
    print("outputs: " + ", ".join(str(p) for p in paths.values()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurofm", description="Brain-signal foundation models.")
    parser.add_argument("--version", action="version", version=f"neurofm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered datasets, pipelines, models or tasks")
    p.add_argument("kind", choices=["datasets", "pipelines", "models", "tasks"])
    p.add_argument("pattern", nargs="?", default="*", help="glob on names, e.g. 'eeg*'")
    p.add_argument("--pretrained", action="store_true", help="with 'models': the weights shipped in the package")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("preprocess", help="run a preprocessing recipe over a dataset into a window store")
    p.add_argument("--dataset", required=True, help="registered name, folder:PATH or bids:PATH")
    p.add_argument("--root", help="override the dataset's root folder (same layout)")
    p.add_argument("--pipeline", help="registered recipe name (neurofm list pipelines)")
    p.add_argument("--config", help="recipe YAML; with --pipeline, its keys override the named recipe's")
    p.add_argument("--out", required=True, help="store directory (created; reruns resume)")
    p.add_argument("--n-jobs", type=int, default=1, help="parallel recordings (-1: all cores)")
    p.add_argument("--exact", action="store_true",
                   help="MNE's filters and FFT resampling bit for bit, whole recordings in memory (recipe mode: exact)")
    p.add_argument("--max-memory", default=None,
                   help="working memory of the streaming (fast) engine, split between --n-jobs workers (default 512M)")
    p.add_argument("--shard", help="I/N: process every N-th recording starting at I (SLURM arrays, 0-based)")
    p.add_argument("--force", action="store_true",
                   help="redo recordings even if up to date; rebuild a store made from another dataset or recipe")
    p.add_argument("--line-freq", type=float, choices=[50.0, 60.0], metavar="{50,60}",
                   help="power-line frequency (Hz) of every recording, for the notch (overrides the dataset's)")
    p.add_argument("--sfreq", type=float,
                   help="sampling rate (Hz) of Muse/OpenBCI tables that have no timestamps (ignored otherwise)")
    p.add_argument("--subject-pattern", metavar="REGEX",
                   help="folder: datasets: regular expression whose first group, searched in each path below the "
                        "root, is the subject (default: BIDS sub- entity, 'SubjectNN', Sleep-EDF, PhysioNet names)")
    p.add_argument("--limit", type=int, help="process at most this many recordings")
    p.add_argument("--no-report", action="store_true", help="skip the QC HTML report")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_preprocess)

    p = sub.add_parser("connectome", help="dynamic functional connectome: affinities → NTF → communities")
    p.add_argument("--store", help="a store made by neurofm preprocess (contiguous windows)")
    p.add_argument("--dataset", help="registered name, folder:PATH or bids:PATH (raw recordings)")
    p.add_argument("--root", help="override the dataset's root")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--method", default="coderivative", help="coderivative | aec | plv | wpli | coh")
    p.add_argument("--band", type=float, nargs=2, default=[8.0, 13.0], metavar=("L_FREQ", "H_FREQ"))
    p.add_argument("--window-s", type=float, default=2.0)
    p.add_argument("--step-s", type=float, default=1.0)
    p.add_argument("--rank", type=int, help="fixed rank (default: choose by a rank scan)")
    p.add_argument("--ranks", type=int, nargs=2, default=[2, 6], metavar=("MIN", "MAX"), help="rank scan range")
    p.add_argument("--replicates", type=int, default=4, help="NTF replicates per rank")
    p.add_argument("--surrogates", type=int, default=5, help="phase-randomised surrogates for p-values (0: none)")
    p.add_argument("--types", nargs="+", help="channel types to use with --dataset (default: by modality)")
    p.add_argument("--limit", type=int, help="use at most this many recordings")
    p.add_argument("--max-seconds", type=float, help="use at most this many seconds of each recording")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-report", action="store_true")
    p.set_defaults(func=_cmd_connectome)

    sub.add_parser("pretrain", add_help=False,
                   help="train a tokenizer / masked model / Du-IN with LightningCLI: "
                        "neurofm pretrain --config configs/pretrain/NAME.yaml [--config configs/trainer/cpu.yaml] [...]")

    p = sub.add_parser("export", help="export a Lightning checkpoint to safetensors + contract (+ sha256)")
    p.add_argument("--checkpoint", required=True, help=".ckpt written by neurofm pretrain")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_cmd_export)

    from neurofm.decoding import (
        cli as heads_cli,  # argument definitions only; torch loads when a command runs
    )

    p = sub.add_parser("finetune", help="train a decoder (encoder + head, braindecode or classical) on a task")
    heads_cli.add_finetune_arguments(p)
    p.set_defaults(func=heads_cli.run_finetune)

    p = sub.add_parser("evaluate", help="score a trained model on data")
    evaluate = p.add_subparsers(dest="evaluate_what", required=True)
    q = evaluate.add_parser("decoder", help="score a decoder checkpoint on a dataset (e.g. other subjects, --root)")
    heads_cli.add_evaluate_decoder_arguments(q)
    q.set_defaults(func=heads_cli.run_evaluate_decoder)
    q = evaluate.add_parser("tokenizer", help="fidelity per band, bits, code usage, throughput, DCT reference → JSON + HTML")
    q.add_argument("--checkpoint", required=True, help="exported tokenizer directory, shipped weights name (neurofm list models --pretrained) or a .ckpt from neurofm pretrain")
    q.add_argument("--store", required=True, help="store made by neurofm preprocess with the tokenizer's recipe")
    q.add_argument("--out", required=True, help="JSON file; the HTML report goes beside it")
    q.add_argument("--subjects", nargs="+", help="evaluate only these subjects (e.g. held-out ones)")
    q.add_argument("--batch-size", type=int, default=16)
    q.add_argument("--codes", nargs="+", type=int, metavar="K",
                   help="add rate points that end inside a level: decode from the first K codes of each token "
                        "(tokenizers trained with code_prefix; neurorvq-tiny: 15 codes = 158 bits/ch-s)")
    q.add_argument("--beam", type=int, default=1, metavar="B",
                   help="encode each rate by beam search over the residual levels, keeping B candidates (1: greedy; "
                        "16 lowers z-MSE ~15 %% at the same bits, at ~B× the quantizer's cost)")
    q.add_argument("--variable-bits", nargs="+", type=float, metavar="BITS",
                   help="add variable-rate points: each token gets its own number of codes so that the mean rate "
                        "(codes + the counts' entropy + side information) is BITS per channel-second")
    q.add_argument("--no-report", action="store_true")
    q.set_defaults(func=_cmd_evaluate_tokenizer)
    q = evaluate.add_parser("codes", help="which tokenizer codes are enriched in which condition (labelled store)")
    q.add_argument("--checkpoint", required=True, help="exported tokenizer directory or shipped weights name")
    q.add_argument("--store", required=True, help="labelled store (e.g. EEGMAT rest vs arithmetic)")
    q.add_argument("--out", required=True, help="JSON file; a PNG plot goes beside it")
    q.add_argument("--level", type=int, default=0, help="residual level whose codes are tested (0 = coarsest)")
    q.add_argument("--top", type=int, default=10, help="codes listed per condition")
    q.set_defaults(func=_cmd_evaluate_codes)

    p = sub.add_parser("benchmark", help="tasks × models × seeds → table (mean ± std, 95 %% CI), confusion plots")
    heads_cli.add_benchmark_arguments(p)
    p.set_defaults(func=heads_cli.run_benchmark)

    p = sub.add_parser("info", help="print what a store holds")
    p.add_argument("store")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=_cmd_info)
    return parser


def _cmd_export(args: argparse.Namespace) -> int:
    from neurofm.training.export import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out)
    print(f"exported {args.checkpoint} -> {out}")
    return 0


def _cmd_evaluate_tokenizer(args: argparse.Namespace) -> int:
    from neurofm.evaluation.tokenizer import run_evaluate_tokenizer

    res = run_evaluate_tokenizer(args.checkpoint, args.store, args.out, subjects=args.subjects, codes=args.codes,
                                 beam=args.beam, variable_bits=args.variable_bits, batch_size=args.batch_size,
                                 report=not args.no_report, progress=sys.stderr.isatty())
    n_subj = res["points"][0]["zmse_ci"]["n"]

    def ci(p: dict) -> str:   # the t-interval of the mean z-MSE over subjects (one subject: no interval)
        c = p["zmse_ci"]
        return f"[{c['ci_low']:.4f}, {c['ci_high']:.4f}]" if c["n"] > 1 else f"{'—':^16s}"

    print(f"{'levels':>6s} {'bits':>6s} {'entropy':>7s} {'z-MSE':>8s} {f'95% CI ({n_subj} subj.)':>16s} {'DCT':>8s} "
          f"{'r':>6s}  per-band r")
    for p, d in zip(res["points"], res.get("dct", [{}] * len(res["points"])), strict=True):
        bands = " ".join(f"{k}={v:.3f}" for k, v in p["bands"].items())
        print(f"{p['levels']!s:>6s} {p['bits_nominal']:6.0f} {p['bits_entropy']:7.0f} {p['zmse']:8.4f} {ci(p):>16s} "
              f"{d.get('zmse', float('nan')):8.4f} {p['r']:6.3f}  {bands}")
    for p in res["variable"]:
        bands = " ".join(f"{k}={v:.3f}" for k, v in p["bands"].items())
        print(f"{'var':>6s} {p['bits_nominal']:6.1f} {'':>7s} {p['zmse']:8.4f} {ci(p):>16s} "
              f"{p.get('dct', {}).get('zmse', float('nan')):8.4f} "
              f"{p['r']:6.3f}  {bands}  ({p['mean_codes']:.2f} codes per token on average, "
              f"{p['min_codes']}-{p['max_codes']}; counts {p['count_entropy_bits']:.2f} bits)")
    print(f"code usage: min {res['code_usage']['min_usage_pct']:.1f} % of codes per level; "
          f"encode {res['encode_channel_seconds_per_s']:.0f} channel-seconds/s")
    print(f"wrote {args.out}" + ("" if args.no_report else f" and {Path(args.out).with_suffix('.html')}"))
    return 0


def _cmd_evaluate_codes(args: argparse.Namespace) -> int:
    from neurofm.evaluation.interpret import run_code_enrichment

    res = run_code_enrichment(args.checkpoint, args.store, args.out, level=args.level, top=args.top)
    for cond, rows in res["enriched"].items():
        best = ", ".join(f"s{r['scale']}:{r['code']} (×{r['ratio']:.1f}, q={r['q_value']:.2g})" for r in rows[:5])
        print(f"{cond}: {best or 'no code enriched at q < 0.05'}")
    print(f"wrote {args.out}")
    return 0


def _run_pretrain(argv: list[str]) -> int:
    """``neurofm pretrain ...`` hands every argument to LightningCLI (its own --help and config checks)."""
    from neurofm.training.cli import main as pretrain_main

    try:
        return pretrain_main(argv)
    except NeurofmError as err:
        print(f"neurofm pretrain: error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "pretrain":
        return _run_pretrain(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NeurofmError as err:
        print(f"neurofm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
