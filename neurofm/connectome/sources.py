"""Where connectome inputs come from: a registered dataset (raw recordings) or a preprocessed store."""

from __future__ import annotations

import numpy as np

from neurofm._errors import StoreError
from neurofm.connectome.pipeline import Source
from neurofm.datasets import Dataset, Event

_DEFAULT_TYPES = {"eeg": ("eeg",), "seeg": ("seeg",), "ecog": ("ecog", "seeg")}


def sources_from_dataset(dataset: Dataset, *, types: tuple[str, ...] | None = None, limit: int | None = None,
                         max_seconds: float | None = None) -> list[Source]:
    """One source per recording: its data channels (Volts), subject, condition (= recording label) and events."""
    from neurofm._errors import ChannelError

    types = tuple(types or _DEFAULT_TYPES.get(dataset.modality, ("eeg", "seeg", "ecog")))
    out = []
    for ref in dataset.recordings()[:limit]:
        rec = dataset.load(ref)
        table = rec.channels
        keep = [i for i, t in enumerate(table.types) if t in types and table.names[i] != rec.target]
        if types == ("eeg",):
            keep = [i for i in keep if table.has_position()[i]]
        if len(keep) < 2:
            raise ChannelError(f"fewer than 2 channels of type {list(types)}.", source=ref.path,
                               hint="pass --types with the channel types this dataset has.")
        names = [table.names[i] for i in keep]
        x = rec.raw.get_data(picks=names)
        if max_seconds is not None:
            x = x[:, : int(max_seconds * rec.raw.info["sfreq"])]
        out.append(Source(ref.id, ref.subject, x, float(rec.raw.info["sfreq"]), names, ref.label,
                          [e for e in rec.events if e.label != ref.label], table.positions[keep]))
    return out


def sources_from_store(root) -> list[Source]:
    """One source per stored recording, its contiguous windows joined back into one signal."""
    from neurofm.data.dataset import WindowStore

    store = WindowStore(root)
    out = []
    for k, rec in enumerate(store.recordings):
        starts = np.asarray(rec["starts"])
        n_t = rec["n_times"]
        if len(starts) > 1 and not np.all(np.diff(starts) == n_t):
            raise StoreError(f"windows of '{rec['id']}' are not contiguous (stride != window).", source=root,
                             hint="make the store with stride_s equal to window_s, or use --dataset.")
        arr = store.array(k)
        x = np.concatenate(list(arr), axis=-1) * 1e-6  # µV → V
        offset = starts[0] / rec["sfreq"] if len(starts) else 0.0
        events = [Event(e["onset"] - offset, e["duration"], e["label"]) for e in rec["events"]
                  if e["label"] != rec.get("label")]
        pos = np.array([c["pos"] if c["pos"] is not None else [np.nan] * 3 for c in rec["channels"]])
        out.append(Source(rec["id"], rec["subject"], x, float(rec["sfreq"]), [c["name"] for c in rec["channels"]],
                          rec.get("label"), events, pos))
    return out
