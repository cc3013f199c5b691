"""Train and ship the release weights: ``neurorvq-tiny.eeg`` (tokenizer) and ``lbm-tiny.eeg`` (masked-token LBM).

One command, seeded (fixed seeds, fixed step counts, a fixed thread count, the project's trainer)::

    python scripts/release/release.py            # 4,800 + 8,000 steps: ~110 core-minutes on a 2-core x86_64 VM

Data: the eeg-200hz stores (0.1–75 Hz, average reference, 200 Hz, 4-s windows of 1-s patches) of every shared
scalp EEG set — EEGMAT, EEGMMIDB S001–S004 and UCI alcoholism (its 1-s trials end to end: one trial is one patch,
so a 4-s window holds four whole trials) — minus the held-out subjects (EEGMAT 18–23, UCI 4 alcoholic + 4
control), on which the model card's fidelity tables are measured (beside the DCT codec at the same rates). The
exports (``model.safetensors`` + ``config.json``, sha256 inside) and a ``MODEL_CARD.md`` each are written to
``neurofm/weights/<name>/``, where ``neurofm.models.from_pretrained(name)`` finds them offline.

Deterministic: the seed is set before each model is built (``seed_all``; this torch seeds its default generator
differently in every process, so a model built before seeding starts from other weights each run - the release
first shipped on 2026-12-07 was built that way and was not reproducible). The weights shipped now come from two
runs of this command, at once on the two cores of a 2-core x86_64 VM (2026-12-07, one thread each), that wrote the
same sha256 for both models (the LBM of those runs had 1,000 steps; the shipped one has 8,000, trained by
``--only lbm`` on that tokenizer, which gives the full run's LBM bit for bit: checked at 1,000 steps). Across machines
the bits differ: on a second VM of the same kind (where the 8,000-step LBM was trained) the same 1,000-step
``--only lbm`` run wrote sha256 6d598c02... instead of b0cab83c... (final loss 6.5393 vs 6.54): another CPU or BLAS
build changes the last bits of the float sums.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
WEIGHTS = ROOT / "neurofm" / "weights"
HELD_OUT = {"eegmat": [f"{i:02d}" for i in range(18, 24)],
            "uci-alcohol": ["co2a0000364", "co2a0000365", "co2a0000368", "co2a0000369",
                            "co2c0000337", "co2c0000338", "co2c0000339", "co2c0000340"]}
DATASETS = ["eegmat", "eegmmidb", "uci-alcohol"]
TOKENIZER, LBM = "neurorvq-tiny.eeg", "lbm-tiny.eeg"
MAX_CHANS = 16
# The release tokenizer is trained with configs/pretrain/neurorvq-tiny.yaml's recipe (PCA-initialised patch path,
# 0.99 codebook decay, code-prefix dropout: ninth session, measured in scripts/bench/tokenizer.py). The sixth-session
# weights (shipped until the twelfth session, EEGMAT + EEGMMIDB only, 2,400 steps on 2 threads) came from
# --tokenizer-kwargs '{"pca_init": false, "decay": 0.9, "code_prefix": false}' with the first two DATASETS.


def stores(work: Path) -> list[Path]:
    from neurofm.data.store import MANIFEST
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess

    out = []
    for name in DATASETS:
        path = work / f"{name}-200hz"  # every set through the same recipe: one contract
        if not (path / MANIFEST).exists():
            preprocess(get_dataset(name), resolve_recipe("eeg-200hz"), path, n_jobs=1, report=False, verbose=False)
        out.append(path)
    return out


def seed_all(seed: int) -> None:
    """Seed torch, numpy and random. This torch seeds its default generator differently in every process, so a
    model built before this call starts from other weights each run (the 2026-12-07 release was built that way)."""
    import lightning as L

    L.seed_everything(seed, workers=True, verbose=False)


def fit(module, paths: list[Path], steps: int, seed: int, loss_key: str = "train_loss") -> dict:
    import lightning as L

    from neurofm.data.datamodule import StoreDataModule

    seed_all(seed)  # again, after the build: the data order and the first batch's draws start from the seed
    dm = StoreDataModule([str(p) for p in paths], batch_size=16, val_subjects=[],
                         test_subjects=[f"{d}:{s}" for d, subs in HELD_OUT.items() for s in subs], seed=seed)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, deterministic=True, max_epochs=-1)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    metrics = trainer.callback_metrics
    info = dict(steps=int(trainer.global_step), train_s=round(time.perf_counter() - t0, 1),
                final_loss=round(float(metrics.get(loss_key, float("nan"))), 5))
    acc = {k.split("/")[-1]: round(float(v), 4) for k, v in metrics.items() if k.startswith("train/acc")}
    if "train/band_loss" in metrics:  # the LBM's band-power target, when on
        info["final_band_loss"] = round(float(metrics["train/band_loss"]), 5)
    if acc:  # the LBM's masked-token top-1 accuracy per target level (last training batch)
        info["final_acc"] = acc
    return info


def sha256(path: Path) -> str:
    from neurofm.data.store import sha256_file

    return sha256_file(path)


def to_float16(directory: Path) -> None:
    """Store the export's float32 tensors as float16 (the 25-MB package budget); ``from_pretrained`` casts them
    back to float32 at load. Rewrites the sha256 in config.json and MODEL_CARD.md."""
    import torch
    from safetensors.torch import load_file, save_file

    weights, cfg_path = directory / "model.safetensors", directory / "config.json"
    old, old_mb = sha256(weights), f"{weights.stat().st_size / 1e6:.2f} MB"
    state = {k: (v.half() if v.dtype == torch.float32 else v) for k, v in load_file(str(weights)).items()}
    save_file(state, str(weights), metadata={"format": "pt"})
    cfg = json.loads(cfg_path.read_text())
    cfg["sha256"] = sha256(weights)
    cfg["stored_dtype"] = "float16"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    card_path = directory / "MODEL_CARD.md"
    if card_path.exists():
        new_mb = f"{weights.stat().st_size / 1e6:.2f} MB"
        text = card_path.read_text()
        note = "; the fidelity table was measured on the float32 weights before the cast" if "## Fidelity" in text else ""
        card_path.write_text(text.replace(old, cfg["sha256"]).replace(old_mb, f"{new_mb} (float16{note})"))


def zmse_with_ci(p: dict) -> str:
    """A point's z-MSE with its 95 % interval over subjects, as the card prints it."""
    ci = p["zmse_ci"]
    return f"{p['zmse']:.4f} [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]"


