"""Reading a store: random access to windows, subject-wise splits, torch Dataset and LightningDataModule."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import StoreError
from neurofm.data.store import MANIFEST, inside


def open_manifest(root: str | os.PathLike) -> dict:
    """Load and check ``manifest.json``; every file it names must lie inside the store."""
    root = Path(root)
    path = root / MANIFEST
    if not path.exists():
        raise StoreError("no manifest.json: not a neurofm store, or preprocessing has not finished.", source=root,
                         hint="run `neurofm preprocess ... --out DIR` (reruns resume) and point at DIR.")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise StoreError(f"manifest.json is not valid JSON ({err}).", source=path,
                         hint="rerun `neurofm preprocess` with the same --out to rebuild it.") from None
    for rec in manifest.get("recordings", []):
        for key in ("file", "target_file"):
            if rec.get(key):
                inside(root / "shards", rec[key])
    return manifest


class WindowStore:
    """Random access to every window of a store, without loading it all.

    Parameters
    ----------
    root : path-like
        The store directory.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.manifest = open_manifest(self.root)
        self.recordings: list[dict] = self.manifest["recordings"]
        counts = np.array([r["shape"][0] for r in self.recordings], dtype=np.int64)
        self.rec_index = np.repeat(np.arange(len(self.recordings)), counts)
        self.win_index = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, np.int64)
        self.labels = np.array([lab for r in self.recordings for lab in r["labels"]], dtype=object)
        self.subjects = np.array([r["subject"] for r in self.recordings], dtype=object)[self.rec_index]
        self._rec, self._win = self.rec_index.tolist(), self.win_index.tolist()  # fast scalar lookups
        self._arrays: dict[int, np.ndarray] = {}
        self._targets: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict:  # memory maps are reopened in each worker process
        state = dict(self.__dict__)
        state["_arrays"], state["_targets"] = {}, {}
        return state

    def __len__(self) -> int:
        return len(self.rec_index)

    def array(self, rec: int) -> np.ndarray:
        arr = self._arrays.get(rec)
        if arr is None:
            path = inside(self.root / "shards", self.recordings[rec]["file"])
            try:
                # A plain ndarray view of the memory map: indexing np.memmap objects costs more than the copy.
                arr = np.load(path, mmap_mode="r").view(np.ndarray)
            except (OSError, ValueError) as err:
                raise StoreError(f"cannot open shard ({err}).", source=path,
                                 hint="rerun `neurofm preprocess` with the same --out; damaged shards are redone.") from None
            self._arrays[rec] = arr
        return arr

    def target(self, i: int) -> np.ndarray | None:
        rec = int(self.rec_index[i])
        name = self.recordings[rec].get("target_file")
        if not name:
            return None
        if rec not in self._targets:
            self._targets[rec] = np.load(inside(self.root / "shards", name), mmap_mode="r")
        return np.asarray(self._targets[rec][self.win_index[i]])

    def __getitem__(self, i: int) -> np.ndarray:
        """Window ``i`` (n_chans, n_times) as a read-only view of the shard; copy it to modify it."""
        rec = self._rec[i]
        arr = self._arrays.get(rec)
        if arr is None:
            arr = self.array(rec)
        return arr[self._win[i]]

    def channels(self, i: int) -> list[dict]:
        return self.recordings[int(self.rec_index[i])]["channels"]

    def sfreq(self) -> float:
        rates = {r["sfreq"] for r in self.recordings}
        if len(rates) != 1:
            raise StoreError(f"store mixes sampling rates {sorted(rates)}.", source=self.root,
                             hint="preprocess with a recipe that resamples (resample: {sfreq: ...}).")
        return rates.pop()


