"""braindecode interop, both directions: a store as a ``BaseConcatDataset``, and a braindecode dataset as a store.

``to_braindecode(store)`` gives one braindecode ``WindowsDataset`` per recording (an ``mne.EpochsArray`` of
the store's windows, with channel positions as a montage and a ``description`` holding subject, session,
run, label and dataset), so ``EEGClassifier.fit(ds, y=None)``, ``ds.split("subject")``,
``braindecode.preprocessing.preprocess`` and ``braindecode.augmentation`` work on neurofm stores as they do
on braindecode's own datasets. ``from_braindecode(ds, out)`` writes any braindecode windows dataset
(``WindowsDataset`` or ``EEGWindowsDataset``) into a store with the store writer, so neurofm's tokenizers,
decoders and connectome read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import StoreError
from neurofm.data.dataset import WindowStore
from neurofm.data.store import StoreWriter, write_json

_SCALE = {"uV": 1.0, "V": 1e-6}  # store values are µV


def to_braindecode(store: WindowStore | str | os.PathLike, target: str = "label", *,
                   label_map: dict[str, int] | None = None, units: str = "uV"):
    """A braindecode ``BaseConcatDataset`` over a store: one ``WindowsDataset`` per recording.

    Parameters
    ----------
    store : WindowStore | path-like
        A store made by ``neurofm preprocess`` (or :func:`from_braindecode`).
    target : str
        ``"label"``: each window's label as an integer class (``label_map``, default: sorted label names);
        ``"target"``: the continuous target's mean over the window (regression stores).
    label_map : dict | None
        Label name → class index. Windows whose label is not in it get -1.
    units : {"uV", "V"}
        Units of the served arrays. The default keeps the store's µV (the unit neurofm models' signal contract
        expects and braindecode models usually train on); ``"V"`` gives MNE's own convention.

    Returns
    -------
    braindecode.datasets.BaseConcatDataset
        ``description`` has columns subject, session, run, label, dataset, recording; ``ds.label_map`` holds
        the class indices.
    """
    import mne
    import pandas as pd
    from braindecode.datasets import BaseConcatDataset, WindowsDataset

    store = store if isinstance(store, WindowStore) else WindowStore(store)
    if target not in ("label", "target"):
        raise StoreError(f"unknown target '{target}'.", source=store.root, hint="use target='label' or 'target'.")
    if units not in _SCALE:
        raise StoreError(f"unknown units '{units}'.", source=store.root, hint="use units='uV' or 'V'.")
    if label_map is None:
        label_map = {lab: k for k, lab in enumerate(sorted({str(v) for v in store.labels if v}))}
    datasets = []
    for k, rec in enumerate(store.recordings):
        data = np.asarray(store.array(k), dtype=np.float64) * _SCALE[units]
        n_win, _, n_times = data.shape
        info = _info(rec["channels"], rec["sfreq"])
        if target == "label":
            y = [label_map.get(str(lab), -1) for lab in rec["labels"]]
        else:
            if not rec.get("target_file"):
                raise StoreError(f"recording {rec['id']} has no continuous target.", source=store.root,
                                 hint="use target='label', or preprocess a dataset with a target channel.")
            first = int(np.searchsorted(store.rec_index, k))
            y = [float(np.mean(store.target(first + w))) for w in range(n_win)]
        starts = rec.get("starts") or [w * n_times for w in range(n_win)]
        metadata = pd.DataFrame(dict(i_window_in_trial=np.arange(n_win), i_start_in_trial=starts,
                                     i_stop_in_trial=np.asarray(starts) + n_times, target=y))
        events = np.column_stack([np.asarray(starts), np.zeros(n_win, int), np.zeros(n_win, int)]).astype(int)
        epochs = mne.EpochsArray(data, info, events=events, metadata=metadata, verbose="error")
        description = pd.Series(dict(subject=str(rec.get("subject")), session=rec.get("session"), run=rec.get("run"),
                                     label=rec.get("label"), dataset=rec.get("dataset"), recording=rec["id"]))
        datasets.append(WindowsDataset(epochs, description=description))
    concat = BaseConcatDataset(datasets)
    concat.label_map = label_map
    return concat


def _info(channels: list[dict], sfreq: float):
    """``mne.Info`` of a recording's channel table; known positions become a head-frame montage."""
    import mne

    types = [ch.get("type") or "eeg" for ch in channels]
    info = mne.create_info([ch["name"] for ch in channels], float(sfreq), types)
    pos = {ch["name"]: ch["pos"] for ch in channels if ch.get("pos") is not None}
    if pos:
        info.set_montage(mne.channels.make_dig_montage(ch_pos=pos, coord_frame="head"), on_missing="ignore",
                         verbose="error")
    return info


