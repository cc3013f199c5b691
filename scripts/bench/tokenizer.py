"""Benchmark the tokenizers on held-out subjects: NeuroRVQ-style multi-scale RVQ vs LaBraM-style VQ vs DCT.

One run: both tokenizers train with the same wall-clock CPU budget on EEGMAT subjects 00–17 plus
EEGMMIDB S001 (recipe eeg-200hz: 0.1–75 Hz, average reference, 200 Hz, 4-s windows of 1-s patches),
and are evaluated on EEGMAT subjects 18–23. Every level prefix of the RVQ is a rate point; the DCT
codec is run at each point's rate on the same windows. Then an LBM is pretrained on the RVQ's codes
and linear-probed on EEGMAT rest vs arithmetic (subject-held-out) against random-init LBM features.
Also measured: neurorvq-base encode throughput on this CPU.

Usage::

    python scripts/bench/tokenizer.py [--budget-min 12] [--lbm-budget-min 6] [--out results/bench-tokenizer.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
TRAIN = [f"{i:02d}" for i in range(18)]
TEST = [f"{i:02d}" for i in range(18, 24)]
MAX_CHANS = 16  # random channel subset per training window: more, cheaper steps on a CPU
GOALS = dict(zmse_416=0.02, zmse_160=0.06, band_r=0.97, usage_pct=90.0)


def ensure_store(dataset: str, out: Path) -> Path:
    from neurofm.data.store import MANIFEST
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess

    if not (out / MANIFEST).exists():
        preprocess(get_dataset(dataset), resolve_recipe("eeg-200hz"), out, n_jobs=1, report=False, verbose=False)
    return out


def datamodule(stores: list[Path], batch_size: int = 16):
    from neurofm.data.datamodule import StoreDataModule

    return StoreDataModule([str(s) for s in stores], batch_size=batch_size, val_subjects=[],
                           test_subjects=[f"eegmat:{s}" for s in TEST])


def calibrate(name: str, dm, n: int = 4) -> float:
    """Seconds per optimiser step of a fresh model on real batches (after k-means init)."""
    import torch

    from neurofm.training.tokenizer import TokenizerModule, crop_channels

    torch.manual_seed(0)
    module = TokenizerModule(name, max_chans=MAX_CHANS)
    opt = torch.optim.AdamW(module.parameters(), 1e-3)
    it = iter(dm.train_dataloader())
    batch = crop_channels(next(it), module.hparams.max_chans)
    module.model.eval()                     # one eval pass runs every level's k-means init up front
    with torch.no_grad():
        module.model(batch["x"], pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])
    module.model.train()
    times = []
    for _ in range(n + 1):
        batch = crop_channels(next(it), module.hparams.max_chans)
        t0 = time.perf_counter()
        out = module.model(batch["x"], pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])
        out.losses["loss"].backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    times = times[1:]
    return float(np.median(times))


def train(module, dm, budget_s: float, step_s: float, out_dir: Path, name: str) -> dict:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    steps = max(int(budget_s / step_s * 0.9), 10)
    trainer = L.Trainer(max_steps=steps, max_time=dict(seconds=budget_s * 1.15), accelerator="cpu", devices=1,
                        logger=CSVLogger(out_dir, name=name), enable_checkpointing=False, limit_val_batches=0,
                        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0,
                        log_every_n_steps=10)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return dict(planned_steps=steps, steps=int(trainer.global_step), train_s=round(time.perf_counter() - t0, 1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, default=12.0, help="training wall-clock budget per tokenizer")
    ap.add_argument("--lbm-budget-min", type=float, default=6.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=str(ROOT / "out" / "bench"))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench-tokenizer.json"))
    ap.add_argument("--models", nargs="+", default=["neurorvq-tiny", "labram-vq-tiny"])
    ap.add_argument("--reuse", action="store_true",
                    help="evaluate the exports and training logs a previous run left in --work (no training)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from neurofm.data.dataset import WindowStore
    from neurofm.evaluation.tokenizer import evaluate_tokenizer, write_report
    from neurofm.training.tokenizer import TokenizerModule

    work = Path(args.work)
    os.environ.setdefault("NEUROFM_DATA", str(SHARED))
    stores = [ensure_store("eegmat", work / "eegmat-200hz"), ensure_store("eegmmidb", work / "eegmmidb-200hz")]
    eegmat = WindowStore(stores[0])
    test_idx = np.flatnonzero(np.isin(eegmat.subjects, TEST))
    result: dict = dict(date=datetime.date.today().isoformat(), machine=f"{platform.processor() or platform.machine()}, "
                        f"{os.cpu_count()} cores, torch threads {args.threads}", python=sys.version.split()[0],
                        torch=torch.__version__, budget_min=args.budget_min, train_subjects=TRAIN, test_subjects=TEST,
                        n_test_windows=int(len(test_idx)), goals=GOALS, models={})
    exports = {}
    for name in args.models:
        export = work / "export" / name
        if args.reuse:
            import csv

            rows = list(csv.DictReader(open(max((work / "logs" / name).glob("version_*/metrics.csv")))))
            info = dict(steps=max(int(r["step"]) for r in rows) + 1, reused=True)
            step_s = float("nan")
        else:
            dm = datamodule(stores)
            dm.setup()
            step_s = calibrate(name, dm)
            print(f"[{name}] {step_s:.2f} s per step", flush=True)
            torch.manual_seed(0)
            module = TokenizerModule(name, max_chans=MAX_CHANS, lr=2e-3, warmup_steps=30)
            load0 = os.getloadavg()[0]
            info = train(module, dm, args.budget_min * 60, step_s, work / "logs", name)
            info["load_average_1min_start_end"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
            module.export(export)
        exports[name] = export
        from neurofm.models._hub import from_pretrained

        model = from_pretrained(export)
        t0 = time.perf_counter()
        ev = evaluate_tokenizer(model, eegmat, test_idx, batch_size=16)
        write_report(ev, Path(args.out).with_name(f"tokenizer-{name}.html"), title=f"{name} on EEGMAT 18–23")
        ev.pop("_examples")
        result["models"][name] = dict(step_s=round(step_s, 3), **info, eval_s=round(time.perf_counter() - t0, 1), **ev)
        print(f"[{name}] {info['steps']} steps in {info.get('train_s', '?')} s", flush=True)

    # neurorvq-base encode throughput (random init: speed does not depend on the weights)
    from neurofm.registry import create_model

    base = create_model("neurorvq-base", kmeans_init=False).eval()  # untrained: no k-means on eval batches
    batch_idx = test_idx[:16]
    xs = torch.from_numpy(np.stack([eegmat[int(i)] for i in batch_idx]).astype(np.float32))
    pos = torch.from_numpy(np.array([[c["pos"] for c in eegmat.channels(int(i))] for i in batch_idx], np.float32))
    names = [[c["name"] for c in eegmat.channels(int(i))] for i in batch_idx]
    with torch.inference_mode():
        base.encode(xs, pos=pos, ch_names=names)  # k-means is not run in eval; warm-up
        t0 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            base.encode(xs, pos=pos, ch_names=names)
        dt = (time.perf_counter() - t0) / reps
    result["neurorvq_base_encode_channel_seconds_per_s"] = xs.shape[0] * xs.shape[1] * xs.shape[2] / 200.0 / dt

    if "neurorvq-tiny" in exports and args.lbm_budget_min > 0:
        result["lbm"] = lbm_probe(stores, exports["neurorvq-tiny"], eegmat, args.lbm_budget_min * 60, work)

    summarise(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


def lbm_probe(stores, tokenizer_dir: Path, eegmat, budget_s: float, work: Path) -> dict:
    import lightning as L
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from neurofm.data.dataset import WindowDataset, collate
    from neurofm.registry import create_model
    from neurofm.training.lbm import LBMModule

    torch.manual_seed(0)
    dm = datamodule(stores)
    module = LBMModule("lbm-tiny", tokenizer=str(tokenizer_dir), max_chans=MAX_CHANS, warmup_steps=30)
    trainer = L.Trainer(max_time=dict(seconds=budget_s), max_epochs=1000, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, limit_val_batches=0, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    hist = dict(steps=int(trainer.global_step), train_s=round(time.perf_counter() - t0, 1),
                final_mcm_loss=float(trainer.callback_metrics.get("train/mcm_loss", float("nan"))))

    labels = np.array([str(v) for v in eegmat.labels])
    train_idx = np.flatnonzero(np.isin(eegmat.subjects, TRAIN))
    test_idx = np.flatnonzero(np.isin(eegmat.subjects, TEST))

    def features(model, idx):
        ds = WindowDataset(eegmat, idx)
        feats = []
        with torch.inference_mode():
            for s in range(0, len(ds), 32):
                b = collate([ds[k] for k in range(s, min(s + 32, len(ds)))])
                h, valid = model.forward_features(b["x"], pos=b["pos"], mask=b["mask"], ch_names=b["ch_names"])
                w = valid[..., None].float()
                feats.append(((h * w).sum(1) / w.sum(1)).numpy())
        return np.concatenate(feats)

    out = dict(pretraining=hist)
    torch.manual_seed(0)
    random_model = create_model("lbm-tiny", **{k: v for k, v in module.hparams.model_kwargs.items()}).eval()
    for tag, model in (("pretrained", module.model.eval()), ("random_init", random_model)):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1, class_weight="balanced"))
        clf.fit(features(model, train_idx), labels[train_idx])
        pred = clf.predict(features(model, test_idx))
        out[tag] = dict(balanced_accuracy=float(balanced_accuracy_score(labels[test_idx], pred)))
    out["ratio"] = out["pretrained"]["balanced_accuracy"] / max(out["random_init"]["balanced_accuracy"], 1e-9)
    return out


def summarise(result: dict) -> None:
    print(f"\nTokenizers on held-out EEGMAT subjects {TEST[0]}–{TEST[-1]} ({result['n_test_windows']} windows), "
          f"{result['date']}, {result['machine']}")
    head = f"{'model':16s} {'lv':>3s} {'bits':>6s} {'ent.bits':>8s} {'z-MSE':>8s} {'DCT z-MSE':>9s} {'ratio':>6s} {'r':>6s}  per-band r"
    print(head)
    for name, m in result["models"].items():
        for p, d in zip(m["points"], m["dct"], strict=True):
            bands = " ".join(f"{k[:5]}={v:.3f}" for k, v in p["bands"].items())
            print(f"{name:16s} {p['levels']:3d} {p['bits_nominal']:6.0f} {p['bits_entropy']:8.0f} {p['zmse']:8.4f} "
                  f"{d['zmse']:9.4f} {p['zmse'] / max(d['zmse'], 1e-9):6.1f} {p['r']:6.3f}  {bands}")
        print(f"{'':16s} min code usage {m['code_usage']['min_usage_pct']:.1f} %, encode "
              f"{m['encode_channel_seconds_per_s']:.0f} channel-s/s, {m['steps']} steps in {m.get('train_s', '?')} s")
    rvq = result["models"].get("neurorvq-tiny")
    if rvq:
        checks = {}
        for limit, goal in ((416, GOALS["zmse_416"]), (160, GOALS["zmse_160"])):
            ok = [p for p in rvq["points"] if p["bits_nominal"] <= limit]
            best = min(ok, key=lambda p: p["zmse"]) if ok else None
            checks[f"zmse@{limit}"] = (best["zmse"] if best else None, goal, best is not None and best["zmse"] <= goal)
        top = max((p for p in rvq["points"] if p["bits_nominal"] <= 416), key=lambda p: p["bits_nominal"])
        checks["min band r @<=416"] = (min(top["bands"][b] for b in ("delta", "theta", "alpha", "beta", "gamma")),
                                       GOALS["band_r"], None)
        checks["min code usage %"] = (rvq["code_usage"]["min_usage_pct"], GOALS["usage_pct"], None)
        for k, (v, goal, ok) in checks.items():
            if ok is None and v is not None:
                ok = v >= goal
            print(f"goal {k}: {v if v is None else round(v, 4)} vs {goal} -> {'MET' if ok else 'MISSED'}")
        result["goal_checks"] = {k: dict(value=v, goal=g, met=bool(ok if ok is not None else (v is not None and v >= g)))
                                 for k, (v, g, ok) in checks.items()}
    if "neurorvq_base_encode_channel_seconds_per_s" in result:
        print(f"neurorvq-base encode throughput: {result['neurorvq_base_encode_channel_seconds_per_s']:.0f} channel-s/s")
    if "lbm" in result:
        lbm = result["lbm"]
        print(f"LBM linear probe (EEGMAT rest vs arithmetic, subjects 18–23): pretrained "
              f"{lbm['pretrained']['balanced_accuracy']:.3f} vs random-init {lbm['random_init']['balanced_accuracy']:.3f} "
              f"(ratio {lbm['ratio']:.2f}); {lbm['pretraining']['steps']} steps")


if __name__ == "__main__":
    sys.exit(main())
