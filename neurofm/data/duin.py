"""Data module for Du-IN training: several stores, leakage-free splits, training-split normalisation.

``StoreDataModule`` splits one store by subject. The shared intracranial recordings are one subject
each, so Du-IN also needs splits **by time** (contiguous blocks of each recording; windows that straddle
a block boundary are dropped, so overlapping windows never share samples across splits) and several
stores at once (multi-subject pretraining with per-subject input layers).

Every item's ``subject`` is its **input-layer key**: ``"<store name>/<subject>"``, or ``"<store name>"``
for stores listed in ``shared_input`` (e.g. Bonn, whose segments come from unnamed patients).
Normalisation statistics (per store and channel, and of a continuous target) come from the training
split only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import ConcatDataset, DataLoader

from neurofm._errors import ConfigError, StoreError, suggest
from neurofm.data.datamodule import store_loader
from neurofm.data.dataset import WindowDataset, WindowStore, channel_stats

SPLITS = ("time", "recording", "subject", "none")


def window_spans(store: WindowStore) -> np.ndarray:
    """(n_windows, 2) start/end sample of every window within its recording."""
    out = np.zeros((len(store), 2), dtype=np.int64)
    k = 0
    for rec in store.recordings:
        starts = np.asarray(rec["starts"], dtype=np.int64)
        out[k:k + len(starts), 0] = starts
        out[k:k + len(starts), 1] = starts + int(rec["n_times"])
        k += len(starts)
    return out


def time_split(store: WindowStore, val: float, test: float, *, by_label: bool = True,
               gap_s: float = 0.5) -> dict[str, np.ndarray]:
    """Contiguous time blocks per recording: train first, then validation, then test.

    With ``by_label``, each labelled span of a recording (its events with a duration, e.g. pre-ictal
    then ictal) is split on its own, so every class is in every split, and a window must lie inside its
    span. Otherwise the span is the recording (as far as its windows reach). Windows must lie wholly
    inside a block, and validation/test blocks start ``gap_s`` after the block before them, so two
    windowings of the same recording (e.g. 3-s pretraining windows, 1-s fine-tuning windows) never put
    the same samples in a training block of one and an evaluation block of the other.
    """
    spans = window_spans(store)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for r, rec in enumerate(store.recordings):
        idx = np.flatnonzero(store.rec_index == r)
        sf = float(rec["sfreq"])
        gap = int(round(gap_s * sf))
        events = [e for e in rec.get("events", []) if e.get("duration", 0) > 0 and e["label"] in set(rec["labels"])]
        if by_label and events:
            blocks = [(int(round(e["onset"] * sf)), int(round((e["onset"] + e["duration"]) * sf)), e["label"])
                      for e in events]
        else:
            blocks = [(int(spans[idx, 0].min()), int(spans[idx, 1].max()), None)]
        for lo, hi, label in blocks:
            a = lo + (1 - val - test) * (hi - lo)
            b = lo + (1 - test) * (hi - lo)
            for i in idx:
                s, e = spans[i]
                if s < lo or e > hi or (label is not None and store.labels[i] != label):
                    continue
                split = ("train" if e <= a else "val" if s >= a + gap and e <= b else
                         "test" if s >= b + gap else None)
                if split:
                    out[split].append(int(i))
    return {k: np.array(sorted(set(v)), dtype=np.int64) for k, v in out.items()}


def group_split(groups: np.ndarray, labels: np.ndarray, val: float | Sequence[str], test: float | Sequence[str],
                seed: int, *, stratify: bool = True) -> dict[str, np.ndarray]:
    """Whole groups (recordings or subjects) to train/val/test, stratified by each group's label."""
    unique = list(dict.fromkeys(groups.tolist()))
    chosen: dict[str, set] = {}
    for name, spec in (("test", test), ("val", val)):
        if not isinstance(spec, float):
            missing = sorted(set(spec) - set(unique))
            if missing:
                raise StoreError(f"{name} groups {missing[:5]} are not in the store.",
                                 hint=f"the store has {unique[:10]}...")
            chosen[name] = set(spec)
    rng = np.random.default_rng(seed)
    first = {g: str(labels[np.flatnonzero(groups == g)[0]]) for g in unique}
    strata = sorted(set(first.values())) if stratify else [None]
    for stratum in strata:
        pool = [g for g in unique if (stratum is None or first[g] == stratum)
                and not any(g in c for c in chosen.values())]
        pool = list(rng.permutation(pool)) if pool else []
        for name, spec in (("test", test), ("val", val)):
            if isinstance(spec, float):
                k = int(round(spec * len([g for g in unique if stratum is None or first[g] == stratum])))
                k = max(k, 1) if spec > 0 and len(pool) > 1 else k
                chosen.setdefault(name, set()).update(pool[:k])
                pool = pool[k:]
    overlap = chosen.get("val", set()) & chosen.get("test", set())
    if overlap:
        raise StoreError(f"groups {sorted(overlap)[:5]} are in both val and test.", hint="give disjoint lists.")
    val_set, test_set = chosen.get("val", set()), chosen.get("test", set())
    return dict(train=np.flatnonzero(~np.isin(groups, list(val_set | test_set))),
                val=np.flatnonzero(np.isin(groups, list(val_set))), test=np.flatnonzero(np.isin(groups, list(test_set))))