def fidelity_table(ev: dict) -> str:
    bands = list(ev["points"][0]["bands"])
    rows = ["| levels | bits/ch-s | z-MSE [95 % CI over subjects] | DCT z-MSE | " + " | ".join(f"r {b}" for b in bands)
            + " |", "|---" * (4 + len(bands)) + "|"]
    for p, d in zip(ev["points"], ev["dct"], strict=True):
        rows.append(f"| {p['levels']} | {p['bits_nominal']:.0f} | {zmse_with_ci(p)} | {d['zmse']:.4f} | "
                    + " | ".join(f"{p['bands'][b]:.3f}" for b in bands) + " |")
    return "\n".join(rows)


def held_out_fidelity(tokenizer, path: Path, dataset: str) -> tuple[dict, dict, str]:
    """Greedy codes at every level prefix, then beam search (width 16) at the top rate and at 160 bits/ch-s with
    per-token rates, on ``dataset``'s held-out subjects in the store at ``path``; the card's section for them."""
    from neurofm.data.dataset import WindowStore
    from neurofm.evaluation.tokenizer import evaluate_tokenizer

    store = WindowStore(path)
    idx = np.flatnonzero(np.isin(store.subjects, HELD_OUT[dataset]))
    ev = evaluate_tokenizer(tokenizer, store, idx, batch_size=16)
    evb = evaluate_tokenizer(tokenizer, store, idx, batch_size=16, levels=[tokenizer.n_levels], beam=16,
                             variable_bits=[160.0], dct="variable")  # the greedy pass has the DCT at these rates
    for e in (ev, evb):
        e.pop("_examples", None)

    top, var = evb["points"][-1], evb["variable"][0]
    text = (f"## Fidelity on the held-out {dataset} subjects ({', '.join(HELD_OUT[dataset])}; {ev['n_windows']} windows, "
            f"{ev['n_channel_windows']} channel-windows)\n\nNominal bits include 8 bits/ch-s of side information (mean, "
            f"std as float16). Minimum code usage over levels: {ev['code_usage']['min_usage_pct']:.1f} %. Intervals: 95 % "
            f"t-interval of the mean over subjects. Greedy residual codes:\n\n{fidelity_table(ev)}\n\n"
            f"Beam search (width 16, `--beam 16`): {zmse_with_ci(top)} at {top['bits_nominal']:.0f} bits/ch-s; with per-token "
            f"rates (`--variable-bits 160`): {zmse_with_ci(var)} at {var['bits_nominal']:.1f} bits/ch-s ({var['mean_codes']:.2f} "
            f"codes per token on average), DCT codec {var['dct']['zmse']:.4f} at the same rate.\n")
    if ev.get("notes"):
        text += "\nNotes: " + " ".join(ev["notes"]) + "\n"
    return ev, evb, text


