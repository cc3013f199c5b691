"""Benchmark neurofm's non-negative CP (``ntf_hals``) against tensorly at equal final fit.

Tensors are real dynamic-connectome tensors ``(n_pairs, n_windows, slices)`` made with
``neurofm.connectome.affinity.windowed_affinity`` (coderivative affinity) and
``neurofm.connectome.tensor.build_tensor`` (float32, scaled to [0, 1]):

* **19 ch** EEGMAT: 19 10-20 EEG channels, rest and task file of every subject (48 slices),
  alpha band 8-13 Hz, 2-s windows, 1-s step (61 windows).
* **64 ch** EEGMMIDB S001, runs R03-R14 (the 125-s task runs; R01/R02 are 60 s and would cut every
  run to 59 windows), alpha band, 2-s windows, 1-s step.
* **98 ch** epilepsy sEEG, all 98 channels of the EDF (20 s at 1000 Hz). One recording, so the
  slices are 6 bands: broadband, 4-8, 8-13, 13-30, 30-45, 45-70 Hz; 1-s windows, 0.5-s step.
* **394 ch** ``ieeg/epilepsy-ecog/sample_ecog_ieeg.fif`` (320 ECoG + 74 sEEG, 160 Hz, 0.7 s). The
  same 6 band slices with 0.1-s windows and 0.05-s step (13 windows). With 113 samples the band
  filters are far too short to be meaningful filters; the point is a realistic tensor *shape*.

Protocol, per tensor and rank ``R``: tensorly's ``non_negative_parafac_hals`` with its defaults
(SVD init, 100 iterations, ``tol=1e-7`` on the absolute error change) sets the target fit
``1 - ||X - M|| / ||X||`` (exact, from the reconstruction in float64). neurofm's ``ntf_hals``
(NumPy backend, ``init="svd"``) then runs with ``tol=0`` and ``target_fit=<target>``; tensorly's
multiplicative-update ``non_negative_parafac`` runs in warm-started chunks under a time budget
(``--mu-budget-s``) until its error estimate reaches the target (see ``mu_to_fit``). neurofm is
also run without extrapolation (plain HALS), on its torch backend (CPU here) for the 19-channel
tensor, and with its own ``tol=1e-6`` stopping rule. Times are
the best of ``--repeat`` runs; peak memory is the tracemalloc peak (NumPy allocations included) of
one separate run, above what was allocated before the call (the tensor itself). BLAS and torch are
pinned to ``--threads`` threads for every method (default 1: on a small shared machine extra BLAS
threads mostly spin and make the timings erratic).

Usage::

    python scripts/bench/connectome.py [--out FILE] [--rank R] [--quick] [--repeat N] [--threads N]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("NEUROFM_DATA", REPO.parent / "shared" / "data"))  # as tests/conftest.py
BANDS = (None, (4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0), (45.0, 70.0))
GOAL = 2.0  # wanted speed-up of neurofm over tensorly HALS at equal fit


# --------------------------------------------------------------------------- tensors


def _affinities(x: np.ndarray, sfreq: float, bands, **kw) -> list[np.ndarray]:
    from neurofm.connectome.affinity import windowed_affinity

    out = [windowed_affinity(x, sfreq, band=b, **kw) for b in bands]
    return [a.values if hasattr(a, "values") else a[0] for a in out]  # an Affinity, or an (A, times) pair


def tensor_eegmat(quick: bool) -> tuple[list, dict]:
    from neurofm.datasets import get_dataset

    ds = get_dataset("eegmat")
    refs = ds.recordings()
    refs = [r for r in refs if r.subject in sorted({r.subject for r in refs})[:6]] if quick else refs
    affs, names = [], []
    for ref in refs:
        raw = ds.load(ref).raw
        x = raw.get_data(picks="eeg")
        affs.append(_affinities(x, raw.info["sfreq"], [(8.0, 13.0)], window_s=2.0, step_s=1.0)[0])
        names.append(ref.id)
    return affs, dict(source="EEGMAT rest+task", slices=names, n_channels=x.shape[0], band=[8.0, 13.0],
                      window_s=2.0, step_s=1.0)


def tensor_eegmmidb(quick: bool) -> tuple[list, dict]:
    from neurofm.datasets import get_dataset

    ds = get_dataset("eegmmidb")
    refs = [r for r in ds.recordings() if r.run not in ("01", "02")][: 4 if quick else None]
    affs = []
    for ref in refs:
        raw = ds.load(ref).raw
        x = raw.get_data(picks="eeg")
        affs.append(_affinities(x, raw.info["sfreq"], [(8.0, 13.0)], window_s=2.0, step_s=1.0)[0])
    return affs, dict(source="EEGMMIDB S001 R03-R14", slices=[r.id for r in refs], n_channels=x.shape[0],
                      band=[8.0, 13.0], window_s=2.0, step_s=1.0)


def _ieeg(path: Path, quick: bool, window_s: float, step_s: float) -> tuple[list, dict]:
    from neurofm.io import read_raw

    raw = read_raw(path)
    x = raw.get_data()  # every channel of the file
    affs = _affinities(x, raw.info["sfreq"], BANDS, window_s=window_s, step_s=step_s)
    return affs, dict(source=str(path.relative_to(DATA)), slices=[str(b) for b in BANDS], n_channels=x.shape[0],
                      sfreq=raw.info["sfreq"], window_s=window_s, step_s=step_s)


TENSORS = {
    19: tensor_eegmat,
    64: tensor_eegmmidb,
    98: lambda q: _ieeg(DATA / "ieeg/epilepsy-seeg/sub-pat01_ses-test_acq-seeg_ieeg.edf", q, 1.0, 0.5),
    394: lambda q: _ieeg(DATA / "ieeg/epilepsy-ecog/sample_ecog_ieeg.fif", q, 0.1, 0.05),
}


def build(n_chans: int, quick: bool) -> tuple[np.ndarray, dict]:
    from neurofm.connectome.tensor import build_tensor

    t0 = time.perf_counter()
    affs, info = TENSORS[n_chans](quick)
    X = build_tensor(affs)
    info.update(shape=list(X.shape), build_s=time.perf_counter() - t0, mbytes=X.nbytes / 1e6)
    return X, info


# --------------------------------------------------------------------------- methods and measurements


def exact_fit(X: np.ndarray, weights, factors) -> float:
    """``1 - ||X - M||_F / ||X||_F`` in float64 from the full reconstruction."""
    w = np.ones(factors[0].shape[1]) if weights is None else np.asarray(weights, np.float64)
    f = [np.asarray(a, np.float64) for a in factors]
    model = np.einsum("r,ir,jr,kr->ijk", w, *f)
    x = X.astype(np.float64)
    return float(1.0 - np.linalg.norm(model - x) / np.linalg.norm(x))


def best_time(fn, repeat: int):
    """Best wall time of ``repeat`` calls (one call only when it takes over 20 s) and the last result."""
    times, out = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if times[-1] > 20:
            break
    return min(times), out


def peak_mb(fn) -> float:
    """tracemalloc peak of one call (MB) above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 1e6


