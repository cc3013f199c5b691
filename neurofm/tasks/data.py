"""A task's data: preprocess into a cached store, select and label windows, split them.

The store is built by ``neurofm.preprocessing.run.preprocess`` under a cache directory keyed by
dataset, root and recipe hash (so tasks sharing a recipe share a store, and reruns skip finished
recordings). The selected windows are read into memory in one channel layout (the union of the
task's channels, or a decoder's channels when it is evaluated on other data).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import ConfigError, StoreError, suggest
from neurofm.data.store import inside
from neurofm.tasks.spec import RECORDING_FIELDS, TaskSpec

log = logging.getLogger("neurofm.tasks")


def default_cache() -> Path:
    """``$NEUROFM_CACHE`` if set, else ``~/.cache/neurofm/stores``."""
    env = os.environ.get("NEUROFM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "neurofm" / "stores"


def _field(rec: Any, key: str) -> Any:
    if isinstance(rec, dict):
        return rec.get(key) if key in RECORDING_FIELDS else (rec.get("info") or {}).get(key)
    return getattr(rec, key) if key in RECORDING_FIELDS else rec.meta.get(key)


def matches(rec: Any, filters: dict[str, list[str]] | None) -> bool:
    """True if every filtered field of ``rec`` (a RecordingRef or a manifest record) matches one glob."""
    for key, globs in (filters or {}).items():
        value = _field(rec, key)
        if value is None or not any(fnmatch.fnmatchcase(str(value), g) for g in globs):
            return False
    return True


class _Subset:
    """A dataset that lists only the recordings a task keeps (everything else is delegated)."""

    def __init__(self, base: Any, filters: dict[str, list[str]] | None):
        self.__dict__.update(base=base, filters=filters)

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "filters"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def recordings(self) -> list:
        refs = self.base.recordings()
        kept = [r for r in refs if matches(r, self.filters)]
        if not kept:
            keys = sorted({k for r in refs for k in (*RECORDING_FIELDS, *r.meta)})
            bad = [k for k in self.filters or {} if k not in keys]
            raise ConfigError(
                f"no recording of dataset '{self.base.name}' matches recordings: {self.filters}"
                + (f" (no field '{bad[0]}'.{suggest(bad[0], keys)})" if bad else "."), source=str(self.base.root),
                hint=f"filter on {', '.join(keys)}; e.g. ids are {[r.id for r in refs[:4]]}.")
        return kept


@dataclass
class TaskData:
    """The windows of a task, in memory, with everything needed to split, normalise and score them."""

    task: TaskSpec
    store: Path
    x: np.ndarray  # (n, n_chans, n_times) float32, store units (µV)
    mask: np.ndarray  # (n, n_chans) bool: channel present in the window's recording
    y: np.ndarray  # (n,) int64 class index, or float32 target
    ch_names: list[str]
    pos: np.ndarray  # (n_chans, 3) metres, NaN unknown
    sfreq: float
    units: str
    subjects: np.ndarray
    recordings: np.ndarray
    runs: np.ndarray
    sessions: np.ndarray
    starts: np.ndarray  # sample of each window's start in its recording
    manifest: dict
    failures: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return self.task.classes

    @property
    def n_times(self) -> int:
        return int(self.x.shape[2])

    def contract(self):
        """The signal contract of the task's store (what a decoder trained on it expects)."""
        from neurofm.models._contract import SignalContract

        return SignalContract.from_manifest(self.manifest, ch_names=list(self.ch_names))

    def splits(self) -> dict[str, np.ndarray]:
        return split_task(self, self.task.split)

    def describe(self) -> dict[str, Any]:
        counts = {}
        if self.task.kind == "classification":
            counts = {c: int((self.y == k).sum()) for k, c in enumerate(self.classes)}
        return dict(store=str(self.store), n_windows=len(self.y), n_chans=len(self.ch_names), n_times=self.n_times,
                    sfreq=self.sfreq, subjects=sorted(set(self.subjects.tolist())), class_counts=counts,
                    notes=self.notes, failures=[f.get("error", "") for f in self.failures])


