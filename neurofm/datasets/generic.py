"""Datasets over user data: ``folder:PATH`` (every readable recording below PATH) and ``bids:PATH``."""

from __future__ import annotations

import re
from pathlib import Path

from neurofm._errors import ConfigError, DatasetRootError, RecordingError, UnknownFormatError
from neurofm.datasets._base import Dataset, Recording, RecordingRef, annotation_events, read_standard
from neurofm.io._formats import split_ext

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_BIDS_EXT = (".edf", ".bdf", ".vhdr", ".set", ".fif", ".nwb", ".mef")
_BIDS_SUB = re.compile(r"(?:^|[/_])sub-([A-Za-z0-9]+)")
# Who a file belongs to when its path has no BIDS ``sub-`` entity, tried in order on the file name (the first
# group is the person): "Subject07_2.edf", "subj-3_rest.vhdr" → 07 / 3; Sleep-EDF "SC4012E0-PSG.edf" → SC401;
# PhysioNet "S001R03.edf" → S001. Anything else is its own subject (the file name). --subject-pattern replaces it.
SUBJECT_PATTERNS = (
    re.compile(r"(?i)(?:^|[^a-z])sub(?:ject|j)?[-_ ]?(\d+)(?=[-_ .a-z]|$)"),
    re.compile(r"^(S[CT]\d{3})\d[A-Z]"),
    re.compile(r"^(S\d{3})R\d{2}"),
)


def safe_id(text: str) -> str:
    """A file-system-safe recording id."""
    return _SAFE.sub("-", text).strip("-.") or "recording"


def subject_of(rel: Path, pattern: re.Pattern | None = None) -> str:
    """The person a recording belongs to: the BIDS ``sub-`` entity of its path relative to the root, else
    ``pattern`` (first group, searched in that path), else :data:`SUBJECT_PATTERNS` on the file name, else the
    file's stem."""
    text = rel.as_posix()
    if pattern is not None:
        hit = pattern.search(text)
        return safe_id(hit.group(1)) if hit else safe_id(split_ext(rel)[0])
    hit = _BIDS_SUB.search(text)
    if hit:
        return hit.group(1)
    for pat in SUBJECT_PATTERNS:
        hit = pat.search(rel.name)
        if hit:
            return safe_id(hit.group(1))
    return safe_id(split_ext(rel)[0])


def compile_subject_pattern(text: str) -> re.Pattern:
    """``--subject-pattern``: a regular expression with one group, searched in each path below the root."""
    try:
        pattern = re.compile(text)
    except re.error as err:
        raise ConfigError(f"--subject-pattern '{text}' is not a regular expression ({err}).",
                          hint="e.g. --subject-pattern '^(P\\d+)/' for folders P01/, P02/ ... (one group: the subject).") from None
    if pattern.groups < 1:
        raise ConfigError(f"--subject-pattern '{text}' has no group to take the subject from.",
                          hint="put the subject part in parentheses, e.g. 'Subject(\\d+)_'.")
    return pattern


class Folder(Dataset):
    """Every file below ``root``: each recording in a format MNE reads (or a Muse/OpenBCI table) is one
    recording, companion files go with their recording, documents are listed, anything else fails with a hint.

    ``subject_pattern`` (``--subject-pattern``) overrides how the subject is read from a path (see
    :func:`subject_of`).
    """

    name = "folder"
    description = ("folder:PATH — every recording MNE reads below PATH, plus Muse/OpenBCI tables "
                   "(subject from the sub- entity or the file name)")
    licence = "yours"
    subject_pattern: re.Pattern | None = None

    def recordings(self) -> list[RecordingRef]:
        from neurofm.io.scan import scan_folder

        self.check_root()
        scan = scan_folder(self.root)
        self.scan = scan
        entries = [(p, None) for p in scan.recordings] + list(scan.problems.items())
        refs, seen = [], set()
        for path, problem in sorted(entries, key=lambda e: e[0]):
            stem, _ = split_ext(path)
            rel = path.relative_to(self.root)
            rid = safe_id(str(rel.with_name(stem)).replace("/", "_"))
            while rid in seen:
                rid += "_"
            seen.add(rid)
            options = {"problem": problem} if problem else {}
            meta = {"annotations": str(scan.annotations[path])} if path in scan.annotations else {}
            refs.append(RecordingRef(id=rid, path=path, subject=subject_of(rel, self.subject_pattern), meta=meta,
                                     options=options))
        if not refs:
            seen_files = ", ".join(p.name for p in scan.documents[:5]) or "nothing"
            raise DatasetRootError(f"no recordings found (saw {len(scan.documents)} document/sidecar file(s): "
                                   f"{seen_files}).", source=self.root,
                                   hint="point folder:PATH at a folder that holds recordings (EDF, BDF, BrainVision, "
                                   "EEGLAB, FIF, EGI, Nihon Kohden, CNT, GDF, Persyst, Muse/OpenBCI tables, ...).")
        return refs

    def scan_notes(self) -> list[str]:
        """One console line on the files below the root that are not recordings (never skipped unseen)."""
        scan = getattr(self, "scan", None)
        if scan is None or not scan.documents:
            return []
        names = [p.name for p in scan.documents]
        return [f"not read: {len(names)} document/sidecar file(s) below {self.root}: {', '.join(names[:6])}"
                + (", ..." if len(names) > 6 else "")]

    def load(self, ref: RecordingRef) -> Recording:
        problem = ref.options.get("problem")
        if problem:
            raise UnknownFormatError(problem[0], source=ref.path, hint=problem[1])
        raw, table = read_standard(ref)
        if ref.meta.get("annotations"):
            _add_hypnogram(raw, Path(ref.meta["annotations"]))
        return Recording(ref, raw, table, events=annotation_events(raw))


def _add_hypnogram(raw, path: Path) -> None:
    """Add the annotations of an annotation-only EDF (Sleep-EDF hypnogram) to its PSG recording."""
    import mne

    try:
        annot = mne.read_annotations(path)
    except Exception as err:
        raise RecordingError(f"its hypnogram cannot be read ({type(err).__name__}: {str(err)[:160]}).",
                             source=path, hint="export the hypnogram again, or move it out of the folder.") from None
    if raw.info["meas_date"] is None or annot.orig_time is None:
        annot = mne.Annotations(annot.onset, annot.duration, annot.description, orig_time=raw.info["meas_date"])
    raw.set_annotations(raw.annotations + annot if len(raw.annotations) else annot)


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
