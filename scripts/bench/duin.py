"""Du-IN benchmark on the shared intracranial recordings.

Bonn 3-class (healthy / interictal / ictal; held-out segments): Du-IN pretrained (VQ-VAE + masked code
model) vs Du-IN from scratch vs a braindecode baseline (EEGNet) vs log band power + logistic regression,
one split, several seeds, in one run. Grip-force regression (Pearson r on held-out time) and ECoG pre-ictal
vs ictal (held-out time blocks) against band-power ridge / logistic regression.

Protocol (leakage-free):

- Bonn: each 23.6-s segment is a split unit; 60/20/20 % of the segments of each class go to train /
  validation / test (``DuINDataModule(split="recording", seed=0)``, the module's default seed). Every
  method sees the same 3-s windows (``bonn-duin-200hz``: 200 Hz, 100-ms patches of 20 samples).
- Grip force and ECoG: contiguous time blocks (60/20/20 %; ECoG per label span, so both classes are in
  every block), 0.5 s left out before the validation and the test block.
- Normalisation statistics from the training split only; model selection (epoch, regularisation strength)
  on the validation split only; channels are all bipolar contacts (no label-driven selection).
- Pretraining (self-supervised) sees training windows only: the Bonn training segments plus the training
  blocks of the sEEG, ECoG and grip-force recordings (resampled to the Bonn contract for the Bonn model;
  at 1000 Hz, the Du-IN contract, for the grip/ECoG models).

Usage::

    python scripts/bench/duin.py [--work out/bench-duin] [--out results/bench-duin.json] [--seeds 0 1 2]
                                 [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

GOAL_BACC = 0.97
BANDS = (0.5, 2, 4, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 60, 75)
BANDS_1K = (1, 4, 8, 13, 20, 30, 45, 60, 80, 100, 130, 160, 200)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------- stores
def build_stores(work: Path) -> dict[str, Path]:
    """Preprocess everything the benchmark needs (resumable: finished recordings are skipped)."""
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess

    plan = {"bonn": ("bonn", "bonn-duin-200hz")}
    for ds, short in (("epilepsy-seeg", "seeg"), ("epilepsy-ecog", "ecog"), ("gripforce", "grip")):
        plan[f"{short}-200"] = (ds, "ieeg-duin-200hz")
        plan[f"{short}-1k"] = (ds, "seeg-1000hz-dense")
    for ds, short in (("epilepsy-ecog", "ecog"), ("gripforce", "grip")):
        plan[f"{short}-1s"] = (ds, "ieeg-1000hz-1s")
    out = {}
    for name, (ds, recipe) in plan.items():
        path = work / "stores" / name
        res = preprocess(get_dataset(ds), resolve_recipe(recipe), path, n_jobs=1, report=False, verbose=False)
        if res.failed:
            raise SystemExit(f"preprocessing {name} failed: {res.failed}")
        out[name] = path
    return out


# ---------------------------------------------------------------------------------------------- training
def trainer(max_epochs: int, callbacks=(), val: bool = True):
    import lightning as L

    return L.Trainer(max_epochs=max_epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, callbacks=list(callbacks), num_sanity_val_steps=0,
                     limit_val_batches=1.0 if val else 0, accelerator="cpu", devices=1, gradient_clip_val=1.0)


def pretrain(dm, export: Path, *, kwargs: dict, vq_epochs: int, mcm_epochs: int, lr: float, seed: int = 0,
             regions: dict | None = None) -> dict:
    """VQ-VAE then masked code model on ``dm``'s training split; returns losses and the MCM export dir."""
    import lightning as L

    from neurofm.training.duin import DuINMCMModule, DuINVQVAEModule

    L.seed_everything(seed, verbose=False)
    t0 = time.perf_counter()
    vq = DuINVQVAEModule(model="duin-vqvae-tiny", model_kwargs=dict(kwargs), regions=regions, lr=lr, warmup_steps=20)
    hist = History(["train/recon_loss"])
    trainer(vq_epochs, [hist], val=False).fit(vq, dm)
    vq.export(export / "vqvae")
    L.seed_everything(seed, verbose=False)
    mcm = DuINMCMModule(vqvae=str(export / "vqvae"), model="duin-mcm-tiny", lr=lr, warmup_steps=20)
    hist2 = History(["train/loss", "train/code_acc"])
    trainer(mcm_epochs, [hist2], val=False).fit(mcm, dm)
    mcm.export(export / "mcm")
    return dict(vqvae_recon_loss=hist.values["train/recon_loss"], mcm_loss=hist2.values["train/loss"],
                mcm_code_acc=hist2.values["train/code_acc"], seconds=round(time.perf_counter() - t0, 1),
                export=str(export / "mcm"))