# -- preparation ------------------------------------------------------------------------------------
def prepare_store(task: TaskSpec, *, dataset: str | None = None, root: str | os.PathLike | None = None,
                  cache: str | os.PathLike | None = None, n_jobs: int = 1, verbose: bool = True,
                  recipe=None) -> tuple[Path, list[dict]]:
    """Preprocess the task's recordings into the cache (resumable); return (store, failures)."""
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.run import preprocess

    ds = get_dataset(dataset or task.dataset, None if root is None else str(root))
    recipe = recipe if recipe is not None else task.resolve_recipe()
    key = hashlib.sha256(json.dumps([ds.name, str(Path(ds.root).resolve()), recipe.hash]).encode()).hexdigest()[:12]
    out = Path(cache) if cache is not None else default_cache()
    out = out / f"{ds.name}-{recipe.name}-{key}"
    result = preprocess(_Subset(ds, task.recordings), recipe, out, n_jobs=n_jobs, report=False, verbose=verbose)
    if result.done:
        log.info("preprocessed %d recording(s) into %s", len(result.done), out)
    return out, result.failed


def load_task(task: TaskSpec | str, *, dataset: str | None = None, root: str | os.PathLike | None = None,
              cache: str | os.PathLike | None = None, n_jobs: int = 1, verbose: bool = True,
              ch_names: list[str] | None = None) -> TaskData:
    """Prepare the store and read the task's windows.

    Parameters
    ----------
    task : TaskSpec | str
        The task (or a registered name / YAML path).
    dataset, root : str
        Another dataset name / root with the same layout (e.g. new subjects for a trained decoder).
    ch_names : list of str
        Channel layout to read into (a decoder's); default: the union of the task's channels.
    """
    from neurofm.tasks.spec import get_task

    task = get_task(task)
    store, failures = prepare_store(task, dataset=dataset, root=root, cache=cache, n_jobs=n_jobs, verbose=verbose)
    return read_task(task, store, failures=failures, ch_names=ch_names)


def _reduce_target(t: np.ndarray, how: str) -> float:
    return float({"mean": np.mean, "median": np.median}.get(how, lambda a: a[-1])(t))