def split_by_subject(subjects: Sequence[str], *, val: Sequence[str] | float = 0.15,
                     test: Sequence[str] | float = 0.15, seed: int = 0,
                     groups: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Split window indices so that no subject (or group) appears in two splits.

    ``val``/``test`` are explicit subject lists or fractions of subjects. Where only one
    subject exists, pass ``groups`` (e.g. recording ids) to split by recording instead.
    """
    keys = np.asarray(groups if groups is not None else subjects, dtype=object)
    unique = sorted(set(keys.tolist()))
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(unique))
    chosen: dict[str, list] = {}
    for name, spec in (("test", test), ("val", val)):
        if isinstance(spec, float):
            k = int(round(spec * len(unique)))
            if spec > 0:
                k = max(k, 1)
            pool = [u for u in order if not any(u in v for v in chosen.values())]
            chosen[name] = pool[:k]
        else:
            missing = sorted(set(spec) - set(unique))
            if missing:
                raise StoreError(f"{name} subjects {missing} are not in the store.",
                                 hint=f"the store has subjects {unique[:20]}")
            chosen[name] = list(spec)
    overlap = set(chosen["val"]) & set(chosen["test"])
    if overlap:
        raise StoreError(f"subjects {sorted(overlap)} are in both val and test.", hint="give disjoint lists.")
    train = [u for u in unique if u not in chosen["val"] and u not in chosen["test"]]
    return {name: np.flatnonzero(np.isin(keys, members)) for name, members in
            (("train", train), ("val", chosen["val"]), ("test", chosen["test"]))}


def channel_stats(store: WindowStore, indices: np.ndarray, max_windows: int = 2000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Per-channel-name mean and std over (a sample of) the given windows: training-split statistics."""
    rng = np.random.default_rng(seed)
    idx = indices if len(indices) <= max_windows else rng.choice(indices, max_windows, replace=False)
    acc: dict[str, list[np.ndarray]] = {}
    for i in idx:
        x = store[int(i)]
        for ch, row in zip(store.channels(int(i)), x, strict=True):
            acc.setdefault(ch["name"], []).append(row)
    return {name: (float(np.mean(rows)), float(np.std(rows)) or 1.0) for name, rows in acc.items()}


class WindowDataset:
    """A torch ``Dataset`` over a store's windows.

    Each item is a dict: ``x`` (n_chans, n_times) float32 tensor, ``y`` (label index, -1 if none),
    ``pos`` (n_chans, 3) positions in metres (NaN unknown), ``ch_names``, ``subject``, ``index``.
    """

    def __init__(self, store: WindowStore | str | os.PathLike, indices: np.ndarray | None = None,
                 label_map: dict[str, int] | None = None, stats: dict[str, tuple[float, float]] | None = None):
        self.store = store if isinstance(store, WindowStore) else WindowStore(store)
        self.indices = np.arange(len(self.store)) if indices is None else np.asarray(indices)
        labels = sorted({str(v) for v in self.store.labels if v})
        self.label_map = label_map if label_map is not None else {lab: k for k, lab in enumerate(labels)}
        self.stats = stats

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict[str, Any]:
        import torch

        i = int(self.indices[k])
        x = self.store[i].astype(np.float32, copy=True)
        chans = self.store.channels(i)
        if self.stats is not None:
            for c, ch in enumerate(chans):
                mean, std = self.stats.get(ch["name"], (0.0, 1.0))
                x[c] = (x[c] - mean) / std
        pos = np.array([ch["pos"] if ch["pos"] is not None else [np.nan] * 3 for ch in chans], dtype=np.float32)
        item = dict(x=torch.from_numpy(x), y=self.label_map.get(str(self.store.labels[i]), -1),
                    pos=torch.from_numpy(pos), ch_names=[ch["name"] for ch in chans],
                    subject=str(self.store.subjects[i]), index=i)
        target = self.store.target(i)
        if target is not None:
            item["target"] = torch.from_numpy(target.astype(np.float32))
        return item


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items with different channel counts: pad channels, and return a channel ``mask`` beside ``x``.

    Padded channels are zero in ``x``, ``False`` in ``mask`` and NaN in ``pos``; models must use the mask.
    """
    import torch

    n_times = {b["x"].shape[1] for b in batch}
    if len(n_times) != 1:
        raise StoreError(f"windows of different lengths {sorted(n_times)} in one batch.",
                         hint="preprocess all recordings with one recipe (one window_s and sfreq).")
    c_max = max(b["x"].shape[0] for b in batch)
    t = n_times.pop()
    x = torch.zeros(len(batch), c_max, t)
    mask = torch.zeros(len(batch), c_max, dtype=torch.bool)
    pos = torch.full((len(batch), c_max, 3), float("nan"))
    for k, b in enumerate(batch):
        c = b["x"].shape[0]
        x[k, :c], mask[k, :c], pos[k, :c] = b["x"], True, b["pos"]
    out = dict(x=x, mask=mask, pos=pos, y=torch.tensor([b["y"] for b in batch]),
               ch_names=[b["ch_names"] for b in batch], subject=[b["subject"] for b in batch],
               index=torch.tensor([b["index"] for b in batch]))
    if all("target" in b for b in batch):
        out["target"] = torch.stack([b["target"] for b in batch])
    return out