class History:
    """Lightning callback recording per-epoch metrics."""

    def __new__(cls, keys):
        import lightning as L

        class _History(L.Callback):
            def __init__(self):
                self.values = {k: [] for k in keys}

            def on_train_epoch_end(self, trainer, pl_module):
                for k in keys:
                    if k in trainer.callback_metrics:
                        self.values[k].append(round(float(trainer.callback_metrics[k]), 4))

        return _History()


def finetune(dm, *, kwargs: dict, pretrained: str | None, seed: int, epochs: int, lr: float,
             monitor: str, augment: bool = False) -> tuple[object, dict]:
    import lightning as L

    from neurofm.training.duin import BestState, DuINClassifierModule

    L.seed_everything(seed, verbose=False)
    module = DuINClassifierModule(model="duin-classifier-tiny", model_kwargs=dict(kwargs), pretrained=pretrained,
                                  lr=lr, warmup_steps=20, augment=augment, label_smoothing=0.0)
    best = BestState(monitor, "max")
    t0 = time.perf_counter()
    trainer(epochs, [best]).fit(module, dm)
    return module, dict(best_val=round(best.best, 4), best_epoch=best.best_epoch,
                        seconds=round(time.perf_counter() - t0, 1))


def predict(module, loader):
    import lightning as L
    import torch

    outs = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                     accelerator="cpu", devices=1).predict(module, loader)
    res = {k: torch.cat([o[k] for o in outs]).numpy() for k in outs[0]}
    return res


# ---------------------------------------------------------------------------------------------- metrics
def bacc(y, pred) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, pred))


def segment_bacc(groups, y, proba) -> float:
    """Balanced accuracy per held-out segment: mean class probabilities over the segment's windows."""
    seg: dict = {}
    for g, yy, p in zip(groups, y, proba, strict=True):
        seg.setdefault(g, [yy, []])[1].append(p)
    truth = [v[0] for v in seg.values()]
    pred = [int(np.mean(v[1], 0).argmax()) for v in seg.values()]
    return bacc(truth, pred)


def band_power(x, sfreq: float, edges) -> np.ndarray:
    """log mean Welch power per band and channel, plus log std: (n, C, T) → (n, C * (bands + 1))."""
    from scipy.signal import welch

    f, p = welch(x, fs=sfreq, nperseg=min(x.shape[-1], int(sfreq)), axis=-1)
    feats = [np.log(p[..., (f >= a) & (f < b)].mean(-1) + 1e-12) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    feats.append(np.log(x.std(-1) + 1e-12))
    return np.stack(feats, -1).reshape(len(x), -1)


def split_arrays(dm, name: str):
    """(X, y, groups) per split of store ``name`` in ``dm``, normalised as the models see them."""
    st, idx = dm.stores_[dm.names_.index(name)], dm.indices[name]
    out = {}
    for split, ii in idx.items():
        ds = [k for k in dm.splits[split].datasets if k.store is st][0] if len(ii) else None
        items = [ds[k] for k in range(len(ds))] if ds is not None else []
        x = np.stack([it["x"].numpy() for it in items]) if items else np.zeros((0,))
        y = np.array([it["y"] for it in items])
        groups = np.array([st.rec_index[it["index"]] for it in items])
        target = np.stack([it["target"].numpy() for it in items]) if items and "target" in items[0] else None
        out[split] = dict(x=x, y=y, groups=groups, index=np.array([it["index"] for it in items]), target=target)
    return out


def logistic_baseline(arrays, sfreq: float, edges) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    feats = {k: band_power(v["x"], sfreq, edges) for k, v in arrays.items()}
    scaler = StandardScaler().fit(feats["train"])
    best = None
    for c in (0.01, 0.1, 1.0, 10.0, 100.0):  # chosen on validation only
        clf = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(feats["train"]), arrays["train"]["y"])
        val = bacc(arrays["val"]["y"], clf.predict(scaler.transform(feats["val"])))
        if best is None or val > best[0]:
            best = (val, c, clf)
    val, c, clf = best
    proba = clf.predict_proba(scaler.transform(feats["test"]))
    full = np.zeros((len(proba), int(max(arrays["train"]["y"].max(), arrays["test"]["y"].max()) + 1)))
    full[:, clf.classes_] = proba
    return dict(C=c, val_bacc=round(val, 4), test_bacc=round(bacc(arrays["test"]["y"], full.argmax(1)), 4),
                test_segment_bacc=round(segment_bacc(arrays["test"]["groups"], arrays["test"]["y"], full), 4))