def tl_hals(X, rank):
    from tensorly.decomposition import non_negative_parafac_hals

    return non_negative_parafac_hals(X, rank, return_errors=True)


def tl_mu(X, rank, n_iter, init="svd"):
    from tensorly.decomposition import non_negative_parafac

    # tol > 0 only so that tensorly records the error of every iteration (it stops at |change| < 1e-12)
    return non_negative_parafac(X, rank, n_iter_max=n_iter, init=init, tol=1e-12, return_errors=True)


def nf_to_fit(X, rank, target, backend="numpy", extrapolate=True):
    from neurofm.connectome.ntf import ntf_hals

    return ntf_hals(X, rank, tol=0, n_iter_max=3000, target_fit=target, init="svd", backend=backend,
                    extrapolate=extrapolate)


def mu_to_fit(X, rank, target, budget_s: float) -> dict:
    """Time tensorly MU needs to reach ``target``, with a real time cap.

    MU keeps no state but the factors, so it runs in warm-started chunks (10, 20, 40 ... iterations,
    each starting from the last model) until its own error estimate reaches the target or the budget
    is spent. The time to the target interpolates within the chunk where it was reached (uniform
    time per iteration); ``fit`` is tensorly's estimate at that iteration.
    """
    spent, done, cp, chunk, fits = 0.0, 0, "svd", 10, np.array([np.nan])
    while spent < budget_s:
        t0 = time.perf_counter()
        cp, errs = tl_mu(X, rank, chunk, init=cp)
        dt = time.perf_counter() - t0
        fits = 1.0 - np.asarray([float(e) for e in errs])
        hit = np.flatnonzero(fits >= target)
        if len(hit):
            return dict(seconds=spent + dt * (hit[0] + 1) / len(fits), n_iter=done + int(hit[0]) + 1,
                        fit=float(fits[hit[0]]), fit_is_estimate=True, probe_s=spent + dt, probe_iter=done + len(fits))
        spent, done, chunk = spent + dt, done + len(fits), min(2 * chunk, 320)
    return dict(seconds=None, n_iter=None, fit=None, probe_s=spent, probe_iter=done, probe_fit=float(fits[-1]))


