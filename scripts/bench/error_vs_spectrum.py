"""Does a tokenizer's error follow a subject's high-frequency content? Per-subject z-MSE against spectral share.

For every subject of a tokenizer evaluation (the JSON of ``neurofm evaluate tokenizer --out``, or a section of the
release summary ``out/release/release-all.json``), this reads the subject's windows from the evaluated store,
z-scores every patch as the tokenizer does, and measures the share of the patch's variance above ``--above`` Hz
(Welch, one patch per segment). It prints, per subject, the tokenizer's z-MSE at one rate, the DCT codec's at the
same rate (the baseline of the same evaluation) and their ratio, beside that share, and the Spearman correlation of
each codec's error with it::

    python scripts/bench/error_vs_spectrum.py --eval out/release/release-all.json:tokenizer.uci-alcohol \\
        --store out/release/uci-alcohol-200hz --out results/error-vs-spectrum-uci.json

A tokenizer whose error rises with the share while the DCT's stays flat is failing on the high band, not on the
subject as a whole.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def load_evaluation(spec: str) -> dict:
    """``FILE`` or ``FILE:dotted.key`` → the evaluation dict (with ``points`` and ``dct``)."""
    path, _, key = spec.partition(":")
    obj = json.loads(Path(path).read_text())
    for part in filter(None, key.split(".")):
        obj = obj[part]
    if "points" not in obj:
        raise SystemExit(f"error: {spec}: no 'points' (give the evaluation JSON, or FILE:key of one inside it).")
    return obj


def pick(points: list[dict], bits: float | None, key: str) -> dict:
    if bits is None:
        return points[-1]
    return min(points, key=lambda p: abs(p[key] - bits))


def high_share(store, subjects: list[str], above: float) -> dict[str, float]:
    from scipy.signal import welch

    sf = store.sfreq()
    out = {}
    for s in subjects:
        shares = []
        for rec, meta in enumerate(store.recordings):
            if meta["subject"] != s:
                continue
            x = np.asarray(store.array(rec), dtype=np.float64)       # (windows, channels, times)
            p = int(meta["patch_size"])
            x = x.reshape(*x.shape[:2], -1, p)
            z = (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-8)
            f, psd = welch(z, fs=sf, nperseg=p, axis=-1)
            shares.append((psd[..., f >= above].sum(-1) / psd.sum(-1)).ravel())
        if not shares:
            raise SystemExit(f"error: subject {s} has no windows in {store.root}.")
        out[s] = float(np.concatenate(shares).mean())
    return out


def main() -> int:
    from scipy.stats import spearmanr

    from neurofm.data.dataset import WindowStore

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", required=True, help="evaluation JSON, or FILE:dotted.key of one inside a summary")
    ap.add_argument("--store", required=True, help="the store the evaluation read")
    ap.add_argument("--bits", type=float, help="rate (nominal bits/ch-s) to compare at (default: the top level)")
    ap.add_argument("--above", type=float, default=30.0, help="Hz (default 30)")
    ap.add_argument("--out", help="JSON results")
    args = ap.parse_args()

    ev = load_evaluation(args.eval)
    tok = pick(ev["points"], args.bits, "bits_nominal")
    dct = pick(ev.get("dct") or [], tok["bits_nominal"], "target_bits") if ev.get("dct") else None
    subjects = sorted(tok["subjects"])
    share = high_share(WindowStore(args.store), subjects, args.above)
    rows = [dict(subject=s, share=share[s], zmse=tok["subjects"][s],
                 dct=dct["subjects"][s] if dct else None) for s in subjects]
    print(f"{len(rows)} subjects; tokenizer at {tok['bits_nominal']:.0f} bits/ch-s"
          + (f", DCT at {dct['target_bits']:.0f}" if dct else ""))
    print(f"{'subject':>14}  share>{args.above:g}Hz  tokenizer z-MSE  DCT z-MSE  ratio")
    for r in rows:
        d = f"{r['dct']:.4f}  {r['zmse'] / r['dct']:5.1f}x" if dct else "-"
        print(f"{r['subject']:>14}  {r['share']:11.3f}  {r['zmse']:15.4f}  {d}")
    result = dict(eval=args.eval, store=args.store, above_hz=args.above, bits=tok["bits_nominal"], rows=rows)
    for name in ("zmse", "dct"):
        vals = [r[name] for r in rows]
        if None in vals or len(rows) < 3:
            continue
        rho, p = spearmanr([r["share"] for r in rows], vals)
        result[f"spearman_{name}"] = dict(rho=float(rho), p=float(p))
        print(f"Spearman(share, {'tokenizer' if name == 'zmse' else 'DCT'} z-MSE) = {rho:+.2f} (p = {p:.2g})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