def eegnet_run(arrays, seed: int, epochs: int, n_classes: int, sfreq: float) -> dict:
    """braindecode EEGNet on the same windows, AdamW, model selection on validation balanced accuracy."""
    import torch

    from neurofm.registry import create_model

    torch.manual_seed(seed)
    np.random.seed(seed)
    tr, va, te = arrays["train"], arrays["val"], arrays["test"]
    model = create_model("eegnet", n_chans=tr["x"].shape[1], n_outputs=n_classes, n_times=tr["x"].shape[2],
                         sfreq=sfreq)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    xt, yt = torch.from_numpy(tr["x"]).float(), torch.from_numpy(tr["y"]).long()
    best, t0 = None, time.perf_counter()

    def scores(x):
        model.eval()
        with torch.no_grad():
            return torch.cat([model(torch.from_numpy(x[i:i + 256]).float()) for i in range(0, len(x), 256)]).softmax(-1)

    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            j = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[j]), yt[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = bacc(va["y"], scores(va["x"]).argmax(1).numpy())
        if best is None or val > best[0]:
            best = (val, epoch, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    proba = scores(te["x"]).numpy()
    return dict(val_bacc=round(best[0], 4), best_epoch=best[1], test_bacc=round(bacc(te["y"], proba.argmax(1)), 4),
                test_segment_bacc=round(segment_bacc(te["groups"], te["y"], proba), 4),
                seconds=round(time.perf_counter() - t0, 1))


def duin_eval(module, dm, name: str) -> dict:
    pred = predict(module, dm.test_dataloader())
    st = dm.stores_[dm.names_.index(name)]
    proba = np.exp(pred["output"] - pred["output"].max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    groups = st.rec_index[pred["index"]]
    return dict(test_bacc=round(bacc(pred["y"], proba.argmax(1)), 4),
                test_segment_bacc=round(segment_bacc(groups, pred["y"], proba), 4))


def mean_std(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}"


# ---------------------------------------------------------------------------------------------- tasks
def run_bonn(stores: dict, work: Path, seeds, cfg: dict) -> dict:
    from neurofm.data.duin import DuINDataModule

    kwargs = dict(sfreq=200.0, patch_s=0.1, n_times=600)
    res: dict = dict(contract="bonn-duin-200hz: 200 Hz, 0.5-75 Hz, 3-s windows, 100-ms patches (20 samples)")
    dm = DuINDataModule([str(stores["bonn"])], names=["bonn"], batch_size=64, split="recording",
                        shared_input=["bonn"], seed=0)
    dm.setup()
    st = dm.stores_[0]
    res["split"] = {k: sorted({st.recordings[r]["id"] for r in st.rec_index[v]}) for k, v in dm.indices["bonn"].items()}
    res["n_windows"] = {k: int(len(v)) for k, v in dm.indices["bonn"].items()}
    arrays = split_arrays(dm, "bonn")
    log(f"Bonn: {res['n_windows']} windows; band power + logistic regression")
    res["logreg"] = logistic_baseline(arrays, 200.0, BANDS)
    log(f"  logreg {res['logreg']}")
    # Context, not a result: how much the split alone moves the same baseline (other segment splits).
    res["logreg_other_splits"] = {}
    for split_seed in (1, 2, 3, 4):
        other = DuINDataModule([str(stores["bonn"])], names=["bonn"], split="recording", shared_input=["bonn"],
                               seed=split_seed)
        other.setup()
        res["logreg_other_splits"][split_seed] = logistic_baseline(split_arrays(other, "bonn"), 200.0, BANDS)
    log("  logreg on other splits: " + ", ".join(f"{k}: {v['test_bacc']:.3f}/{v['test_segment_bacc']:.3f}"
                                                 for k, v in res["logreg_other_splits"].items()))
    # Pretraining: Bonn training segments (labels unused) + the intracranial training blocks, Bonn contract.
    pre_dm = DuINDataModule([str(stores["bonn"]), str(stores["seeg-200"]), str(stores["ecog-200"]),
                             str(stores["grip-200"])], names=["bonn", "seeg", "ecog", "grip"], batch_size=64,
                            split={"bonn": "recording"}, shared_input=["bonn"], seed=0)
    log("Bonn: pretraining the VQ-VAE and the masked code model (training windows only)")
    res["pretraining"] = pretrain(pre_dm, work / "bonn-pretrained", kwargs=kwargs, vq_epochs=cfg["vq_epochs"],
                                  mcm_epochs=cfg["mcm_epochs"], lr=cfg["pretrain_lr"])
    log(f"  pretraining done in {res['pretraining']['seconds']} s")
    for method in ("duin_pretrained", "duin_scratch", "eegnet"):
        res[method] = []
    for seed in seeds:
        for method, pre in (("duin_pretrained", res["pretraining"]["export"]), ("duin_scratch", None)):
            module, info = finetune(dm, kwargs=dict(kwargs, n_outputs=3), pretrained=pre, seed=seed,
                                    epochs=cfg["ft_epochs"], lr=cfg["ft_lr"], monitor="val/bacc",
                                    augment=cfg["augment"])
            info.update(duin_eval(module, dm, "bonn"), seed=seed)
            res[method].append(info)
            log(f"  {method} seed {seed}: {info}")
        info = eegnet_run(arrays, seed, cfg["eegnet_epochs"], 3, 200.0)
        info["seed"] = seed
        res["eegnet"].append(info)
        log(f"  eegnet seed {seed}: {info}")
    return res


def run_grip(stores: dict, pretrained: str, seeds, cfg: dict) -> dict:
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    from neurofm.data.duin import DuINDataModule

    dm = DuINDataModule([str(stores["grip-1s"])], names=["grip"], batch_size=16, split="time")
    dm.setup()
    arrays = split_arrays(dm, "grip")
    res = dict(n_windows={k: int(len(v["y"])) for k, v in arrays.items()})
    kwargs = dict(sfreq=1000.0, patch_s=0.1, n_times=1000, n_outputs=1, task="regression")

    def continuous(index, values):
        """Average overlapping windows' per-patch values onto the recording's 100-ms grid."""
        st = dm.stores_[0]
        starts = np.array([st.recordings[0]["starts"][st.win_index[i]] for i in index]) // 100
        acc: dict[int, list[float]] = {}
        for s, row in zip(starts, values, strict=True):
            for k, v in enumerate(row):
                acc.setdefault(int(s + k), []).append(float(v))
        keys = sorted(acc)
        return np.array([np.mean(acc[k]) for k in keys])

    te = arrays["test"]
    patch_t = te["target"].reshape(len(te["target"]), -1, 100).mean(-1)
    truth = continuous(te["index"], patch_t)

    # Ridge on log band power of each 100-ms patch's preceding 500 ms (causal), per channel.
    def patch_features(split):
        x = arrays[split]["x"]
        feats = []
        for k in range(x.shape[-1] // 100):
            lo = max(0, (k + 1) * 100 - 500)
            seg = x[..., lo:(k + 1) * 100]
            if seg.shape[-1] < 500:
                seg = np.concatenate([np.repeat(seg[..., :1], 500 - seg.shape[-1], -1), seg], -1)
            feats.append(band_power(seg, 1000.0, BANDS_1K))
        return np.stack(feats, 1)  # (n, patches, F)

    fx = {s: patch_features(s) for s in ("train", "val", "test")}
    fy = {s: arrays[s]["target"].reshape(len(arrays[s]["target"]), -1, 100).mean(-1) for s in ("train", "val", "test")}
    scaler = StandardScaler().fit(fx["train"].reshape(-1, fx["train"].shape[-1]))
    best = None
    for alpha in (0.1, 1.0, 10.0, 100.0, 1000.0):
        reg = Ridge(alpha=alpha).fit(scaler.transform(fx["train"].reshape(-1, fx["train"].shape[-1])),
                                     fy["train"].reshape(-1))
        pv = reg.predict(scaler.transform(fx["val"].reshape(-1, fx["val"].shape[-1]))).reshape(fy["val"].shape)
        r = float(np.corrcoef(continuous(arrays["val"]["index"], pv),
                              continuous(arrays["val"]["index"], fy["val"]))[0, 1])
        if best is None or r > best[0]:
            best = (r, alpha, reg)
    pt = best[2].predict(scaler.transform(fx["test"].reshape(-1, fx["test"].shape[-1]))).reshape(fy["test"].shape)
    res["ridge"] = dict(alpha=best[1], val_r=round(best[0], 4),
                        test_r=round(float(np.corrcoef(continuous(te["index"], pt), truth)[0, 1]), 4))
    log(f"Grip force: ridge {res['ridge']}")
    for method, pre in (("duin_pretrained", pretrained), ("duin_scratch", None)):
        res[method] = []
        for seed in seeds:
            module, info = finetune(dm, kwargs=kwargs, pretrained=pre, seed=seed, epochs=cfg["grip_epochs"], lr=1e-3,
                                    monitor="val/r")
            pred = predict(module, dm.test_dataloader())
            info["test_r"] = round(float(np.corrcoef(continuous(pred["index"], pred["output"][..., 0]), truth)[0, 1]), 4)
            info["seed"] = seed
            res[method].append(info)
            log(f"  grip {method} seed {seed}: {info}")
    return res


def run_ecog(stores: dict, pretrained: str, seeds, cfg: dict) -> dict:
    from neurofm.data.duin import DuINDataModule

    dm = DuINDataModule([str(stores["ecog-1s"])], names=["ecog"], batch_size=16, split="time",
                        val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    arrays = split_arrays(dm, "ecog")
    res = dict(n_windows={k: int(len(v["y"])) for k, v in arrays.items()}, labels=dm.label_map)
    res["logreg"] = logistic_baseline(arrays, 1000.0, BANDS_1K)
    res["logreg"].pop("test_segment_bacc")  # one recording: no segments
    log(f"ECoG pre-ictal vs ictal: logreg {res['logreg']}")
    kwargs = dict(sfreq=1000.0, patch_s=0.1, n_times=1000, n_outputs=2)
    for method, pre in (("duin_pretrained", pretrained), ("duin_scratch", None)):
        res[method] = []
        for seed in seeds:
            module, info = finetune(dm, kwargs=kwargs, pretrained=pre, seed=seed, epochs=cfg["ecog_epochs"], lr=1e-3,
                                    monitor="val/bacc")
            info.update(duin_eval(module, dm, "ecog"), seed=seed)
            info.pop("test_segment_bacc")
            res[method].append(info)
            log(f"  ecog {method} seed {seed}: {info}")
    return res


# ---------------------------------------------------------------------------------------------- report
def table(res: dict) -> str:
    b = res["bonn"]
    lines = ["Bonn 3-class, held-out segments (balanced accuracy; mean ± std over seeds)", "",
             "| method | window bacc | segment bacc | goal ≥ 0.97 (segment) |", "|---|---|---|---|"]
    for key, label in (("duin_pretrained", "Du-IN tiny, pretrained (VQ-VAE + MCM)"),
                       ("duin_scratch", "Du-IN tiny, from scratch"), ("eegnet", "braindecode EEGNet")):
        runs = b[key]
        seg = [r["test_segment_bacc"] for r in runs]
        met = "met" if sum(seg) / len(seg) >= GOAL_BACC else "missed"
        lines.append(f"| {label} | {mean_std([r['test_bacc'] for r in runs])} | {mean_std(seg)} | {met} |")
    lr = b["logreg"]
    met = "met" if lr["test_segment_bacc"] >= GOAL_BACC else "missed"
    lines.append(f"| log band power + logistic regression (C={lr['C']}) | {lr['test_bacc']:.3f} | "
                 f"{lr['test_segment_bacc']:.3f} | {met} |")
    if "grip" in res:
        g = res["grip"]
        lines += ["", "Grip force, held-out last 20 % of the recording (Pearson r at 100-ms resolution)", "",
                  "| method | test r |", "|---|---|",
                  f"| Du-IN tiny, pretrained | {mean_std([r['test_r'] for r in g['duin_pretrained']])} |",
                  f"| Du-IN tiny, from scratch | {mean_std([r['test_r'] for r in g['duin_scratch']])} |",
                  f"| band power + ridge (alpha={g['ridge']['alpha']}) | {g['ridge']['test_r']:.3f} |"]
    if "ecog" in res:
        e = res["ecog"]
        lines += ["", f"ECoG pre-ictal vs ictal, held-out time blocks (balanced accuracy; test windows "
                      f"{e['n_windows']['test']})", "", "| method | test bacc |", "|---|---|",
                  f"| Du-IN tiny, pretrained | {mean_std([r['test_bacc'] for r in e['duin_pretrained']])} |",
                  f"| Du-IN tiny, from scratch | {mean_std([r['test_bacc'] for r in e['duin_scratch']])} |",
                  f"| band power + logistic regression | {e['logreg']['test_bacc']:.3f} |"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(REPO / "out" / "bench-duin"), help="stores and exported models")
    ap.add_argument("--out", default=str(REPO / "results" / "bench-duin.json"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="a few epochs of everything (a smoke test, not a result)")
    ap.add_argument("--tasks", nargs="+", default=["bonn", "grip", "ecog"], choices=["bonn", "grip", "ecog"])
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    warnings.filterwarnings("ignore")
    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    try:
        from loguru import logger as _loguru  # vector-quantize-pytorch's k-means warnings

        _loguru.remove()
    except ImportError:
        pass
    cfg = dict(vq_epochs=8, mcm_epochs=8, pretrain_lr=1e-3, ft_epochs=25, ft_lr=2e-3, eegnet_epochs=20, augment=True,
               grip_epochs=20, ecog_epochs=20, vq1k_epochs=20, mcm1k_epochs=20)
    if args.quick:
        cfg = {k: (1 if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in cfg.items()}
    work = Path(args.work)
    t0 = time.perf_counter()
    log("preprocessing stores")
    stores = build_stores(work)
    res: dict = dict(date=datetime.date.today().isoformat(), machine=platform.platform(), cpu=platform.processor(),
                     python=platform.python_version(), torch=torch.__version__, threads=args.threads,
                     seeds=args.seeds, config=cfg, quick=args.quick)
    if "bonn" in args.tasks:
        res["bonn"] = run_bonn(stores, work, args.seeds, cfg)
    if {"grip", "ecog"} & set(args.tasks):
        from neurofm.data.duin import DuINDataModule

        dm = DuINDataModule([str(stores[k]) for k in ("seeg-1k", "ecog-1k", "grip-1k")], names=["seeg", "ecog", "grip"],
                            batch_size=16, split="time")
        log("1000 Hz: pretraining the VQ-VAE and the masked code model on sEEG + ECoG + grip (training blocks)")
        res["pretraining_1k"] = pretrain(dm, work / "ieeg-pretrained",
                                         kwargs=dict(sfreq=1000.0, patch_s=0.1, n_times=3000, fusion="region"),
                                         vq_epochs=cfg["vq1k_epochs"], mcm_epochs=cfg["mcm1k_epochs"],
                                         lr=cfg["pretrain_lr"], regions=dict(by="shaft"))
        log(f"  done in {res['pretraining_1k']['seconds']} s")
        if "grip" in args.tasks:
            res["grip"] = run_grip(stores, res["pretraining_1k"]["export"], args.seeds, cfg)
        if "ecog" in args.tasks:
            res["ecog"] = run_ecog(stores, res["pretraining_1k"]["export"], args.seeds, cfg)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    text = table(res) if "bonn" in res else ""
    print("\n" + text + f"\n\ntotal {res['seconds']} s")
    res["table"] = text
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