def read_task(task: TaskSpec, store: str | os.PathLike, *, failures: list[dict] | None = None,
              ch_names: list[str] | None = None) -> TaskData:
    """Select, label and read the task's windows from a store."""
    from neurofm.data.dataset import WindowStore

    ws = WindowStore(store)
    recipe_name = ws.manifest.get("recipe", {}).get("name", "?")
    recs = [(r, rec) for r, rec in enumerate(ws.recordings) if matches(rec, task.recordings)]
    if not recs:
        raise StoreError(f"task '{task.name}': no recording in the store matches {task.recordings or 'the task'}"
                         f"{f' ({len(failures)} failed to preprocess: ' + failures[0]['error'] + ')' if failures else '.'}",
                         source=store, hint="check the dataset root and the task's recordings filter.")
    notes: list[str] = []
    rates = {float(rec["sfreq"]) for _, rec in recs}
    lengths = {int(rec["n_times"]) for _, rec in recs}
    if len(rates) != 1 or len(lengths) != 1:
        raise StoreError(f"recordings of task '{task.name}' mix rates {sorted(rates)} / window lengths {sorted(lengths)}.",
                         source=store, hint="use a recipe that resamples and windows every recording alike.")
    # Which windows, with which label.
    label_map = task.label_map
    chosen: list[tuple[int, np.ndarray, np.ndarray]] = []  # (store recording, window indices, y)
    seen_labels: set[str] = set()
    for r, rec in recs:
        labels = np.asarray(rec["labels"], dtype=object)
        seen_labels.update(str(v) for v in labels)
        if task.kind == "classification":
            idx = np.flatnonzero([str(v) in label_map for v in labels])
            y = np.array([label_map[str(v)] for v in labels[idx]], dtype=np.int64)
        else:
            if not rec.get("target_file"):
                raise StoreError(f"task '{task.name}' is a regression but recording '{rec['id']}' has no continuous "
                                 "target in the store.", source=store,
                                 hint="use a dataset with a target channel (e.g. gripforce: MOV_RIGHT).")
            target = np.load(inside(Path(store) / "shards", rec["target_file"]), mmap_mode="r")
            idx = np.arange(rec["shape"][0])
            y = np.array([_reduce_target(np.asarray(target[i]), task.target) for i in idx], dtype=np.float32)
        if len(idx):
            chosen.append((r, idx, y))
    if task.kind == "classification":
        missing = [lab for lab in label_map if lab not in seen_labels]
        if missing:
            have = sorted(seen_labels - {""})
            raise ConfigError(f"task '{task.name}': label '{missing[0]}' never occurs in the store (recipe "
                              f"'{recipe_name}').{suggest(missing[0], have)}", source=store,
                              hint=f"store labels are {have}; fix 'labels' in the task.")
    n = sum(len(i) for _, i, _ in chosen)
    if n == 0:
        raise StoreError(f"task '{task.name}': no window carries one of the labels {list(label_map)}.", source=store,
                         hint="check the recipe's windows (fixed vs events) and the task's labels.")
    # Channel layout.
    if ch_names is None:
        ch_names = list(dict.fromkeys(ch["name"] for r, _, _ in chosen for ch in ws.recordings[r]["channels"]))
    col = {c: k for k, c in enumerate(ch_names)}
    n_times = lengths.pop()
    x = np.zeros((n, len(ch_names), n_times), dtype=np.float32)
    mask = np.zeros((n, len(ch_names)), dtype=bool)
    pos = np.full((len(ch_names), 3), np.nan, dtype=np.float32)
    meta = {k: np.empty(n, dtype=object) for k in ("subject", "id", "run", "session")}
    starts = np.zeros(n, dtype=np.int64)
    ys = []
    k = 0
    for r, idx, y in chosen:
        rec = ws.recordings[r]
        arr = ws.array(r)
        names = [ch["name"] for ch in rec["channels"]]
        src = [i for i, c in enumerate(names) if c in col]
        dst = [col[names[i]] for i in src]
        extra = [c for c in names if c not in col]
        absent = [c for c in ch_names if c not in names]
        if extra:
            notes.append(f"{rec['id']}: {len(extra)} channel(s) unknown to the layout left out: {extra[:8]}")
        if absent:
            notes.append(f"{rec['id']}: {len(absent)} channel(s) of the layout absent, masked: {absent[:8]}")
        x[k:k + len(idx), dst] = arr[idx][:, src]
        mask[k:k + len(idx), dst] = True
        for i, d in zip(src, dst, strict=True):
            p = rec["channels"][i].get("pos")
            if p is not None and np.isnan(pos[d]).all():
                pos[d] = p
        for key, mk in (("subject", "subject"), ("id", "id"), ("run", "run"), ("session", "session")):
            meta[mk][k:k + len(idx)] = rec.get(key)
        starts[k:k + len(idx)] = np.asarray(rec["starts"], dtype=np.int64)[idx]
        ys.append(y)
        k += len(idx)
    if not mask.any(axis=0).all():
        never = [c for c, m in zip(ch_names, mask.any(axis=0), strict=True) if not m]
        notes.append(f"{len(never)} channel(s) of the layout absent from every recording, masked: {never[:8]}")
    if failures:
        notes.append(f"{len(failures)} recording(s) failed to preprocess and are left out: "
                     + "; ".join(f["error"] for f in failures[:3]))
    for note in notes:
        log.warning("%s", note)
    return TaskData(task=task, store=Path(store), x=x, mask=mask, y=np.concatenate(ys), ch_names=list(ch_names),
                    pos=pos, sfreq=float(rates.pop()), units=str(recs[0][1].get("units", "uV")),
                    subjects=meta["subject"], recordings=meta["id"], runs=meta["run"], sessions=meta["session"],
                    starts=starts, manifest=ws.manifest, failures=list(failures or []), notes=notes)


# -- splits -----------------------------------------------------------------------------------------
_UNIT = {"subject": "subjects", "recording": "recordings", "run": "runs", "session": "sessions"}