def from_braindecode(dataset, out: str | os.PathLike, *, label_names: dict[int, str] | None = None,
                     units: str = "uV", name: str = "braindecode") -> Path:
    """Write a braindecode windows dataset into a neurofm store (one recording per sub-dataset).

    Parameters
    ----------
    dataset : braindecode.datasets.BaseConcatDataset
        Of ``WindowsDataset`` or ``EEGWindowsDataset`` (e.g. from ``create_windows_from_events``).
    out : path-like
        Store directory (created).
    label_names : dict | None
        Class index → label name written in the store (default: the index as text; ``ds.label_map`` of a
        :func:`to_braindecode` dataset is inverted automatically).
    units : {"uV", "V"}
        Units of the dataset's arrays; the store holds µV.
    name : str
        Dataset name recorded in the manifest when the description has no ``dataset`` column.
    """
    if units not in _SCALE:
        raise StoreError(f"unknown units '{units}'.", source=out, hint="use units='uV' or 'V'.")
    if label_names is None and getattr(dataset, "label_map", None):
        label_names = {v: k for k, v in dataset.label_map.items()}
    writer = StoreWriter(out)
    subs = getattr(dataset, "datasets", None)
    if not subs:
        raise StoreError("not a braindecode BaseConcatDataset of windows (no .datasets).", source=out,
                         hint="pass the output of create_windows_from_events / create_fixed_length_windows.")
    sfreqs, ids = set(), set()
    for k, ds in enumerate(subs):
        info = _ds_info(ds)
        desc = {key: _plain(v) for key, v in (ds.description.to_dict() if ds.description is not None else {}).items()}
        items = [ds[i] for i in range(len(ds))]
        if not items:
            continue
        x = np.stack([np.asarray(it[0], dtype=np.float64) for it in items]) / _SCALE[units]
        ys = [_plain(it[1]) for it in items]
        labels = [label_names.get(y, str(y)) if label_names else str(y) for y in ys]
        starts = [int(np.asarray(it[2])[1]) for it in items]
        rec_id = _safe_id(str(desc.get("recording") or f"rec-{k:04d}"), ids)
        channels = [dict(name=ch["ch_name"], original=ch["ch_name"], type=mne_type(info, i),
                         pos=_pos(ch)) for i, ch in enumerate(info["chs"])]
        sfreq = float(info["sfreq"])
        sfreqs.add(sfreq)
        rec_labels = sorted(set(labels))
        meta = dict(id=rec_id, source=f"braindecode:{type(ds).__name__}", source_sha256="", dataset=desc.get("dataset", name),
                    subject=str(desc.get("subject", rec_id)), session=desc.get("session"), run=desc.get("run"),
                    label=desc.get("label", rec_labels[0] if len(rec_labels) == 1 else None), info=desc,
                    recipe=name, recipe_hash="", sfreq=sfreq, units="uV", n_times=int(x.shape[-1]),
                    patch_size=None, channels=channels, coord_frame="head", bads={}, interpolated=[],
                    notes=[f"written from a braindecode {type(ds).__name__}"],
                    window=dict(kind="braindecode", window_s=x.shape[-1] / sfreq), starts=starts, labels=labels,
                    events=[], target=None)
        writer.write(rec_id, x.astype(np.float32), meta)
    recipe = dict(name=name, description="windows written from a braindecode dataset", steps=[])
    recipe_hash = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    for meta in writer.completed():  # the manifest keeps recordings of this recipe hash
        meta["recipe_hash"] = recipe_hash
        write_json(writer.meta_path(meta["id"]), meta)
    writer.write_manifest(recipe, recipe_hash, dict(name=name, sfreq=sorted(sfreqs)), failures=[])
    return Path(out)


def _ds_info(ds) -> Any:
    if getattr(ds, "windows", None) is not None:
        return ds.windows.info
    if getattr(ds, "raw", None) is not None:
        return ds.raw.info
    raise StoreError(f"unsupported braindecode dataset {type(ds).__name__} (no windows or raw).",
                     hint="use a windows dataset (WindowsDataset / EEGWindowsDataset).")


def mne_type(info, idx: int) -> str:
    import mne

    return mne.channel_type(info, idx)


def _pos(ch: dict) -> list[float] | None:
    loc = np.asarray(ch["loc"][:3], dtype=float)
    if not np.all(np.isfinite(loc)) or not np.any(loc):
        return None
    return [float(v) for v in loc]


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, str | int | float | bool):
        return v
    try:
        import pandas as pd

        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


def _safe_id(text: str, seen: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "rec"
    rec_id, n = base, 1
    while rec_id in seen:
        n += 1
        rec_id = f"{base}-{n}"
    seen.add(rec_id)
    return rec_id