def compare(X: np.ndarray, rank: int, repeat: int, mu_budget_s: float, torch_too: bool) -> dict:
    """Every method on one tensor; neurofm and MU run to tensorly HALS's exact fit."""
    from neurofm.connectome.ntf import ntf_hals

    out = {}
    sec, (cp, errs) = best_time(lambda: tl_hals(X, rank), repeat)
    target = exact_fit(X, cp.weights, cp.factors)
    out["tensorly_hals"] = dict(seconds=sec, n_iter=len(errs), fit=target, peak_mb=peak_mb(lambda: tl_hals(X, rank)))
    sec, res = best_time(lambda: nf_to_fit(X, rank, target), repeat)
    out["neurofm"] = dict(seconds=sec, n_iter=res.n_iter, fit=exact_fit(X, res.weights, res.factors),
                          reached=bool(res.converged), peak_mb=peak_mb(lambda: nf_to_fit(X, rank, target)))
    sec, res = best_time(lambda: nf_to_fit(X, rank, target, extrapolate=False), repeat)
    out["neurofm_plain"] = dict(seconds=sec, n_iter=res.n_iter, fit=exact_fit(X, res.weights, res.factors),
                                reached=bool(res.converged))
    if torch_too:
        sec, res = best_time(lambda: nf_to_fit(X, rank, target, "torch"), repeat)
        out["neurofm_torch_cpu"] = dict(seconds=sec, n_iter=res.n_iter, fit=exact_fit(X, res.weights, res.factors),
                                        reached=bool(res.converged))
    sec, res = best_time(lambda: ntf_hals(X, rank, tol=1e-6, backend="numpy"), repeat)
    out["neurofm_default_tol"] = dict(seconds=sec, n_iter=res.n_iter, fit=exact_fit(X, res.weights, res.factors))
    out["tensorly_mu"] = mu_to_fit(X, rank, target, mu_budget_s)
    base = out["tensorly_hals"]["seconds"]
    for row in out.values():
        ok = row.get("seconds") is not None and row.get("reached", True)
        row["speedup_vs_tensorly_hals"] = base / row["seconds"] if ok else None
    return out


# --------------------------------------------------------------------------- report


def _t(v, fmt="{:.3f}"):
    return "-" if v is None else fmt.format(v)


def print_comparison(name: str, info: dict, rows: dict, rank: int) -> None:
    print(f"\n== {name}: X {tuple(info['shape'])} float32, rank {rank}; target fit = tensorly HALS's "
          f"{rows['tensorly_hals']['fit']:.6f}")
    print(f"{'method':<38}{'time s':>9}{'iters':>7}{'exact fit':>11}{'vs TL-HALS':>12}")
    labels = dict(tensorly_hals="tensorly HALS (defaults)", neurofm="neurofm ntf_hals -> target",
                  neurofm_plain="  same, extrapolate=False", neurofm_torch_cpu="  same, torch backend on CPU",
                  tensorly_mu="tensorly MU -> target (*)", neurofm_default_tol="neurofm ntf_hals tol=1e-6 (own stop)")
    for key, label in labels.items():
        if key not in rows:
            continue
        r = rows[key]
        extra = ""
        if key == "tensorly_mu" and r["seconds"] is None:
            extra = f"  never reached: fit {r['probe_fit']:.6f} after {r['probe_iter']} iters ({r['probe_s']:.1f} s)"
        if not r.get("reached", True):
            extra = "  did NOT reach the target fit (iteration cap)"
        sp = r.get("speedup_vs_tensorly_hals")
        print(f"{label:<38}{_t(r.get('seconds')):>9}{_t(r.get('n_iter'), '{}'):>7}{_t(r.get('fit'), '{:.6f}'):>11}"
              f"{_t(sp, '{:.2f}x'):>12}{extra}")
    print("(*) MU: warm-started chunks under a time budget; time interpolated, fit = tensorly's own estimate")