class _KeyedWindows(WindowDataset):
    """WindowDataset whose items carry the input-layer key as ``subject`` and a normalised target."""

    def __init__(self, store: WindowStore, indices: np.ndarray, label_map: dict[str, int], stats, key_of,
                 target_stats: tuple[float, float] | None):
        super().__init__(store, indices, label_map=label_map, stats=stats)
        self.key_of, self.target_stats = key_of, target_stats

    def __getitem__(self, k: int) -> dict[str, Any]:
        item = super().__getitem__(k)
        item["subject"] = self.key_of(int(self.indices[k]))
        if "target" in item and self.target_stats is not None:
            mean, std = self.target_stats
            item["target"] = (item["target"] - mean) / std
        return item


class DuINDataModule(L.LightningDataModule):
    """Train/val/test loaders over one or more stores, with leakage-free splits and normalisation.

    Parameters
    ----------
    stores : list of str
        Store directories (``neurofm preprocess --out``); all with the same sfreq, window and patch.
    names : list of str | None
        A short name per store (input-layer key prefix); default: each store's folder name.
    split : str | dict
        ``"time"`` (contiguous blocks of each recording, per label span), ``"recording"`` or
        ``"subject"`` (whole groups, stratified by label), or ``"none"`` (all windows train); or a
        mapping store name → one of these (stores not named split by ``"time"``).
    val_fraction, test_fraction : float
        Sizes of the validation and test splits (fraction of time, or of groups).
    val_groups, test_groups : list of str | None
        Explicit recording ids / subjects for ``split="recording"/"subject"`` (override the fractions).
    shared_input : list of str
        Store names whose items share one input layer (key = store name) instead of one per subject.
    normalize : bool
        z-score each channel (and a continuous target) with statistics of the training split only.
    gap_s : float
        Time split: seconds left out before the validation and the test block.
    """

    def __init__(self, stores: list[str], names: list[str] | None = None, batch_size: int = 32, num_workers: int = 0,
                 split: str | dict[str, str] = "time", val_fraction: float = 0.2, test_fraction: float = 0.2,
                 val_groups: list[str] | None = None, test_groups: list[str] | None = None, stratify: bool = True,
                 shared_input: list[str] | None = None, normalize: bool = True, seed: int = 0,
                 gap_s: float = 0.5, drop_last: bool = False):
        super().__init__()
        for kind in (split.values() if isinstance(split, dict) else [split]):
            if kind not in SPLITS:
                raise ConfigError(f"data split '{kind}' is not one of {SPLITS}.{suggest(kind, SPLITS)}",
                                  hint="use 'time' for single-subject recordings, 'recording' or 'subject' otherwise.")
        if not stores:
            raise ConfigError("data.stores is empty.", hint="list at least one store made by `neurofm preprocess`.")
        if names is not None and len(names) != len(stores):
            raise ConfigError(f"data.names has {len(names)} entries for {len(stores)} stores.",
                              hint="give one name per store, or leave names out.")
        self.save_hyperparameters()
        self.splits: dict[str, ConcatDataset] = {}
        self.indices: dict[str, dict[str, np.ndarray]] = {}
        self.stats: dict[str, dict[str, tuple[float, float]]] = {}
        self.target_stats: dict[str, tuple[float, float]] = {}

    # ---- setup ------------------------------------------------------------------------------------------
    def _open(self) -> None:
        hp = self.hparams
        self.names_ = list(hp.names) if hp.names else [Path(s).name for s in hp.stores]
        if len(set(self.names_)) != len(self.names_):
            raise ConfigError(f"two stores share the name {sorted(self.names_)}.", hint="give data.names explicitly.")
        unknown = sorted(set(hp.shared_input or []) - set(self.names_))
        if unknown:
            raise ConfigError(f"data.shared_input names {unknown} are not store names {self.names_}.",
                              hint="use the names from data.names (default: the store folder names).")
        self.stores_ = [WindowStore(os.fspath(s)) for s in hp.stores]
        ref = None
        for name, st in zip(self.names_, self.stores_, strict=True):
            shapes = {(r["sfreq"], r["n_times"], r.get("patch_size")) for r in st.recordings}
            if ref is None:
                ref = shapes
            if len(shapes) != 1 or shapes != ref:
                raise StoreError(f"store '{name}' has (sfreq, n_times, patch) {sorted(shapes)}, the first store "
                                 f"{sorted(ref)}.", source=st.root,
                                 hint="preprocess every store with recipes of one contract (same resample, window_s "
                                      "and patch_s).")

    def key_of(self, s: int):
        """Function: window index of store ``s`` → input-layer key."""
        name, st = self.names_[s], self.stores_[s]
        if name in (self.hparams.shared_input or []):
            return lambda i: name
        subjects = st.subjects
        return lambda i: f"{name}/{subjects[i]}"

    def _split(self, name: str, st: WindowStore) -> dict[str, np.ndarray]:
        hp = self.hparams
        kind = hp.split.get(name, "time") if isinstance(hp.split, dict) else hp.split
        if kind == "none":
            return dict(train=np.arange(len(st)), val=np.zeros(0, np.int64), test=np.zeros(0, np.int64))
        if kind == "time":
            return time_split(st, hp.val_fraction, hp.test_fraction, by_label=hp.stratify, gap_s=hp.gap_s)
        groups = st.subjects if kind == "subject" else np.array(
            [st.recordings[r]["id"] for r in st.rec_index], dtype=object)
        val = list(hp.val_groups) if hp.val_groups is not None else float(hp.val_fraction)
        test = list(hp.test_groups) if hp.test_groups is not None else float(hp.test_fraction)
        if hp.val_groups is not None or hp.test_groups is not None:  # explicit lists may name other stores' groups
            have = set(groups.tolist())
            val = [g for g in val if g in have] if isinstance(val, list) else val
            test = [g for g in test if g in have] if isinstance(test, list) else test
        return group_split(groups, st.labels.astype(str), val, test, hp.seed, stratify=hp.stratify)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        self._open()
        labels = sorted({str(v) for st in self.stores_ for v in st.labels if v})
        self.label_map = {lab: k for k, lab in enumerate(labels)}
        parts: dict[str, list] = {"train": [], "val": [], "test": []}
        for s, (name, st) in enumerate(zip(self.names_, self.stores_, strict=True)):
            idx = self._split(name, st)
            if len(idx["train"]) == 0:
                raise StoreError(f"store '{name}' has no training windows after the split.", source=st.root,
                                 hint="use shorter or more overlapping windows (stride_s), or smaller val/test fractions.")
            self.indices[name] = idx
            self.stats[name] = channel_stats(st, idx["train"]) if hp.normalize else None
            tstats = None
            if hp.normalize and st.target(int(idx["train"][0])) is not None:
                t = np.concatenate([st.target(int(i)) for i in idx["train"]])
                tstats = (float(t.mean()), float(t.std()) or 1.0)
                self.target_stats[name] = tstats
            for split in parts:
                if len(idx[split]):
                    parts[split].append(_KeyedWindows(st, idx[split], self.label_map, self.stats[name],
                                                      self.key_of(s), tstats))
        self.splits = {k: ConcatDataset(v) for k, v in parts.items() if v}

    # ---- what the modules read ----------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        """A merged manifest: every store's recordings, ``subject`` replaced by the input-layer key."""
        self.setup()
        first = self.stores_[0].manifest
        recs = []
        for name, st in zip(self.names_, self.stores_, strict=True):
            shared = name in (self.hparams.shared_input or [])
            for rec in st.recordings:
                recs.append(dict(rec, subject=name if shared else f"{name}/{rec['subject']}", store=name))
        modalities = {str(st.manifest.get("dataset", {}).get("modality", "")) for st in self.stores_}
        dataset = dict(first.get("dataset", {}), modality=modalities.pop() if len(modalities) == 1 else "mixed",
                       names=self.names_)
        return dict(first, recordings=recs, dataset=dataset)

    def normalization_record(self) -> dict[str, Any]:
        """Training-split statistics per store and channel (for the model's contract)."""
        self.setup()
        return dict(kind="per-channel z-score, training-split statistics" if self.hparams.normalize else "none",
                    channel_stats={n: s for n, s in self.stats.items() if s is not None},
                    target_stats=self.target_stats)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.splits:
            raise StoreError(f"the {split} split is empty.", hint="set val_fraction/test_fraction > 0 or give groups.")
        return store_loader(self, self.splits[split], shuffle=shuffle, drop_last=self.hparams.drop_last and shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
