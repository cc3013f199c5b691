"""Benchmark the tokenizers on held-out subjects: NeuroRVQ vs LaBraM-style VQ vs an MLP+RVQ reference vs a fitted
transform codec vs DCT.

One run, same windows, same wall-clock budget and the same training loop for every model: ``neurorvq-tiny``,
``labram-vq-tiny`` and the unregistered MLP → ResidualVQ → MLP reference (``scripts/bench/mlp_rvq.py``) at
the same bits (40 levels × 1024 codes = 400 code bits per channel-second, evaluated every 4 levels = 40 bits,
the rate step of neurorvq-tiny's 4 scales × 1024 codes). Training data: the eeg-200hz stores of EEGMAT and
EEGMMIDB (0.1–75 Hz, average reference, 200 Hz, 4-s windows of 1-s patches) minus the held-out EEGMAT
subjects; evaluation on the held-out subjects at every rate, beside the DCT codec at the same rates, with per-band r,
code usage per level, steps and steps/s. ``pca-rvq-reference`` (``scripts/bench/pca_rvq.py``: PCA + residual
k-means, the same codes and rates as neurorvq-tiny) is fitted, not trained, on training patches in a few minutes.
Each model writes ``<work>/results/<name><tag>.json``; the summary merges them, prints ratios (model z-MSE /
reference z-MSE, / DCT z-MSE) and the goal checks, and writes ``--out``.

Run everything in one process (``--threads 1`` per model), or each model in its own process on its own core
and then the summary alone::

    python scripts/bench/tokenizer.py --budget-min 15                       # all four, one after the other
    python scripts/bench/tokenizer.py --models neurorvq-tiny --seed 1 --tag=_seed1 --no-summary   # another seed
    python scripts/bench/tokenizer.py --models neurorvq-tiny --no-summary    # one model (e.g. per core)
    python scripts/bench/tokenizer.py --models                               # summary of what --work holds

Recordings from another lab, never trained on (UCI alcoholism, 16 subjects, 256 Hz; its 1-s trials laid end to end
are exactly one patch each at 200 Hz, so 4-s windows of 4 trials keep the tokenizers' contract), preprocessed like the
training data (``eeg-200hz``), or without any filter (``scripts/bench/uci-200hz-4s.yaml``), with the weights a
``--save`` run left::

    neurofm preprocess --dataset uci-alcohol --pipeline eeg-200hz --out out/bench/uci-200hz-4s
    python scripts/bench/tokenizer.py --models neurorvq-tiny --reevaluate --saved-tag= --tag=_uci \
        --eval-store out/bench/uci-200hz-4s --no-summary
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
TEST = [f"{i:02d}" for i in range(18, 24)]
VALIDATION = [f"{i:02d}" for i in range(12, 18)]  # --validation: tune here, never on TEST
MAX_CHANS = 16  # random channel subset per training window: more, cheaper steps on a CPU
REFERENCE = "mlp-rvq-reference"
TRANSFORM = "pca-rvq-reference"   # not trained by gradient: PCA + residual k-means, see pca_rvq.py
MODELS = ["neurorvq-tiny", "labram-vq-tiny", REFERENCE, TRANSFORM]
TRANSFORM_PATCHES = 60_000        # training patches the transform reference is fitted on
GOALS = dict(zmse_416=0.015, zmse_160=0.05, r_beta=0.95, r_gamma=0.8, level_gain=0.05, usage_pct=90.0)


def ensure_store(dataset: str, out: Path) -> Path:
    from neurofm.data.store import MANIFEST
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess

    if not (out / MANIFEST).exists():
        preprocess(get_dataset(dataset), resolve_recipe("eeg-200hz"), out, n_jobs=1, report=False, verbose=False)
    return out


def build_model(name: str, kwargs: dict):
    sys.path.insert(0, str(Path(__file__).parent))
    if name == REFERENCE:
        from mlp_rvq import MLPRVQ

        return MLPRVQ(**kwargs), list(range(4, 41, 4))
    if name == TRANSFORM:
        from pca_rvq import PCARVQ

        model = PCARVQ(**kwargs)
        return model, list(range(1, model.n_levels + 1))
    from neurofm.registry import create_model

    model = create_model(name, **kwargs)
    return model, list(range(1, model.n_levels + 1))


def goal_codes(model, store) -> list[int]:
    """For a tokenizer trained with code-prefix dropout, the longest code prefix within the 160-bit goal on ``store``'s
    windows (it ends inside a level: one rate point between two level prefixes); nothing for the others."""
    from neurofm.evaluation.codec import SIDE_BITS_PER_CHANNEL_WINDOW

    if not getattr(getattr(model, "quantizer", None), "code_prefix", False):
        return []
    sfreq, window_s = store.sfreq(), store.recordings[0]["n_times"] / store.sfreq()
    bits_per_code = model.bits_per_token(n_codes=1) / (model.patch_size / sfreq)
    k = int((160 - SIDE_BITS_PER_CHANNEL_WINDOW / window_s) // bits_per_code)
    return [k] if k % model.n_scales else []


VARIABLE_BITS = [156.0, 158.0, 160.0]   # variable-rate targets (bits/ch-s, side information included) around the goal


def beam_searchable(model) -> bool:
    """Residual codes in plain Euclidean codebooks: the tokenizers with a fast quantizer and both references."""
    quantizer = getattr(model, "quantizer", None)
    return getattr(quantizer, "fast", False) if quantizer is not None else hasattr(model, "n_levels") \
        and model.n_levels > 1


def fit_transform(model, loader, n_patches: int, seed: int = 0) -> dict:
    """Fit the PCA + k-means reference on ``n_patches`` z-scored training patches (all channels of each window)."""
    import torch
    from einops import rearrange

    t0 = time.perf_counter()
    chunks, n = [], 0
    for batch in loader:
        patches, valid, _, _ = model._tokens(batch["x"], batch["mask"])     # as the model codes them
        chunks.append(rearrange(patches[valid], "n p s -> (n p) s"))
        n += len(chunks[-1])
        if n >= n_patches:
            break
    patches = torch.cat(chunks)[:n_patches]
    iters = 15
    model.fit(patches, iters=iters, seed=seed)
    fit_s = time.perf_counter() - t0
    return dict(steps=iters * model.n_levels * model.n_scales, train_s=round(fit_s, 1),
                steps_per_s=round(iters * model.n_levels * model.n_scales / fit_s, 3), curve=[],
                fitted_on_patches=int(len(patches)))


def train(model, loader, budget_s: float, *, lr: float = 2e-3, warmup: int = 50, seed: int = 0,
          log_every: int = 50) -> dict:
    """AdamW, linear warm-up then cosine decay over the *wall-clock* budget (to 5 %), gradient clip 1.0."""
    import torch

    from neurofm.training.tokenizer import crop_channels

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=0.05)
    model.train()
    steps, curve, t0 = 0, [], time.perf_counter()
    it = iter(loader)
    while (elapsed := time.perf_counter() - t0) < budget_s:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        batch = crop_channels(batch, MAX_CHANS, gen)
        frac = min(elapsed / budget_s, 1.0)
        scale = min(1.0, (steps + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        out = model(batch["x"], pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])
        out.losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps += 1
        if steps % log_every == 0:
            curve.append(dict(step=steps, s=round(elapsed, 1), **{k: round(float(v.detach()), 5) for k, v in out.losses.items()}))
    train_s = time.perf_counter() - t0
    return dict(steps=steps, train_s=round(train_s, 1), steps_per_s=round(steps / train_s, 3), curve=curve)


def unquantized_zmse(model, store, indices: np.ndarray) -> float | None:
    """z-MSE of the decoder fed the encoder's latents *before* quantization: the autoencoder's own floor, which no
    number of levels can beat (None for tokenizers without an unquantized latent)."""
    import torch

    from neurofm.evaluation.tokenizer import _batches

    if not hasattr(model, "reconstruct_unquantized"):   # the reference is not a neurofm Tokenizer
        return None
    model.eval()
    num = den = 0.0
    with torch.no_grad():
        for b in _batches(store, indices, 16):
            try:
                out = model.reconstruct_unquantized(b["x"], pos=b["pos"], mask=b["mask"], ch_names=b["ch_names"])
            except NotImplementedError:
                return None
            err = ((out["recon"] - out["target"]) ** 2)[out["valid"]]
            num, den = num + float(err.sum()), den + err.numel()
    return num / den


def run_model(name: str, args, stores: list[Path]) -> dict:
    import torch

    from neurofm._resources import pretrain_lr
    from neurofm.data.datamodule import StoreDataModule
    from neurofm.data.dataset import WindowStore
    from neurofm.evaluation.tokenizer import evaluate_tokenizer

    held_out = args.test_subjects
    extra_held = [f"{WindowStore(args.extra_store).manifest['dataset']}:{s}" for s in args.extra_held_out] \
        if args.extra_store else []
    dm = StoreDataModule([str(s) for s in stores] + ([args.extra_store] if args.extra_store else []), batch_size=16,
                         val_subjects=[], test_subjects=[f"eegmat:{s}" for s in held_out] + extra_held, seed=args.seed)
    dm.setup()
    torch.manual_seed(args.seed)
    saved = Path(args.work) / "results" / f"{name}{args.tag if args.saved_tag is None else args.saved_tag}"
    before = json.loads(saved.with_suffix(".json").read_text()) if args.reevaluate else {}
    kwargs = before.get("model_kwargs") if args.reevaluate else \
        json.loads(args.model_kwargs).get(name, {}) if args.model_kwargs else {}
    model, levels = build_model(name, kwargs)
    n_params = sum(p.numel() for p in model.parameters())
    lr = args.lr or pretrain_lr(name) or 2e-3  # the reference has no pretrain config
    if args.reevaluate:   # the weights a --save run left: same training, this code's evaluation
        model.load_state_dict(torch.load(saved.with_suffix(".pt"), weights_only=True))
        info = {k: before[k] for k in ("steps", "train_s", "steps_per_s", "date", "load_average_1min_end", "budget_min",
                                       "threads", "seed") if k in before}
        info = dict(info, trained=info.pop("date", None), reevaluated=datetime.date.today().isoformat())
        lr = before.get("lr", lr)
        print(f"[{name}] re-evaluating the weights saved by a run of {info['trained']} ({saved.with_suffix('.pt')})",
              flush=True)
    elif name == TRANSFORM:   # fitted, not trained: its time is what the fit takes (a few minutes at most)
        print(f"[{name}] fitting PCA + k-means on {TRANSFORM_PATCHES} training patches (no gradient training)", flush=True)
        info = fit_transform(model, dm.train_dataloader(), TRANSFORM_PATCHES, seed=args.seed)
    else:
        print(f"[{name}] {n_params / 1e6:.2f} M parameters, training {args.budget_min} min, learning rate {lr:g}",
              flush=True)
        info = train(model, dm.train_dataloader(), args.budget_min * 60, lr=lr, seed=args.seed)
    if args.save and not args.reevaluate:   # the trained weights, to study them after the run (build_model(name, model_kwargs) + load)
        torch.save(model.state_dict(), Path(args.work) / "results" / f"{name}{args.tag}.pt")
    eval_ws = WindowStore(args.eval_store or stores[0])   # --eval-store: recordings from elsewhere, every subject
    test_idx = np.arange(len(eval_ws)) if args.eval_store and not args.eval_subjects else \
        np.flatnonzero(np.isin(eval_ws.subjects, args.eval_subjects or held_out))
    if not len(test_idx):
        raise SystemExit(f"no windows of subjects {args.eval_subjects or held_out} in {eval_ws.root}")
    t_eval = time.perf_counter()
    ev = evaluate_tokenizer(model, eval_ws, test_idx, batch_size=16, levels=levels, codes=goal_codes(model, eval_ws),
                            dct=not args.no_dct)
    ev.pop("_examples")
    ev["unquantized_zmse"] = unquantized_zmse(model, eval_ws, test_idx)
    if args.beam > 1 and beam_searchable(model):   # the same model and windows, each rate encoded by beam search
        t0 = time.perf_counter()
        bev = evaluate_tokenizer(model, eval_ws, test_idx, batch_size=16, levels=levels[:1] if args.beam_goal_only else levels,
                                 codes=goal_codes(model, eval_ws), dct=False if args.no_dct else "variable", beam=args.beam,
                                 variable_bits=VARIABLE_BITS)
        ev["beam_search"] = dict(width=args.beam, eval_s=round(time.perf_counter() - t0, 1), points=bev["points"],
                                 variable=bev["variable"],
                                 code_usage=bev["code_usage"],
                                 encode_channel_seconds_per_s=bev["encode_channel_seconds_per_s"])
    print(f"[{name}] {info['steps']} steps in {info['train_s']} s ({info['steps_per_s']} steps/s)", flush=True)
    evaluated = dict(eval_store=str(args.eval_store), test_subjects=sorted(set(eval_ws.subjects[test_idx].tolist()))) \
        if args.eval_store else {}
    return dict(params=n_params, model_kwargs=kwargs, lr=lr, **info, eval_s=round(time.perf_counter() - t_eval, 1), **ev,
                **evaluated)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, default=15.0, help="training wall-clock budget per model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=None,
                    help="learning rate of every model (default: each model's configs/pretrain/<name>.yaml, 2e-3 for the "
                         "reference)")
    ap.add_argument("--work", default=str(ROOT / "out" / "bench"))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench-tokenizer.json"))
    ap.add_argument("--models", nargs="*", default=MODELS, help=f"any of {MODELS}; none: only the summary")
    ap.add_argument("--model-kwargs", default="", help='JSON {"model name": {kwarg: value}} (trials)')
    ap.add_argument("--test-subjects", nargs="+", default=TEST, help="held-out EEGMAT subjects")
    ap.add_argument("--eval-subjects", nargs="+", default=None, help="evaluated subjects (default: the held-out ones)")
    ap.add_argument("--eval-store", default=None,
                    help="evaluate on this store instead (all its subjects, or --eval-subjects): recordings from another "
                         "lab, e.g. UCI preprocessed with eeg-200hz; with --reevaluate, the saved weights")
    ap.add_argument("--extra-store", default=None,
                    help="another store to train on as well (e.g. part of another lab's recordings), minus --extra-held-out")
    ap.add_argument("--extra-held-out", nargs="*", default=[], help="subjects of --extra-store kept out of training")
    ap.add_argument("--validation", action="store_true",
                    help=f"for tuning: hold out EEGMAT {VALIDATION[0]}-{VALIDATION[-1]} as well as the test subjects "
                         "and evaluate on them, not on the test subjects")
    ap.add_argument("--seed", type=int, default=0, help="initialisation, batch order and channel crops (0: the README's runs)")
    ap.add_argument("--no-dct", action="store_true")
    ap.add_argument("--beam", type=int, default=16,
                    help="also evaluate every residual model with beam-search encoding of this width (1: greedy only)")
    ap.add_argument("--no-summary", action="store_true")
    ap.add_argument("--save", action="store_true", help="also save each trained model's state dict beside its JSON")
    ap.add_argument("--saved-tag", default=None, help="--reevaluate: the tag of the saved run (default: --tag)")
    ap.add_argument("--beam-goal-only", action="store_true",
                    help="beam-search only the first level, the goal's code prefix and the variable-rate points (a wide "
                         "beam over every rate takes long)")
    ap.add_argument("--reevaluate", action="store_true",
                    help="no training: load the weights and training figures a --save run left in --work (same --tag) "
                         "and evaluate them again with this code")
    ap.add_argument("--tag", default="", help="suffix of the result file name (trials)")
    args = ap.parse_args()
    if args.validation:
        args.test_subjects, args.eval_subjects = VALIDATION + args.test_subjects, VALIDATION

    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    os.environ.setdefault("NEUROFM_DATA", str(SHARED))
    stores = [ensure_store("eegmat", work / "eegmat-200hz"), ensure_store("eegmmidb", work / "eegmmidb-200hz")]
    (work / "results").mkdir(parents=True, exist_ok=True)
    for name in args.models:
        res = run_model(name, args, stores)
        res = dict(dict(date=datetime.date.today().isoformat(), budget_min=args.budget_min, threads=args.threads,
                        seed=args.seed, machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                        load_average_1min_end=round(os.getloadavg()[0], 2),
                        test_subjects=args.eval_subjects or args.test_subjects, torch=torch.__version__),
                   **res)   # a re-evaluation keeps the training run's budget, threads and seed
        (work / "results" / f"{name}{args.tag}.json").write_text(json.dumps(res, indent=1))
    if args.no_summary:
        return 0
    result = dict(models={})
    for path in sorted((work / "results").glob("*.json")):
        result["models"][path.stem] = json.loads(path.read_text())
    if not result["models"]:
        print(f"nothing to summarise in {work / 'results'}")
        return 1
    summarise(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


def summarise(result: dict) -> None:
    models = result["models"]
    any_m = next(iter(models.values()))
    where = f"the recordings of {any_m['eval_store']}: subjects" if any_m.get("eval_store") else "held-out EEGMAT subjects"
    print(f"\nTokenizers on {where} {' '.join(any_m['test_subjects'])} "
          f"({any_m['n_windows']} windows), {any_m['date']}, {any_m['machine']}, {any_m['budget_min']} min per model")
    reference = models.get(REFERENCE, {})
    ref = {round(p["code_bits"]): p["zmse"] for p in reference.get("points", [])}
    ref_beam = {round(p["code_bits"]): p["zmse"] for p in reference.get("beam_search", {}).get("points", [])}
    print(f"{'model':18s} {'lv':>3s} {'bits':>5s} {'z-MSE':>7s} {'DCT':>7s} {'/DCT':>5s} {'/ref':>5s} {'r':>5s}  per-band r"
          "   (beam rows: beam-search encoding, /ref against the reference's beam-search row)")
    for name, m in models.items():
        # the DCT codec at each rate (from the greedy pass; a beam row, maybe of fewer rates, is paired by rate)
        dct = {round(d["target_bits"], 3): d for d in m.get("dct", [])}
        for label, pts, against in ((name, m["points"], ref),
                                    (f"  beam {m.get('beam_search', {}).get('width')}", m.get("beam_search", {}).get("points", []),
                                     ref_beam)):
            for p in pts:
                d = dct.get(round(p["bits_nominal"], 3), {})
                bands = " ".join(f"{k[:6]}={v:.2f}" for k, v in p["bands"].items())
                rz = against.get(round(p["code_bits"]))
                print(f"{label:18s} {p['levels']!s:>3s} {p['bits_nominal']:5.0f} {p['zmse']:7.4f} "
                      f"{d.get('zmse', float('nan')):7.4f} {p['zmse'] / max(d.get('zmse', float('nan')), 1e-9):5.1f} "
                      f"{p['zmse'] / rz if rz else float('nan'):5.2f} {p['r']:5.3f}  {bands}")
        for p in m.get("beam_search", {}).get("variable", []):
            bands = " ".join(f"{k[:6]}={v:.2f}" for k, v in p["bands"].items())
            d = p.get("dct", {}).get("zmse", float("nan"))
            print(f"{'  beam+variable':18s} {p['mean_codes']:3.1f} {p['bits_nominal']:5.1f} {p['zmse']:7.4f} {d:7.4f} "
                  f"{p['zmse'] / d:5.1f} {'':>5s} {p['r']:5.3f}  {bands}  (codes {p['min_codes']}-{p['max_codes']}, "
                  f"counts {p['count_entropy_bits']:.2f} bits/token)")
        usage = np.asarray(m["code_usage"]["usage_pct"])
        print(f"{'':18s} code usage per level (min over scales) {np.round(usage.min(0), 1).tolist()} %; "
              f"{m['steps']} steps in {m['train_s']} s = {m['steps_per_s']} steps/s")
        if m.get("unquantized_zmse") is not None:
            print(f"{'':18s} unquantized latents (the autoencoder's floor): z-MSE {m['unquantized_zmse']:.4f}")
    rvq = models.get("neurorvq-tiny")
    if not rvq:
        return
    pts = rvq["points"]
    checks = {}
    beam = rvq.get("beam_search")
    intervals = {}     # over the held-out subjects: the goal's z-MSE points, and paired ratios to the reference
    for label, points, with_interval in (
            ("", pts, True), (f" (beam {beam['width']})" if beam else "", beam["points"] if beam else [], False),
            (f" (beam {beam['width']}, variable rate)" if beam else "", beam.get("variable", []) if beam else [], True)):
        for limit, key in ((416, "zmse_416"), (160, "zmse_160")):
            if not points or ("variable" in label and limit != 160):   # variable-rate points sit around 160 bits
                continue
            best = min((p for p in points if p["bits_nominal"] <= limit), key=lambda p: p["zmse"], default=None)
            value = best["zmse"] if best else None
            checks[f"z-MSE at <= {limit} bits{label}"] = (value, GOALS[key], value is not None and value <= GOALS[key])
            if with_interval and best and "zmse_ci" in best:
                intervals[f"z-MSE at <= {limit} bits{label}"] = dict(
                    **best["zmse_ci"], goal=GOALS[key], subjects=best["subjects"],
                    subjects_above_goal=sorted(s for s, v in best["subjects"].items() if v > GOALS[key]))
    top = max((p for p in pts if p["bits_nominal"] <= 416), key=lambda p: p["bits_nominal"])
    checks["r beta at <= 416 bits"] = (top["bands"]["beta"], GOALS["r_beta"], top["bands"]["beta"] >= GOALS["r_beta"])
    checks["r gamma at <= 416 bits"] = (top["bands"]["gamma"], GOALS["r_gamma"], top["bands"]["gamma"] >= GOALS["r_gamma"])
    full = [p for p in pts if float(p["levels"]).is_integer()]   # level prefixes (not code prefixes inside a level)
    gains = [1 - b["zmse"] / a["zmse"] for a, b in zip(full, full[1:], strict=False) if b["bits_nominal"] <= 416]
    checks["min z-MSE drop per added level"] = (min(gains), GOALS["level_gain"], min(gains) >= GOALS["level_gain"])
    usage = float(np.min(rvq["code_usage"]["usage_pct"]))
    checks["min code usage %"] = (usage, GOALS["usage_pct"], usage >= GOALS["usage_pct"])
    if ref:
        worst = max(p["zmse"] / ref[round(p["code_bits"])] for p in pts if round(p["code_bits"]) in ref)
        checks["worst z-MSE ratio to the reference"] = (worst, 1.0, worst < 1.0)
    if beam and ref_beam:
        worst = max(p["zmse"] / ref_beam[round(p["code_bits"])] for p in beam["points"] if round(p["code_bits"]) in ref_beam)
        checks[f"worst z-MSE ratio to the reference (both beam {beam['width']})"] = (worst, 1.0, worst < 1.0)
    for label, own, other in (("", pts, reference.get("points", [])),
                              (f" (both beam {beam['width']})" if beam else "", beam["points"] if beam else [],
                               reference.get("beam_search", {}).get("points", []))):
        by_bits = {round(q["code_bits"]): q for q in other if "subjects" in q}
        ratios = [(p["bits_nominal"], paired_ratio(p, by_bits[round(p["code_bits"])]))
                  for p in own if round(p["code_bits"]) in by_bits and "subjects" in p]
        if ratios:
            bits, worst = max(ratios, key=lambda r: r[1]["ci_high"])
            intervals[f"per-subject z-MSE ratio to the reference{label}, worst rate"] = dict(**worst, bits=bits, goal=1.0)
    for k, (v, goal, ok) in checks.items():
        print(f"goal {k}: {v if v is None else round(v, 4)} vs {goal} -> {'MET' if ok else 'MISSED'}")
    for k, c in intervals.items():
        print(f"interval {k}: mean {c['mean']:.4f}, 95 % CI [{c['ci_low']:.4f}, {c['ci_high']:.4f}] over {c['n']} "
              f"subjects vs {c['goal']}" + (f" at {c['bits']:.0f} bits" if "bits" in c else "") +
              (f"; subjects above the goal: {', '.join(c['subjects_above_goal']) or 'none'}" if "subjects" in c else ""))
    result["goal_checks"] = {k: dict(value=v, goal=g, met=bool(ok)) for k, (v, g, ok) in checks.items()}
    result["goal_intervals"] = intervals


def paired_ratio(p: dict, q: dict) -> dict:
    """Per held-out subject, ``p``'s z-MSE over ``q``'s (same subjects, same rate): mean and 95 % t-interval."""
    from neurofm.evaluation.metrics import summarize

    common = sorted(set(p["subjects"]) & set(q["subjects"]))
    return summarize([p["subjects"][s] / q["subjects"][s] for s in common])


if __name__ == "__main__":
    sys.exit(main())