def print_scaling(results: dict, rank: int) -> None:
    print(f"\n== scaling, rank {rank}, at tensorly HALS's fit (time = best of repeats; memory = tracemalloc peak)")
    head = (f"{'chans':>6}{'shape':>20}{'MB':>7} | {'TL-HALS s':>9}{'it':>5}{'MB':>7} | {'neurofm s':>9}{'it':>5}"
            f"{'MB':>7} | {'speed':>7}{'mem':>7} | {'TL-MU s':>9}")
    print(head)
    print("-" * len(head))
    for n, res in results.items():
        tl, nf, mu = res["rows"]["tensorly_hals"], res["rows"]["neurofm"], res["rows"]["tensorly_mu"]
        mu_s = _t(mu["seconds"]) if mu["seconds"] is not None else f">{mu['probe_s']:.0f} (no)"
        print(f"{n:>6}{str(tuple(res['tensor']['shape'])):>20}{res['tensor']['mbytes']:>7.1f} | "
              f"{tl['seconds']:>9.3f}{tl['n_iter']:>5}{tl['peak_mb']:>7.1f} | {nf['seconds']:>9.3f}{nf['n_iter']:>5}"
              f"{nf['peak_mb']:>7.1f} | {_t(nf['speedup_vs_tensorly_hals'], '{:.2f}x'):>7}"
              f"{tl['peak_mb'] / max(nf['peak_mb'], 1e-9):>6.1f}x"
              f" | {mu_s:>9}")


# --------------------------------------------------------------------------- main


def set_threads(n: int) -> None:
    """Pin every BLAS/OpenMP pool (NumPy's and SciPy's OpenBLAS, torch's MKL/OpenMP) to ``n`` threads."""
    import scipy.linalg  # noqa: F401  (load the libraries first: threadpoolctl limits loaded pools only)
    import tensorly  # noqa: F401
    import torch

    import neurofm.connectome.ntf  # noqa: F401

    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl missing: set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS yourself", file=sys.stderr)
        return
    threadpool_limits(n)


def warm_up(rank: int) -> None:
    """Import and first-call costs (torch, einops paths, tensorly backend) outside every timing."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(30, 8, 5)).astype(np.float32)
    for backend in ("numpy", "torch"):
        nf_to_fit(X, rank, 0.5, backend)
    tl_hals(X, rank)
    tl_mu(X, rank, 3)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message="Trying to compute SVD with n_eigenvecs")  # tensorly, rank > a dim
    set_threads(args.threads)
    import tensorly
    import torch

    repeat = 1 if args.quick else args.repeat
    mu_budget = 3.0 if args.quick else args.mu_budget_s
    warm_up(args.rank)
    results = {}
    for n in args.channels:
        X, info = build(n, args.quick)
        print(f"built {n}-channel tensor {tuple(X.shape)} in {info['build_s']:.1f} s", flush=True)
        rows = compare(X, args.rank, repeat, mu_budget, torch_too=(n == 19))
        results[n] = dict(tensor=info, rows=rows)
        print_comparison(f"{n} channels ({info['source']})", info, rows, args.rank)
    print_scaling(results, args.rank)
    speedups = {n: r["rows"]["neurofm"]["speedup_vs_tensorly_hals"] for n, r in results.items()}
    met = all(s is not None and s >= GOAL for s in speedups.values())
    listed = ", ".join(f"{n} ch " + _t(s, "{:.2f}x") for n, s in speedups.items())
    print(f"\ngoal (>= {GOAL:.0f}x faster than tensorly HALS at equal fit, every tensor): "
          f"{'MET' if met else 'NOT MET'} ({listed})")
    report = dict(
        date=datetime.datetime.now().isoformat(timespec="seconds"), argv=sys.argv[1:], rank=args.rank,
        quick=args.quick, repeat=repeat, threads=args.threads, mu_budget_s=mu_budget, goal_speedup=GOAL,
        goal_met=met, speedups=speedups, machine=dict(platform=platform.platform(), python=platform.python_version(),
                                                       numpy=np.__version__, tensorly=tensorly.__version__,
                                                       torch=torch.__version__),
        results={str(k): v for k, v in results.items()})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/bench-connectome.json", help="result JSON (default %(default)s)")
    p.add_argument("--rank", type=int, default=6, help="CP rank (default %(default)s; <= 6 keeps it below "
                   "every dimension of the iEEG tensors, which have 6 band slices)")
    p.add_argument("--quick", action="store_true", help="fewer EEG slices, one repeat, 3-s MU budget")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per method, best kept (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="BLAS/torch threads for every method (default %(default)s)")
    p.add_argument("--mu-budget-s", type=float, default=30.0, help="time budget of the MU probe (default %(default)s)")
    p.add_argument("--channels", type=int, nargs="+", default=[19, 64, 98, 394], choices=sorted(TENSORS),
                   help="tensors to run (default all)")
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
