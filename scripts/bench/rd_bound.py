"""Gaussian rate–distortion bounds for z-scored EEG: how low could per-patch, per-window and cross-channel coding go?

Reverse water-filling on principal-component variances (the distortion–rate function of a Gaussian source with the
data's covariance, which upper-bounds that of any source with that covariance): the covariance is estimated on the
training subjects' windows and its eigenvectors are scored on the evaluated subjects. Three codings of each
z-scored channel-window (every channel-window z-scored, as the tokenizers code them) at a given rate:

- ``patch``: each 1-s patch on its own (what a per-token codec can do);
- ``channel-window``: the whole 4-s channel-window (what temporal context could add);
- ``cross-channel``: the DCT coefficients of each patch, coded jointly across the window's channels (what the
  other channels could add; coefficients treated as independent of each other).

    python scripts/bench/rd_bound.py --store out/eegmat-200hz --bits 120 150 --out results/rd-bound.json

Tenth session, EEGMAT (train 00–11, evaluated on 12–17), 150 code bits per channel-second: z-MSE 0.032 / 0.033 /
0.020 (the tokenizer reached 0.049 on held-out subjects with 150 bits of codes and counts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.fft import dct

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def water_fill(variances: np.ndarray, bits: float) -> float:
    """Distortion (sum over components) of a Gaussian with these component variances coded at ``bits``."""
    lo, hi = 1e-12, float(variances.max())
    for _ in range(200):
        theta = (lo * hi) ** 0.5
        if 0.5 * np.log2(np.maximum(variances / theta, 1.0)).sum() > bits:
            lo = theta
        else:
            hi = theta
    return float(np.minimum(variances, hi).sum())


def held_out_variances(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Variances of ``test`` (n, d) along the principal axes of ``train`` (m, d)."""
    mean = train.mean(0)
    _, vecs = np.linalg.eigh(np.cov((train - mean).T))
    return ((test - mean) @ vecs).var(0)


def windows(store, subjects: list[str]) -> np.ndarray:
    idx = np.flatnonzero(np.isin(store.subjects.astype(str), subjects))
    x = np.stack([np.asarray(store[i], np.float64) for i in idx.tolist()])              # (n, C, T)
    return (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-12)


def main() -> int:
    from neurofm.data.dataset import WindowStore

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--train-subjects", nargs="+", default=[f"{i:02d}" for i in range(12)])
    ap.add_argument("--subjects", nargs="+", default=[f"{i:02d}" for i in range(12, 18)], help="evaluated subjects")
    ap.add_argument("--patch", type=int, default=200, help="samples per patch (1 s at 200 Hz)")
    ap.add_argument("--bits", nargs="+", type=float, default=[120.0, 150.0], help="code bits per channel-second")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    store = WindowStore(args.store)
    sfreq = store.sfreq()
    train, test = windows(store, args.train_subjects), windows(store, args.subjects)
    n_chans, n_times, p = train.shape[1], train.shape[2], args.patch
    per_patch = held_out_variances(train.reshape(-1, p), test.reshape(-1, p))
    per_window = held_out_variances(train.reshape(-1, n_times), test.reshape(-1, n_times))
    coef_tr = dct(train.reshape(len(train), n_chans, -1, p), norm="ortho", axis=-1)
    coef_te = dct(test.reshape(len(test), n_chans, -1, p), norm="ortho", axis=-1)
    across = np.concatenate([held_out_variances(coef_tr[..., k].transpose(0, 2, 1).reshape(-1, n_chans),
                                                coef_te[..., k].transpose(0, 2, 1).reshape(-1, n_chans))
                             for k in range(p)])
    seconds = p / sfreq
    rows = []
    for bits in args.bits:
        per_patch_bits = bits * seconds
        rows.append(dict(bits_per_channel_second=bits,
                         patch=water_fill(per_patch, per_patch_bits) / p,
                         channel_window=water_fill(per_window, bits * n_times / sfreq) / n_times,
                         cross_channel=water_fill(across, per_patch_bits * n_chans) / (n_chans * p)))
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) and k != "bits_per_channel_second" else f"{k}={v:g}"
                       for k, v in rows[-1].items()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(dict(store=args.store, train_subjects=args.train_subjects,
                                                  subjects=args.subjects, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