def split_task(data: TaskData, split) -> dict[str, np.ndarray]:
    """Window indices of train/val/test under the task's protocol; never one subject in two splits."""
    subjects = sorted(set(data.subjects.tolist()))
    if split.by != "subject" and len(subjects) > 1:
        raise ConfigError(f"task '{data.task.name}' splits by {split.by}, but its data hold {len(subjects)} subjects "
                          f"({subjects[:6]}): a subject would land in two splits.",
                          hint="split by subject (split: {by: subject, ...}) when the data hold several subjects.")
    if split.by == "time":
        return _time_split(data, split)
    units = getattr(data, _UNIT[split.by])
    if any(u is None for u in units):
        raise ConfigError(f"task '{data.task.name}' splits by {split.by}, but some recordings have no {split.by}.",
                          hint="split by recording or subject instead.")
    keys = np.asarray([str(u) for u in units], dtype=object)
    unique = sorted(set(keys.tolist()))
    order = [str(u) for u in np.random.default_rng(split.seed).permutation(unique)]
    chosen: dict[str, list[str]] = {}
    for name in ("test", "val", "train"):
        spec = getattr(split, name)
        if spec is None:
            continue
        if isinstance(spec, float):
            taken = {u for v in chosen.values() for u in v}
            pool = [u for u in order if u not in taken]
            chosen[name] = pool[:max(1, int(round(spec * len(unique))))]
        else:
            missing = [u for u in spec if u not in unique]
            if missing:
                raise ConfigError(f"task '{data.task.name}': {name} {split.by} {missing[:6]} not in the data."
                                  f"{suggest(missing[0], unique)}",
                                  hint=f"the data hold {split.by} ids {unique[:24]}{'...' if len(unique) > 24 else ''}.")
            chosen[name] = list(spec)
    if "train" not in chosen:
        taken = {u for v in chosen.values() for u in v}
        chosen["train"] = [u for u in unique if u not in taken]
    out = {name: np.flatnonzero(np.isin(keys, chosen[name])) for name in ("train", "val", "test")}
    for name, idx in out.items():
        if len(idx) == 0:
            raise ConfigError(f"task '{data.task.name}': the {name} split is empty.",
                              hint="give it at least one id, or a larger fraction.")
    return out


def _time_split(data: TaskData, split) -> dict[str, np.ndarray]:
    """Contiguous blocks inside each labelled segment; windows overlapping another split are dropped."""
    n_win = data.n_times
    classify = data.task.kind == "classification"  # regression: one segment per recording
    assign = np.full(len(data.y), -1)
    for rec in sorted(set(data.recordings.tolist())):
        idx = np.flatnonzero(data.recordings == rec)
        idx = idx[np.argsort(data.starts[idx], kind="stable")]
        seg_start = 0
        for i in range(1, len(idx) + 1):
            boundary = classify and data.y[idx[min(i, len(idx) - 1)]] != data.y[idx[seg_start]]
            if i == len(idx) or boundary:
                seg = idx[seg_start:i]
                n = len(seg)
                n_test = max(1, int(round(split.test * n))) if n >= 3 else 0
                n_val = max(1, int(round(split.val * n))) if n >= 3 else 0
                assign[seg[:n - n_val - n_test]] = 0
                assign[seg[n - n_val - n_test:n - n_test]] = 1
                assign[seg[n - n_test:]] = 2
                seg_start = i
        # Purge: a val window overlapping train, or a test window overlapping train/val, is dropped.
        for level in (1, 2):
            for i in idx[assign[idx] == level]:
                others = idx[(assign[idx] >= 0) & (assign[idx] < level)]
                if np.any(np.abs(data.starts[others] - data.starts[i]) < n_win):
                    assign[i] = -1
    out = {name: np.flatnonzero(assign == k) for k, name in enumerate(("train", "val", "test"))}
    for name, idx in out.items():
        if len(idx) == 0:
            raise ConfigError(f"task '{data.task.name}': the {name} block of the time split is empty after "
                              "dropping overlapping windows.",
                              hint="use a shorter stride_s, or larger val/test fractions.")
    return out
