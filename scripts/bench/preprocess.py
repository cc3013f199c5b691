"""Benchmark neurofm preprocessing against braindecode doing the same steps on the same files.

Both sides run recipe ``eeg-200hz`` on every shared EEGMAT file (rest + task, 48) and on EEGMMIDB
S001-S004 (32 runs): pick the 10-05 EEG channels, notch at the line frequency and its harmonics below
Nyquist, band-pass 0.1-75 Hz (``raw.filter``), average reference, resample to 200 Hz (``raw.resample``),
µV, 4-s non-overlapping windows written to disk. neurofm also does its amplitude check and bad-channel
detection (and may interpolate a channel); braindecode has no equivalent, so recordings where neurofm
interpolated are reported apart from the numeric comparison. braindecode gets each recording's channel
list (names and order) from neurofm's manifest, so the comparison is like for like.

Every (side, dataset) pair runs in its own subprocess of this script (``--side``), one after the
other, so wall time and peak memory (joblib workers included) belong to that side alone. The parent
then compares the windows numerically and times random access to windows in both stores.

neurofm runs its default ``mode: fast`` (streamed, fused FIR, polyphase resampling); braindecode runs MNE's
filters and FFT resampling, as neurofm's ``--exact`` does.

Long recordings (``--long-hours``, default 0.5 2 8): 32-channel 500-Hz EDFs (noise, 10-Hz rhythm, 50-Hz
mains; a BIDS sidecar declares the 50-Hz line) are generated into the temporary folder, never kept. On
each: neurofm fast, neurofm ``--exact`` (today's path; on the shortest only, it holds the whole recording)
and braindecode, one at a time, n_jobs=1 (one file), each in a child process whose data segment is capped
at ``--cap-gb`` (``resource.RLIMIT_DATA``) so a side that needs more fails with MemoryError instead of
taking the machine down: that failure is its result. Reported: wall time, hours of signal per second,
peak RSS of the process, and the outputs compared on the first and last windows.

Usage::

    python scripts/bench/preprocess.py [--out FILE] [--n-jobs N] [--datasets eegmat eegmmidb] [--n-random 2000]
        [--repeat 1] [--long-hours 0.5 2 8] [--cap-gb 8]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RECIPE = "eeg-200hz"
L_FREQ, H_FREQ, SFREQ, WINDOW = 0.1, 75.0, 200.0, 800  # as in pipelines/eeg-200hz.yaml (4 s at 200 Hz)
FILES = {"eegmat": ("eeg/eegmat/rest/*.edf", "eeg/eegmat/task/*.edf"), "eegmmidb": ("eeg/eegmmidb/S00[1-4]/*.edf",)}
GOALS = {"random_access": 30.0, "preprocess": 3.0, "rss_ratio": 1.2, "rss_8h_mb": 1024.0}
LONG_CHANNELS = ("Fp1 Fp2 F7 F3 Fz F4 F8 FC5 FC1 FC2 FC6 T7 C3 Cz C4 T8 TP9 CP5 CP1 CP2 CP6 TP10 P7 P3 Pz P4 P8 "
                 "PO9 O1 Oz O2 PO10").split()
LONG_SFREQ = 500


def to_microvolts(x: np.ndarray) -> np.ndarray:
    """Volts → µV (a named function, so that braindecode can serialise the Preprocessor)."""
    return x * 1e6


# --------------------------------------------------------------------------- memory


def _tree_rss(pid: int) -> int:
    """Summed resident memory (bytes) of ``pid`` and all its descendants, from Linux /proc."""
    parent, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fid:
                fields = fid.read().rpartition(")")[2].split()  # after "pid (comm)": state ppid ... rss
        except OSError:
            continue  # the process ended meanwhile
        parent[int(entry)], rss[int(entry)] = int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    tree, grew = {pid}, True
    while grew:
        new = {p for p, pp in parent.items() if pp in tree} - tree
        tree, grew = tree | new, bool(new)
    return sum(rss.get(p, 0) for p in tree)


class TreeMemory(threading.Thread):
    """Samples the process tree's summed RSS every ``every`` s; ``peak`` is the maximum seen (bytes).

    Shared pages (libraries, memory maps) count once per process, so this is an upper bound.
    """

    def __init__(self, every: float = 0.1):
        super().__init__(daemon=True)
        self.every, self.peak, self._halt = every, 0, threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            self.peak = max(self.peak, _tree_rss(os.getpid()))

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


# --------------------------------------------------------------------------- generated long recordings


def write_edf(path: Path, hours: float, seed: int = 0, block_s: int = 600) -> None:
    """A 32-channel 500-Hz EDF of ``hours`` written block by block (never whole in memory), 0.1-µV steps.

    Per channel: white noise (10 µV rms), a 10-Hz rhythm (20 µV) and 50-Hz mains (5 µV), plus a common
    drift so that the average reference has something to remove.
    """
    n_ch, sf = len(LONG_CHANNELS), LONG_SFREQ
    n_rec = int(round(hours * 3600))  # 1-s data records
    phys = 3276.7  # µV; digital ±32767

    def field(value, width):
        return str(value).ljust(width)[:width].encode("ascii")

    head = b"".join([field(0, 8), field("X X X X", 80), field("Startdate 01-JAN-2020 X X X", 80),
                     field("01.01.20", 8), field("00.00.00", 8), field(256 * (n_ch + 1), 8), field("", 44),
                     field(n_rec, 8), field(1, 8), field(n_ch, 4)])
    cols = [([f"EEG {c}" for c in LONG_CHANNELS], 16), (["AgAgCl electrode"] * n_ch, 80), (["uV"] * n_ch, 8),
            ([-phys] * n_ch, 8), ([phys] * n_ch, 8), ([-32767] * n_ch, 8), ([32767] * n_ch, 8),
            (["HP:DC LP:250Hz"] * n_ch, 80), ([sf] * n_ch, 8), ([""] * n_ch, 32)]
    head += b"".join(field(v, w) for values, w in cols for v in values)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, (n_ch, 1)).astype(np.float32)
    with open(path, "wb") as fid:
        fid.write(head)
        for r0 in range(0, n_rec, block_s):
            nr = min(block_s, n_rec - r0)
            t = (np.arange(nr * sf, dtype=np.float64) / sf + r0)[None].astype(np.float32)
            x = rng.standard_normal((n_ch, nr * sf), dtype=np.float32) * 10
            x += 20 * np.sin(2 * np.pi * 10 * t + phase) + 5 * np.sin(2 * np.pi * 50 * t)
            x += 30 * np.sin(2 * np.pi * 0.05 * t)
            d = np.clip(np.round(x * (32767 / phys)), -32767, 32767).astype("<i2")
            fid.write(d.reshape(n_ch, nr, sf).transpose(1, 0, 2).tobytes())  # records × signals × samples
    path.with_name(path.name.replace(".edf", ".json")).write_text(json.dumps(dict(PowerLineFrequency=50)))


# --------------------------------------------------------------------------- the two sides (subprocess)


def _dataset(name: str, spec: str | None):
    from neurofm.datasets import get_dataset

    return get_dataset(spec or name)


def run_neurofm(name: str, work: Path, n_jobs: int, spec: str | None = None, mode: str = "fast",
                max_memory: str | None = None) -> dict:
    import mne  # noqa: F401  (libraries loaded before the clock starts, as on the braindecode side)
    import scipy.signal  # noqa: F401

    import neurofm.preprocessing.stream  # noqa: F401
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess

    dataset, recipe = _dataset(name, spec), resolve_recipe(RECIPE).model_copy(update=dict(mode=mode))
    t0 = time.perf_counter()
    res = preprocess(dataset, recipe, work / "neurofm" / name, n_jobs=n_jobs, report=False, verbose=False,
                     max_memory=max_memory)
    wall = time.perf_counter() - t0
    return dict(wall_s=wall, n_recordings=len(res.done), n_windows=sum(r["n_windows"] for r in res.done),
                failed=[dict(id=f["id"], kind=f["kind"], error=f["error"]) for f in res.failed])


def run_braindecode(name: str, work: Path, n_jobs: int, spec: str | None = None, neurofm_store: str | None = None) -> dict:
    import mne
    from braindecode.datasets import BaseConcatDataset, RawDataset
    from braindecode.preprocessing import Preprocessor, create_fixed_length_windows, preprocess

    from neurofm.io.sidecars import Sidecars

    manifest = json.loads((work / "neurofm" / (neurofm_store or name) / "manifest.json").read_text())
    line = _dataset(name, spec).line_freq
    if line is None:  # folder datasets: the BIDS sidecar beside the file declares it (as neurofm reads it)
        line = Sidecars.find(manifest["recordings"][0]["source"]).line_freq
    t0 = time.perf_counter()
    datasets, rates = [], set()
    for rec in manifest["recordings"]:
        raw = mne.io.read_raw_edf(rec["source"], preload=False, verbose="error")
        raw.rename_channels({c["original"]: c["name"] for c in rec["channels"] if c["original"] != c["name"]})
        keep = {c["name"] for c in rec["channels"]}
        raw.set_channel_types({ch: "eeg" if ch in keep else "misc" for ch in raw.ch_names},
                              on_unit_change="ignore", verbose="error")
        rates.add(raw.info["sfreq"])
        datasets.append(RawDataset(raw, dict(id=rec["id"], subject=rec["subject"])))
    if len(rates) != 1:
        raise SystemExit(f"{name}: recordings at several rates {sorted(rates)}; one notch list cannot serve all")
    nyq = rates.pop() / 2
    freqs = [line * k for k in range(1, int(nyq // line) + 1) if line * k < nyq - 1]  # as neurofm's notch step
    concat = BaseConcatDataset(datasets)
    preprocess(concat, [
        Preprocessor("pick", picks="eeg"),  # the channels neurofm kept, in its order
        Preprocessor("notch_filter", freqs=freqs, verbose="error"),
        Preprocessor("filter", l_freq=L_FREQ, h_freq=H_FREQ, verbose="error"),
        Preprocessor("set_eeg_reference", ref_channels="average", verbose="error"),
        Preprocessor("resample", sfreq=SFREQ, verbose="error"),
        Preprocessor(to_microvolts),
    ], n_jobs=n_jobs)
    windows = create_fixed_length_windows(concat, window_size_samples=WINDOW, window_stride_samples=WINDOW,
                                          on_last_window="drop", preload=True, n_jobs=n_jobs)
    windows.save(str(work / "braindecode" / name), overwrite=True)
    wall = time.perf_counter() - t0
    return dict(wall_s=wall, n_recordings=len(windows.datasets), n_windows=len(windows), notch_freqs=freqs)


def side_main(args: argparse.Namespace) -> None:
    """Entry point of a ``--side`` subprocess: run one side on one dataset, write its result JSON."""
    import shutil
    import warnings

    warnings.filterwarnings("ignore")  # MNE/braindecode deprecation chatter
    os.environ["MNE_LOGGING_LEVEL"] = "ERROR"  # also for the joblib workers
    work = Path(args.work)
    shutil.rmtree(work / args.side / args.dataset, ignore_errors=True)  # no resumed (skipped) recordings
    (work / args.side).mkdir(parents=True, exist_ok=True)
    monitor = TreeMemory()
    monitor.start()
    if args.side == "neurofm":
        result = run_neurofm(args.dataset, work, args.n_jobs, args.spec, args.mode, args.max_memory)
    else:
        result = run_braindecode(args.dataset, work, args.n_jobs, args.spec, args.neurofm_store)
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)  # reap the workers so that RUSAGE_CHILDREN counts them
    result["peak_tree_rss_mb"] = monitor.stop() / 2**20
    result["peak_rss_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_worker_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(args.side_out).write_text(json.dumps(result))


# --------------------------------------------------------------------------- comparison (parent)


def compare(name: str, work: Path, limit: int | None = None) -> dict:
    """Max abs / relative difference of every window (or the first and last ``limit // 2``), neurofm vs braindecode (µV).

    ``rms_rel`` is the relative RMS difference ||a - b|| / ||b|| over the compared windows.
    """
    from braindecode.datautil import load_concat_dataset

    store = work / "neurofm" / name
    recs = {r["id"]: r for r in json.loads((store / "manifest.json").read_text())["recordings"]}
    bd = load_concat_dataset(str(work / "braindecode" / name), preload=False)
    worst_abs, worst_rel, n_compared, mismatched, interpolated = 0.0, 0.0, 0, [], []
    sq_diff, sq_ref, cross = 0.0, 0.0, None
    for sub in bd.datasets:
        rec = recs[sub.description["id"]]
        a = np.load(store / "shards" / rec["file"], mmap_mode="r")
        idx = np.arange(len(sub))
        if limit is not None and len(idx) > limit:
            idx = np.concatenate([idx[: limit // 2], idx[-(limit // 2):]])
        if a.shape[0] != len(sub):
            mismatched.append(dict(id=rec["id"], neurofm=list(a.shape), braindecode=[len(sub)]))
            continue
        a = np.asarray(a[idx])
        b = np.stack([sub[int(j)][0] for j in idx])
        if a.shape != b.shape:
            mismatched.append(dict(id=rec["id"], neurofm=list(a.shape), braindecode=list(b.shape)))
            continue
        diff = np.abs(a.astype(np.float64) - b)
        if rec["interpolated"]:  # neurofm rebuilt these channels; the average reference spreads that to all
            names = [c["name"] for c in rec["channels"]]
            other = [i for i, n in enumerate(names) if n not in rec["interpolated"]]
            interpolated.append(dict(id=rec["id"], channels=rec["interpolated"], bads=rec["bads"],
                                     max_abs_uv_all=float(diff.max()), max_abs_uv_other_channels=float(diff[:, other].max()),
                                     rel_all=float(diff.max() / b.std())))
            continue
        worst_abs, worst_rel = max(worst_abs, float(diff.max())), max(worst_rel, float(diff.max() / b.std()))
        sq_diff, sq_ref = sq_diff + float((diff**2).sum()), sq_ref + float((b.astype(np.float64) ** 2).sum())
        spec = np.fft.rfft(a, axis=-1) * np.conj(np.fft.rfft(b, axis=-1))
        cross = cross + spec.sum(axis=(0, 1)) if n_compared else spec.sum(axis=(0, 1))
        n_compared += 1
    lag_ms = None
    if n_compared:  # time lag of neurofm behind braindecode: slope of the cross-spectrum phase over 1-60 Hz
        sf = next(iter(recs.values()))["sfreq"]
        f = np.fft.rfftfreq(2 * (len(cross) - 1), 1 / sf)
        band = (f >= 1) & (f <= 60)
        slope = np.polyfit(2 * np.pi * f[band], np.unwrap(np.angle(cross[band])), 1)[0]
        lag_ms = float(-slope * 1e3)
    return dict(n_compared=n_compared, max_abs_uv=worst_abs, max_rel=worst_rel, shape_mismatch=mismatched,
                rms_rel=float(np.sqrt(sq_diff / sq_ref)) if sq_ref else None, lag_ms=lag_ms,
                interpolated_separately=interpolated)


def run_capped(cmd: list[str], cap_bytes: int) -> dict:
    """Run ``cmd`` with its data segment capped (RLIMIT_DATA); return its exit code, wall time, peak RSS, stderr tail."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (cap_bytes, cap_bytes))

    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, preexec_fn=cap, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
    return dict(returncode=proc.returncode, process_s=wall, peak_rss_process_mb=usage.ru_maxrss / 1024, stderr_tail=tail)


def run_long(args: argparse.Namespace, work: Path) -> dict:
    """Generated 32-channel 500-Hz recordings of ``args.long_hours``: neurofm fast / exact and braindecode, capped."""
    import shutil

    out = {}
    cap = int(args.cap_gb * 2**30)
    for hours in args.long_hours:
        key = f"long-{hours:g}h"
        folder = work / "gen" / key
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        path = folder / "sub-01_task-rest_eeg.edf"
        print(f"[{key}] writing a {hours:g}-h 32-channel 500-Hz EDF ...", flush=True)
        write_edf(path, hours)
        entry = out[key] = dict(hours=hours, file_mb=path.stat().st_size / 2**20, generate_s=time.perf_counter() - t0)
        sides = [("neurofm", "fast")] + ([("neurofm", "exact")] if hours == min(args.long_hours) else []) + \
            ([("braindecode", None)] if hours <= args.braindecode_max_hours else [])
        for side, mode in sides:
            label = side if side == "braindecode" else f"neurofm_{mode}"
            store = key if mode in (None, "fast") else f"{key}-exact"
            side_out = work / f"{label}-{key}.json"
            cmd = [sys.executable, __file__, "--side", side, "--dataset", store, "--spec", f"folder:{folder}",
                   "--mode", mode or "fast", "--neurofm-store", key, "--n-jobs", "1", "--work", str(work),
                   "--side-out", str(side_out)] + (["--max-memory", args.max_memory] if args.max_memory else [])
            print(f"[{key}] running {label} (data capped at {args.cap_gb:g} GB) ...", flush=True)
            run = run_capped(cmd, cap)
            res = dict(json.loads(side_out.read_text()), ok=True) if run["returncode"] == 0 and side_out.exists() \
                else dict(ok=False, error=" | ".join(run["stderr_tail"]))
            res.update(run)
            if res["ok"]:
                res["hours_per_s"] = hours / res["wall_s"]
            entry[label] = res
            if not res["ok"]:
                print(f"[{key}] {label} FAILED after {res['process_s']:.0f} s, peak RSS {res['peak_rss_process_mb']:.0f} MB: "
                      f"{res['error'][-300:]}", flush=True)
            else:
                print(f"[{key}] {label}: wall {res['wall_s']:.1f} s, {res['hours_per_s']:.3f} h/s, peak RSS "
                      f"{res['peak_rss_process_mb']:.0f} MB, {res['n_windows']} windows", flush=True)
        shutil.rmtree(folder, ignore_errors=True)  # the 8-h EDF is ~1 GB; the stores stay for the comparison
    return out


def random_access(name: str, work: Path, n: int, repeat: int = 1, seed: int = 0) -> dict:
    """Windows/s reading ``n`` random windows, neurofm WindowStore vs braindecode's lazily loaded dataset.

    Every window is copied into a fresh array: ``WindowStore[i]`` returns a view of a memory map, and
    without the copy its samples would never be read from disk. The fastest of ``repeat`` passes counts.

    Also measured, in the same pass order, a memory-read ceiling: the same windows copied (same loop, same
    copy) from the store's shards loaded whole into RAM as numpy arrays (``ceiling``), and neurofm's
    fraction of it (``neurofm_vs_ceiling``): how close the store's random access is to copying from memory.
    """
    from braindecode.datautil import load_concat_dataset

    from neurofm.data.dataset import WindowStore

    out = {}
    for side in ("neurofm", "ceiling", "braindecode"):
        t0 = time.perf_counter()
        if side == "neurofm":
            ds = WindowStore(work / "neurofm" / name)
            get = ds.__getitem__
        elif side == "ceiling":  # the same windows, from in-RAM copies of the same shards
            store = WindowStore(work / "neurofm" / name)
            shards = [np.array(store.array(r)) for r in range(len(store.recordings))]  # read whole into RAM
            rec, win, ds = store.rec_index.tolist(), store.win_index.tolist(), store
            get = lambda i, shards=shards, rec=rec, win=win: shards[rec[i]][win[i]]  # noqa: E731
            window_bytes = shards[0][0].nbytes
        else:
            ds = load_concat_dataset(str(work / "braindecode" / name), preload=False)
            get = lambda i, ds=ds: ds[i][0]  # noqa: E731
        opened, rates = time.perf_counter() - t0, []
        idx = np.random.default_rng(seed).integers(len(ds), size=n)
        for _ in range(repeat):
            t0 = time.perf_counter()
            for i in idx:
                np.array(get(int(i)), dtype=np.float32, copy=True)
            rates.append(n / (time.perf_counter() - t0))
        out[side] = dict(open_s=opened, windows_per_s=max(rates), windows_per_s_all=rates)
    out["ceiling"].update(bytes_per_window=int(window_bytes),
                          gb_per_s=out["ceiling"]["windows_per_s"] * window_bytes / 1e9)
    out["ratio"] = out["neurofm"]["windows_per_s"] / out["braindecode"]["windows_per_s"]
    out["neurofm_vs_ceiling"] = out["neurofm"]["windows_per_s"] / out["ceiling"]["windows_per_s"]
    return out


def machine() -> dict:
    from importlib.metadata import version  # not importing the packages: see main()

    return dict(platform=platform.platform(), processor=platform.processor(), python=platform.python_version(),
                cpu_count=os.cpu_count(), cpus_usable=len(os.sched_getaffinity(0)), load_avg_start=os.getloadavg(),
                versions={p: version(p) for p in ("neurofm", "braindecode", "mne", "numpy", "torch")})


def verdict(value: float, goal: float) -> str:
    return f"{value:.1f}x (goal >= {goal:g}x: {'met' if value >= goal else 'MISSED'})"


def main(args: argparse.Namespace) -> None:
    from neurofm.datasets import get_dataset

    results = dict(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"), machine=machine(),
                   n_jobs=args.n_jobs, recipe=RECIPE, n_random=args.n_random, repeat=args.repeat, datasets={})
    # All sides run before this process imports braindecode/torch: Linux carries a parent's peak RSS
    # over fork+exec into the child's ru_maxrss, which would inflate the sides' figures.
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        work = Path(tmp)
        if args.long_hours:  # before this process imports braindecode (see above)
            results["long"] = run_long(args, work)
        for name in args.datasets:
            root = get_dataset(name).root.parents[1]  # the shared data folder (…/eeg/<name> → …)
            entry = results["datasets"][name] = dict(n_files=sum(len(list(root.glob(p))) for p in FILES[name]))
            for side in ("neurofm", "braindecode"):  # braindecode needs neurofm's channel lists
                runs = []
                for k in range(args.repeat):  # each run starts from an empty output folder
                    side_out = work / f"{side}-{name}.json"
                    cmd = [sys.executable, __file__, "--side", side, "--dataset", name, "--work", tmp,
                           "--n-jobs", str(args.n_jobs), "--side-out", str(side_out)]
                    print(f"[{name}] running {side} ({k + 1}/{args.repeat}) ...", flush=True)
                    t0 = time.perf_counter()
                    subprocess.run(cmd, check=True)
                    runs.append(dict(json.loads(side_out.read_text()), process_s=time.perf_counter() - t0))
                    print(f"[{name}] {side}: wall {runs[-1]['wall_s']:.2f} s, peak RSS self "
                          f"{runs[-1]['peak_rss_self_mb']:.0f} MB / worker {runs[-1]['peak_rss_worker_mb']:.0f} MB", flush=True)
                best = min(runs, key=lambda r: r["wall_s"])
                entry[side] = dict(best, wall_s_all=[r["wall_s"] for r in runs],
                                   **{k: max(r[k] for r in runs) for k in best if k.startswith("peak_")})
            entry["preprocess_ratio"] = entry["braindecode"]["wall_s"] / entry["neurofm"]["wall_s"]
        import mne

        mne.set_log_level("ERROR")
        for name, entry in results["datasets"].items():
            print(f"[{name}] comparing windows and timing random access ...", flush=True)
            entry["numeric"] = compare(name, work)
            entry["random_access"] = random_access(name, work, args.n_random, args.repeat)
        for key, entry in results.get("long", {}).items():
            if entry.get("braindecode", {}).get("ok") and entry["neurofm_fast"]["ok"]:
                print(f"[{key}] comparing the first and last 100 windows ...", flush=True)
                entry["numeric"] = compare(key, work, limit=200)
    results["machine"]["load_avg_end"] = os.getloadavg()
    ds = results["datasets"].values()
    total = {side: sum(e[side]["wall_s"] for e in ds) for side in ("neurofm", "braindecode")}
    results["overall"], results["goals"] = {}, {}
    if ds:
        results["overall"] = dict(
            preprocess_s=total, preprocess_ratio=total["braindecode"] / total["neurofm"],
            random_access_ratio_min=min(e["random_access"]["ratio"] for e in ds),
            random_access_vs_ceiling_min=min(e["random_access"]["neurofm_vs_ceiling"] for e in ds))
        results["goals"] = {
            **{f"preprocess_ratio_{k}>=3": e["preprocess_ratio"] >= GOALS["preprocess"]
               for k, e in results["datasets"].items()},
            "random_access_ratio>=30": results["overall"]["random_access_ratio_min"] >= GOALS["random_access"]}
    long = results.get("long", {})
    fast = {k: e["neurofm_fast"] for k, e in long.items() if e["neurofm_fast"]["ok"]}
    if len(fast) >= 2:
        keys = sorted(fast, key=lambda k: long[k]["hours"])
        lo, hi = fast[keys[0]], fast[keys[-1]]
        results["overall"]["rss_longest_over_shortest"] = hi["peak_rss_process_mb"] / lo["peak_rss_process_mb"]
        results["overall"]["rss_longest_mb"] = hi["peak_rss_process_mb"]
        results["goals"]["rss_ratio<=1.2"] = results["overall"]["rss_longest_over_shortest"] <= GOALS["rss_ratio"]
        results["goals"]["rss_longest<=1GB"] = hi["peak_rss_process_mb"] <= GOALS["rss_8h_mb"]
        ex = long[keys[0]].get("neurofm_exact", {})
        if ex.get("ok"):
            results["goals"]["hours_per_s_fast>=exact (shortest)"] = lo["hours_per_s"] >= ex["hours_per_s"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    report(results, out)


def report(res: dict, out: Path) -> None:
    """Print a compact table."""
    m = res["machine"]
    print(f"\nneurofm vs braindecode, recipe {res['recipe']}, n_jobs={res['n_jobs']}, {m['cpus_usable']} CPUs, "
          f"load avg {m['load_avg_start'][0]:.2f} -> {m['load_avg_end'][0]:.2f}, {res['date']}")
    head = f"{'dataset':9} {'side':11} {'files':>5} {'recs':>4} {'windows':>7} {'wall s':>7} {'peak MB':>8} " \
           f"{'worker MB':>9} {'tree MB':>8} {'rand win/s':>10}"
    print(head + "\n" + "-" * len(head))
    for name, e in res["datasets"].items():
        for side in ("neurofm", "braindecode"):
            s = e[side]
            print(f"{name:9} {side:11} {e['n_files']:5d} {s['n_recordings']:4d} {s['n_windows']:7d} {s['wall_s']:7.2f} "
                  f"{s['peak_rss_self_mb']:8.0f} {s['peak_rss_worker_mb']:9.0f} {s['peak_tree_rss_mb']:8.0f} "
                  f"{e['random_access'][side]['windows_per_s']:10.0f}")
            if s.get("failed"):
                print(f"  neurofm FAILED on {len(s['failed'])}: " + "; ".join(f["error"] for f in s["failed"]))
        num, ra = e["numeric"], e["random_access"]
        print(f"  {name}: preprocessing braindecode/neurofm {verdict(e['preprocess_ratio'], GOALS['preprocess'])}; "
              f"random access neurofm/braindecode {verdict(ra['ratio'], GOALS['random_access'])}")
        print(f"  {name}: memory-read ceiling (same windows copied from the shards loaded into RAM) "
              f"{ra['ceiling']['windows_per_s']:.0f} win/s ({ra['ceiling']['gb_per_s']:.1f} GB/s); "
              f"neurofm at {100 * ra['neurofm_vs_ceiling']:.0f} % of it")
        print(f"  {name}: {num['n_compared']} recordings compared: max |a-b| = {num['max_abs_uv']:.3g} µV, "
              f"max |a-b|/std(b) = {num['max_rel']:.3g}")
        for m in num["shape_mismatch"]:
            print(f"    shape mismatch {m['id']}: neurofm {m['neurofm']} vs braindecode {m['braindecode']}")
        for r in num["interpolated_separately"]:
            print(f"    not compared, neurofm interpolated {r['channels']} in {r['id']} ({r['bads']}): "
                  f"max |a-b| {r['max_abs_uv_all']:.3g} µV all channels, "
                  f"{r['max_abs_uv_other_channels']:.3g} µV other channels (average reference spreads it)")
    o = res["overall"]
    if "preprocess_s" in o:
        print(f"overall: preprocessing {o['preprocess_s']['neurofm']:.1f} s vs {o['preprocess_s']['braindecode']:.1f} s "
              f"-> {verdict(o['preprocess_ratio'], GOALS['preprocess'])}; random access (worst dataset) "
              f"{verdict(o['random_access_ratio_min'], GOALS['random_access'])}")
    print("peak MB: largest single process (ru_maxrss self); worker MB: largest joblib worker (RUSAGE_CHILDREN); "
          "tree MB: sampled sum over the process tree (shared pages counted per process).")
    for key, e in res.get("long", {}).items():
        print(f"\n{key}: {e['hours']:g} h, 32 ch, 500 Hz, EDF {e['file_mb']:.0f} MB (generated in {e['generate_s']:.0f} s)")
        for label in ("neurofm_fast", "neurofm_exact", "braindecode"):
            s = e.get(label)
            if s is None:
                continue
            if s["ok"]:
                print(f"  {label:14} wall {s['wall_s']:7.1f} s  {s['hours_per_s']:7.3f} h/s  peak RSS {s['peak_rss_process_mb']:7.0f} MB"
                      f"  (tree {s['peak_tree_rss_mb']:.0f} MB)  windows {s['n_windows']}")
            else:
                print(f"  {label:14} FAILED after {s['process_s']:.0f} s, peak RSS {s['peak_rss_process_mb']:.0f} MB: {s['error'][-200:]}")
        if "numeric" in e:
            n = e["numeric"]
            print(f"  fast vs braindecode (first/last 100 windows): max |a-b| {n['max_abs_uv']:.3g} µV, "
                  f"max/std {n['max_rel']:.3g}, rms rel {n['rms_rel']:.3g}")
    print("goals: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in res["goals"].items()))
    print(f"results: {out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/bench-preprocess.json", help="result JSON (default %(default)s)")
    p.add_argument("--n-jobs", type=int, default=2, help="parallel jobs, the same for both sides")
    p.add_argument("--datasets", nargs="*", default=list(FILES), choices=list(FILES), help="none: long recordings only")
    p.add_argument("--n-random", type=int, default=2000, help="random windows read per store")
    p.add_argument("--repeat", type=int, default=1, help="runs per side and dataset (preprocessing and random access); the fastest is reported")
    p.add_argument("--long-hours", type=float, nargs="*", default=[0.5, 2.0, 8.0],
                   help="generated recordings to run (hours; none: skip)")
    p.add_argument("--cap-gb", type=float, default=8.0, help="data-segment cap of each long-recording side (GB)")
    p.add_argument("--max-memory", help="neurofm --max-memory (default: neurofm's)")
    p.add_argument("--braindecode-max-hours", type=float, default=float("inf"),
                   help="skip braindecode on generated recordings longer than this (time budget)")
    # internal: one side on one dataset, run as a subprocess
    p.add_argument("--side", choices=["neurofm", "braindecode"], help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--side-out", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="fast", help=argparse.SUPPRESS)
    p.add_argument("--neurofm-store", help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args()
    side_main(ARGS) if ARGS.side else main(ARGS)
