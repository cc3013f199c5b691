"""Datasets over user data: ``folder:PATH`` (every readable recording below PATH) and ``bids:PATH``."""

from __future__ import annotations

import re
from pathlib import Path

from neurofm._errors import DatasetRootError, RecordingError
from neurofm.datasets._base import Dataset, Recording, RecordingRef, annotation_events, read_standard
from neurofm.io._formats import RECORDING_EXTENSIONS, split_ext

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Files below a folder that are never recordings on their own (sidecars, documents, data halves of a pair).
_NOT_RECORDINGS = {".json", ".tsv", ".csv", ".md", ".txt", ".rst", ".html", ".pdf", ".png", ".jpg", ".svg",
                   ".vmrk", ".eeg", ".fdt", ".evt", ".dat", ".mat", ".npz", ".npy", ".pkl", ".py", ".yaml", ".yml",
                   ".log", ".zip", ".gz", ".nii", ".mgz"}
_BIDS_EXT = (".edf", ".bdf", ".vhdr", ".set", ".fif", ".nwb", ".mef")


def safe_id(text: str) -> str:
    """A file-system-safe recording id."""
    return _SAFE.sub("-", text).strip("-.") or "recording"


class Folder(Dataset):
    """Every file below ``root`` whose extension is a recording format MNE reads (sidecars skipped)."""

    name = "folder"
    description = "folder:PATH — every recording MNE reads below PATH (subject from sub- entity or file name)"
    licence = "yours"

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        refs, seen = [], set()
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            stem, ext = split_ext(path)
            if path.name.startswith(".") or not ext or ext in _NOT_RECORDINGS:
                continue
            # Anything else is a candidate: an unknown extension fails with a clear message instead of
            # vanishing from the batch unnoticed.
            rel = path.relative_to(self.root)
            rid = safe_id(str(rel.with_name(stem)).replace("/", "_"))
            while rid in seen:
                rid += "_"
            seen.add(rid)
            sub = re.search(r"sub-([A-Za-z0-9]+)", path.name)
            refs.append(RecordingRef(id=rid, path=path, subject=sub.group(1) if sub else safe_id(stem)))
        if not refs:
            raise DatasetRootError("no recordings found (looked for " + ", ".join(RECORDING_EXTENSIONS[:-1]) + ").",
                                   source=self.root, hint="point folder:PATH at a folder that holds recordings.")
        return refs

    def load(self, ref: RecordingRef) -> Recording:
        raw, table = read_standard(ref)
        return Recording(ref, raw, table, events=annotation_events(raw))


def bids_recordings(root: Path, dataset: Dataset) -> list[RecordingRef]:
    """Every EEG/iEEG recording in a BIDS tree, through mne-bids."""
    from mne_bids import find_matching_paths

    refs = []
    for bp in find_matching_paths(root, datatypes=["eeg", "ieeg"], extensions=list(_BIDS_EXT), suffixes=["eeg", "ieeg"]):
        if bp.extension == ".eeg":
            continue
        refs.append(RecordingRef(id=safe_id(bp.basename.rsplit("_", 1)[0]), path=Path(bp.fpath), subject=bp.subject,
                                 session=bp.session, run=None if bp.run is None else str(bp.run),
                                 meta=dict(task=bp.task, bids_root=str(root), datatype=bp.datatype)))
    if not refs:
        raise dataset._empty("sub-*/[ses-*/](eeg|ieeg)/*_(eeg|ieeg).<ext>")
    return refs


def _entities(name: str) -> dict[str, str]:
    return dict(part.split("-", 1) for part in name.split("_")[:-1] if "-" in part)


def check_bids_sidecars(ref: RecordingRef) -> None:
    """Refuse a BIDS recording whose REQUIRED sidecars are missing (``*_eeg.json``/``*_ieeg.json``; for iEEG also
    ``*_channels.tsv``), looking beside it and up to the BIDS root (inheritance principle).

    mne-bids reads such a recording with a warning only: channel types, units and the line frequency would
    then be guessed, silently.
    """
    path = Path(ref.path)
    datatype = ref.meta.get("datatype") or path.parent.name
    if datatype not in ("eeg", "ieeg"):
        return
    ents = _entities(path.name)
    root = Path(ref.meta.get("bids_root") or path.parent).resolve()
    folders = [path.parent.resolve()]
    while folders[-1] != root and root in folders[-1].parents:
        folders.append(folders[-1].parent)

    def found(suffix: str) -> bool:
        for folder in folders:
            for p in folder.glob(f"*_{suffix}"):
                other = _entities(p.name)
                if all(ents.get(k) == v for k, v in other.items() if k != "space"):
                    return True
        return False

    required = [f"{datatype}.json"] + (["channels.tsv"] if datatype == "ieeg" else [])
    missing = [s for s in required if not found(s)]
    if missing:
        base = path.name.rsplit("_", 1)[0]
        names = ", ".join(f"{base}_{s}" for s in missing)
        raise RecordingError(
            f"BIDS sidecar(s) missing: {names} (required by BIDS; without them channel types, units and the "
            "power-line frequency would be guessed).", source=path,
            hint=f"add {names} beside the recording (check the tree with the BIDS validator), or read the files "
                 "as folder:PATH to use no BIDS metadata.")


def read_bids(ref: RecordingRef):
    """Read one BIDS recording with mne-bids (sidecars applied) and make its channels canonical."""
    import warnings

    from mne_bids import get_bids_path_from_fname, read_raw_bids

    from neurofm.io import Sidecars, standardize_channels
    from neurofm.io._read import read_raw

    read_raw(ref.path, preload=False)  # same file checks and messages as any other recording
    check_bids_sidecars(ref)
    bp = get_bids_path_from_fname(ref.path)
    bp.root = ref.meta.get("bids_root", bp.root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = read_raw_bids(bp, verbose="error")
    except Exception as err:
        text = " ".join(str(err).split())[:300]
        raise RecordingError(f"mne-bids could not read it ({type(err).__name__}: {text}).", source=ref.path,
                             hint="check the BIDS sidecars (channels.tsv, *_ieeg.json/*_eeg.json) with the BIDS "
                             "validator; every recording needs its sidecar JSON.") from None
    raw.load_data(verbose="error")
    table = standardize_channels(raw, sidecars=Sidecars.find(ref.path), montage=ref.options.get("montage"))
    return raw, table


class BIDS(Dataset):
    """Any BIDS tree (EEG or iEEG) read through mne-bids."""

    name = "bids"
    description = "bids:PATH — any BIDS EEG/iEEG tree, read through mne-bids (channels.tsv, electrodes.tsv applied)"
    licence = "yours"

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        if not (self.root / "dataset_description.json").exists():
            raise DatasetRootError("not a BIDS root: dataset_description.json is missing.", source=self.root,
                                   hint="point bids:PATH at the folder that holds dataset_description.json, "
                                   "or use folder:PATH for loose files.")
        return bids_recordings(self.root, self)

    def load(self, ref: RecordingRef) -> Recording:
        raw, table = read_bids(ref)
        return Recording(ref, raw, table, events=annotation_events(raw))