def card(name: str, what: str, recipe: str, info: dict, directory: Path, extra: str, common: dict) -> None:
    cfg = json.loads((directory / "config.json").read_text())
    c = cfg["contract"]
    text = f"""# {name}

{what}

- **Load**: `neurofm.models.from_pretrained("{name}")` (offline, sha256-checked), or `{name}` wherever the CLI
  takes `--checkpoint`/`--init`. Listed by `neurofm list models --pretrained`.
- **Data**: eeg-200hz stores of {', '.join(DATASETS)}: EEGMAT and UCI alcoholism without the held-out subjects,
  EEGMMIDB S001–S004 as shared. UCI's 1-s trials are stored end to end, so each patch is one whole trial and a
  4-s window holds four. Self-supervised: no labels were read. Decoding benchmarks that test EEGMAT 00–17, EEGMMIDB
  or the training UCI subjects test people whose unlabelled EEG this model has seen.
- **Held out** (never seen in training): {'; '.join(f"{d} {', '.join(s)}" for d, s in HELD_OUT.items())}.
- **Contract**: {c.get('modality')} at {c.get('sfreq')} Hz, {c.get('n_times')}-sample windows of {c.get('patch_size')}-sample
  patches, units {c.get('units')}, band {c.get('band')}, reference {c.get('reference')}, recipe {c.get('recipe')};
  normalisation: {c.get('normalization')}.
- **Recipe**: {recipe}
- **Training**: {info['steps']} steps in {info['train_s']} s, seed {common['seed']}, {common['threads']} CPU thread(s),
  {common['machine']}, {common['date']}; `python scripts/release/release.py` retrains it bit for bit on one machine
  (two runs of it on one 2-core x86_64 VM wrote the same sha256 on 2026-12-07); on another VM of the same kind a
  1,000-step LBM came out with other last bits, so across machines it agrees only to the float sums' last bits.
- **Weights**: `model.safetensors`, {(directory / 'model.safetensors').stat().st_size / 1e6:.2f} MB,
  sha256 `{cfg['sha256']}` (also in config.json; checked at load).

{extra}
"""
    (directory / "MODEL_CARD.md").write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer-steps", type=int, default=4800)
    ap.add_argument("--lbm-steps", type=int, default=8000,
                    help="LBM steps (8,000 since the fourteenth session; final masked-token loss 6.54 at 1,000 steps, "
                         "6.01 at 4,000, 4.83 at 8,000)")
    ap.add_argument("--tokenizer-kwargs", type=json.loads, default={},
                    help='JSON overrides of the neurorvq-tiny config, e.g. \'{"pca_init": false, "decay": 0.9, '
                         '"code_prefix": false}\' (the recipe of the sixth-session weights, shipped until 2026-12-07) '
                         'or \'{"code_dim": 32}\' (the fourth session\'s)')
    ap.add_argument("--lbm-target-levels", type=int,
                    help="residual levels of every scale the LBM predicts (default: configs/pretrain/lbm-tiny.yaml)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (the shipped weights used 1; another count trains other weights: float sums run in another order)")
    ap.add_argument("--work", default=str(ROOT / "out" / "release"))
    ap.add_argument("--dest", default=str(WEIGHTS))
    ap.add_argument("--lbm-band-weight", type=float, default=0.0,
                    help="weight of the LBM's second target, the masked tokens' log band powers (default 0: off)")
    ap.add_argument("--only", choices=["tokenizer", "lbm"], help="train one of the two (lbm: on the tokenizer in --dest)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("NEUROFM_DATA", str(SHARED))

    work, dest = Path(args.work), Path(args.dest)
    paths = stores(work)
    common = dict(seed=args.seed, threads=args.threads, date=datetime.date.today().isoformat(),
                  machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    summary: dict = dict(common, held_out=HELD_OUT, datasets=DATASETS)

    # ---- tokenizer ------------------------------------------------------------------------------------
    tok_dir = dest / TOKENIZER
    if args.only != "lbm":
        train_tokenizer(args, paths, tok_dir, common, summary)
    if args.only != "tokenizer":
        train_lbm(args, paths, dest, tok_dir, common, summary)
    (work / f"release-{args.only or 'all'}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("tokenizer",)}, indent=1))
    return 0


def train_tokenizer(args, paths: list[Path], tok_dir: Path, common: dict, summary: dict) -> None:
    from neurofm._resources import pretrain_lr
    from neurofm.models._hub import from_pretrained
    from neurofm.training.tokenizer import TokenizerModule

    lr = pretrain_lr("neurorvq-tiny")  # as `neurofm pretrain` trains it
    kwargs = dict(args.tokenizer_kwargs)
    seed_all(args.seed)  # before the model is built: its initial weights are drawn here
    module = TokenizerModule("neurorvq-tiny", max_chans=MAX_CHANS, lr=lr, warmup_steps=50, model_kwargs=kwargs)
    info = fit(module, paths, args.tokenizer_steps, args.seed)
    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    module.export(tok_dir)
    tokenizer = from_pretrained(tok_dir)
    sections, summary["tokenizer"] = [], dict(info)
    for dataset in HELD_OUT:
        ev, evb, text = held_out_fidelity(tokenizer, paths[DATASETS.index(dataset)], dataset)
        sections.append(text)
        summary["tokenizer"][dataset] = dict(points=ev["points"], dct=ev["dct"], beam16=evb["points"],
                                             variable160=evb["variable"],
                                             code_usage_min_pct=ev["code_usage"]["min_usage_pct"])
        print(f"[{TOKENIZER}] {dataset}: z-MSE at {ev['points'][-1]['bits_nominal']:.0f} bits {ev['points'][-1]['zmse']:.4f} "
              f"(beam 16 {evb['points'][-1]['zmse']:.4f}), at 160 bits (beam, per-token rates) {evb['variable'][0]['zmse']:.4f}",
              flush=True)
    print(f"[{TOKENIZER}] {info}", flush=True)
    card(TOKENIZER, "Multi-scale residual-VQ EEG tokenizer (neurorvq-tiny: 4 temporal conv scales × 10 levels × 1024 "
         "codes, waveform decoder). Codes: (batch, channel, patch, scale, level); decode from any level prefix.",
         f"TokenizerModule('neurorvq-tiny', model_kwargs={kwargs}) (configs/pretrain/neurorvq-tiny.yaml's recipe plus "
         f"these overrides), AdamW lr {lr:g} (50 warm-up steps, cosine to 5 %), batch 16 windows, "
         f"{MAX_CHANS} random channels per window, gradient clip 1.0.", info, tok_dir, "\n".join(sections), common)
    to_float16(tok_dir)
    summary[f"sha256 {TOKENIZER}"] = sha256(tok_dir / "model.safetensors")


def train_lbm(args, paths: list[Path], dest: Path, tok_dir: Path, common: dict, summary: dict) -> None:
    """The LBM on the codes of the tokenizer in ``tok_dir``."""

    from neurofm._resources import pretrain_init_args, pretrain_lr
    from neurofm.training.lbm import LBMModule

    seed_all(args.seed)  # before the model is built: its initial weights are drawn here
    # by name when shipped into the package (the LBM's contract then names its tokenizer by that name)
    tokenizer = TOKENIZER if dest.resolve() == WEIGHTS.resolve() else str(tok_dir)
    lr = pretrain_lr("lbm-tiny")  # as `neurofm pretrain` trains it
    model_kwargs = dict(pretrain_init_args("lbm-tiny").get("model_kwargs") or {})
    if args.lbm_target_levels is not None:
        model_kwargs["target_levels"] = args.lbm_target_levels
    levels = model_kwargs.get("target_levels", "all")
    lbm = LBMModule("lbm-tiny", tokenizer=tokenizer, max_chans=MAX_CHANS, lr=lr, warmup_steps=50,
                    model_kwargs=model_kwargs, band_weight=args.lbm_band_weight)
    band = (f"; plus the masked tokens' log band powers in {[list(b) for b in lbm.hparams.bands]} Hz, weight "
            f"{args.lbm_band_weight:g}" if args.lbm_band_weight > 0 else "")
    linfo = fit(lbm, paths, args.lbm_steps, args.seed, loss_key="train/mcm_loss")
    lbm_dir = dest / LBM
    if lbm_dir.exists():
        shutil.rmtree(lbm_dir)
    lbm.export(lbm_dir)
    summary["lbm"] = linfo
    accuracy = "; top-1 accuracy per target level: " + ", ".join(
        f"{k.removeprefix('acc_')} {v:.1%}" for k, v in linfo["final_acc"].items()) if linfo.get("final_acc") else ""
    card(LBM, f"Masked-token model (lbm-tiny, 4 blocks × 128) pretrained on the codes of `{TOKENIZER}` (symmetric "
         "masking at ratio 0.5). Use it as an encoder: `neurofm finetune --init lbm-tiny.eeg ...`.",
         f"LBMModule('lbm-tiny', target_levels={levels}: the codes of the first "
         f"{levels} residual levels of every scale are predicted{band}), AdamW lr {lr:g} (50 warm-up steps, "
         f"cosine to 5 %), batch 16 windows, {MAX_CHANS} random channels per window.", linfo, lbm_dir,
         f"Final masked-token cross-entropy (training batch): {linfo['final_loss']}{accuracy}.\n", common)
    to_float16(lbm_dir)
    summary[f"sha256 {LBM}"] = sha256(lbm_dir / "model.safetensors")


if __name__ == "__main__":
    sys.exit(main())
