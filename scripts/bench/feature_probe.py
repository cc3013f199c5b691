"""What do a frozen encoder's features hold? Ridge probes of band power, pretrained beside random init.

A decoder can only use what its encoder's features carry. This diagnostic asks that directly, without training
a head: each channel's frozen tokens are averaged over its patches, standardised within each subject, and a
ridge regression (cross-validated over subjects: the probe is scored on people it was not fitted on) predicts

- every channel's log *relative* band power (δ 1–4, θ 4–8, α 8–13, β 13–30, γ 30–45 Hz; the window's own
  spectrum), and
- the *lateralised* log power in μ (8–13 Hz) and β (13–30 Hz) of homologous pairs (C3 − C4, C1 − C2, ...),
  the signal of motor imagery, from the difference of the two channels' features.

Targets are standardised within each subject too, so R² measures within-subject variation (0: no better than
each subject's mean; negative: worse). The baseline is the same architecture from random init (``--random-seeds``
seeds), on the same windows in the same run; each target's gain pretrained − random is printed. With ``--decode K``
the task's labels are decoded from the same frozen features too (:func:`decode`: a closed-form linear probe,
leave-subjects-out), which separates "the features lack it" from "the head could not learn it".

    .venv/bin/python scripts/bench/feature_probe.py --task eegmmidb-imagery-lr-xsubj --init lbm-tiny.eeg \
        --out results/bench-feature-probe.json
    .venv/bin/python scripts/bench/feature_probe.py --align subject ...   # the Euclidean-aligned input decoders see

It reads the task's windows (``neurofm`` task cache) and uses one torch thread: a few minutes per encoder for the
180 imagery windows of 64 channels on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from neurofm.decoding.align import standardize_groups
from neurofm.decoding.classical import BANDS  # the band-power baseline's bands

LATERAL_BANDS = {"mu": (8, 13), "beta": (13, 30)}
PAIRS = [("C3", "C4"), ("C1", "C2"), ("C5", "C6"), ("FC3", "FC4"), ("CP3", "CP4"), ("FC1", "FC2"), ("CP1", "CP2")]


def band_targets(x: np.ndarray, sfreq: float, ch_names: list[str]) -> tuple[dict[str, np.ndarray], dict, list]:
    """Per-channel log relative band power (n, C) and lateralised log power (n, n_pairs), and the pairs used."""
    from scipy.signal import welch

    f, pxx = welch(x, fs=sfreq, nperseg=int(sfreq), axis=-1)
    total = pxx[..., (f >= 1) & (f <= 45)].sum(-1)
    rel = {b: np.log(pxx[..., (f >= lo) & (f < hi)].sum(-1) / total) for b, (lo, hi) in BANDS.items()}
    upper = [c.upper() for c in ch_names]
    pairs = [(upper.index(a), upper.index(b)) for a, b in PAIRS if a in upper and b in upper]
    lat = {}
    for b, (lo, hi) in LATERAL_BANDS.items():
        lp = np.log(pxx[..., (f >= lo) & (f < hi)].sum(-1))
        lat[b] = np.stack([lp[:, i] - lp[:, j] for i, j in pairs], 1) if pairs else np.zeros((len(x), 0))
    return rel, lat, pairs


def channel_features(model, x: np.ndarray, pos: np.ndarray, ch_names: list[str], batch: int = 16) -> np.ndarray:
    """Frozen tokens averaged over each channel's patches: (n, C, dim)."""
    import torch

    model.eval()
    c = x.shape[1]
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32))
            b = len(xb)
            tok, _ = model.forward_features(xb, pos=torch.as_tensor(pos, dtype=torch.float32)[None].expand(b, -1, -1),
                                            mask=None, ch_names=[list(ch_names)] * b)
            out.append(tok.reshape(b, c, tok.shape[1] // c, -1).mean(2).numpy())
    return np.concatenate(out)


def ridge_r2(features: np.ndarray, target: np.ndarray, groups: np.ndarray) -> float:
    """R² of a ridge regression (alpha chosen inside each training fold) scored on held-out groups."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupKFold

    pred = np.zeros_like(target)
    for tr, te in GroupKFold(n_splits=len(np.unique(groups))).split(features, target, groups):
        pred[te] = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(features[tr], target[tr]).predict(features[te])
    return float(r2_score(target, pred))


def probe(feats: np.ndarray, rel: dict, lat: dict, pairs: list, subjects: np.ndarray) -> dict[str, float]:
    """R² per target for (n, C, dim) features."""
    n, c, d = feats.shape
    groups = np.repeat(subjects, c)
    f_ch = standardize_groups(feats.reshape(n * c, d), groups)
    res = {f"rel {b}": ridge_r2(f_ch, standardize_groups(y.reshape(-1, 1), groups)[:, 0], groups)
           for b, y in rel.items()}
    if pairs:
        pg = np.repeat(subjects, len(pairs))
        diff = np.stack([feats[:, i] - feats[:, j] for i, j in pairs], 1).reshape(n * len(pairs), d)
        f_lat = standardize_groups(diff, pg)
        for b, y in lat.items():
            res[f"lateral {b}"] = ridge_r2(f_lat, standardize_groups(y.reshape(-1, 1), pg)[:, 0], pg)
    return {k: round(v, 3) for k, v in res.items()}


def decode(feats: np.ndarray, y: np.ndarray, subjects: np.ndarray, folds: int = 4, inner: int = 3,
           grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)) -> dict[str, float]:
    """Balanced accuracy of the task's labels from frozen (n, C, dim) features: L2 logistic regression on the
    per-subject standardised features (as ``--adapt adabn-features`` standardises a probe's), leave-subjects-out
    (``folds`` outer folds over subjects), its C chosen by an inner leave-subjects-out split of the training
    subjects only. A closed-form, well-regularised linear probe: what a head trained by SGD on few windows could reach."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold

    f = standardize_groups(feats.reshape(len(feats), -1), subjects)
    fit = lambda c, idx: LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(f[idx], y[idx])  # noqa: E731
    scores = []
    for tr, te in GroupKFold(n_splits=min(folds, len(np.unique(subjects)))).split(f, y, subjects):
        k = min(inner, len(np.unique(subjects[tr])))
        val = {c: np.mean([balanced_accuracy_score(y[tr][iv], fit(c, tr[it]).predict(f[tr][iv]))
                           for it, iv in GroupKFold(n_splits=k).split(f[tr], y[tr], subjects[tr])]) for c in grid}
        best = max(grid, key=lambda c: (val[c], -c))
        scores.append(balanced_accuracy_score(y[te], fit(best, tr).predict(f[te])))
    return dict(mean=round(float(np.mean(scores)), 3), folds=[round(float(v), 3) for v in scores])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="eegmmidb-imagery-lr-xsubj")
    p.add_argument("--init", nargs="+", default=["lbm-tiny.eeg"], help="pretrained encoders: shipped names or exported dirs")
    p.add_argument("--random-seeds", type=int, default=2, help="random-init baselines of each encoder's architecture")
    p.add_argument("--align", choices=["none", "subject"], default="none",
                   help="subject: Euclidean-align each subject's windows first (the input of the --align decoders)")
    p.add_argument("--windows", type=int, default=400, help="windows drawn at random (seed 0); 0: all")
    p.add_argument("--decode", type=int, default=0, metavar="K",
                   help="also decode the task's labels from the frozen features: logistic regression, K leave-subjects-out "
                        "folds, C chosen on the training subjects only (see decode())")
    p.add_argument("--out", default="results/bench-feature-probe.json")
    args = p.parse_args(argv)

    import torch

    from neurofm.decoding.align import euclidean_align
    from neurofm.models._hub import from_pretrained, read_config
    from neurofm.registry import create_model
    from neurofm.tasks.data import load_task

    torch.set_num_threads(1)
    data = load_task(args.task, verbose=False)
    n = len(data.x) if args.windows <= 0 else min(len(data.x), args.windows)
    idx = np.sort(np.random.default_rng(0).choice(len(data.x), size=n, replace=False))
    x, subjects = np.asarray(data.x[idx], dtype=np.float32), np.asarray(data.subjects)[idx].astype(str)
    labels = np.asarray(data.y)[idx]
    if args.decode and data.task.kind != "classification":
        print(f"error: --decode fits a classifier, but task '{args.task}' is a {data.task.kind} task; leave --decode out.",
              file=sys.stderr)
        return 2
    if len(np.unique(subjects)) < 2:
        print(f"error: task '{args.task}' holds one subject; the probe is scored across subjects.", file=sys.stderr)
        return 2
    rel, lat, pairs = band_targets(x, data.sfreq, list(data.ch_names))  # always from the recorded signal
    if args.align == "subject":
        x = euclidean_align(x, np.asarray(data.mask[idx]), subjects.astype(object))
    results: dict = dict(task=args.task, align=args.align, n_windows=len(x), subjects=sorted(set(subjects)),
                         pairs=[f"{data.ch_names[i]}-{data.ch_names[j]}" for i, j in pairs], encoders={})
    for init in args.init:
        _, cfg = read_config(init)
        runs = {}
        for name in ["pretrained", *(f"random seed {seed}" for seed in range(args.random_seeds))]:
            if name == "pretrained":
                model = from_pretrained(init)
            else:
                torch.manual_seed(int(name.rsplit(" ", 1)[1]))
                model = create_model(cfg["model"], **cfg.get("kwargs", {}))
            feats = channel_features(model, x, data.pos, data.ch_names)
            runs[name] = probe(feats, rel, lat, pairs, subjects)
            if args.decode:
                runs[name]["decode bal. acc."] = decode(feats, labels, subjects, folds=args.decode)["mean"]
        rand = {k: float(np.mean([r[k] for name, r in runs.items() if name.startswith("random")]))
                for k in runs["pretrained"]}
        runs["gain (pretrained - random mean)"] = {k: round(runs["pretrained"][k] - rand[k], 3) for k in rand}
        results["encoders"][init] = runs
        print(f"{init} (input: {'Euclidean-aligned' if args.align == 'subject' else 'as recorded'}; R² across subjects)")
        for name, r in runs.items():
            print(f"  {name:32s} " + "  ".join(f"{k} {v:+.3f}" for k, v in r.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
