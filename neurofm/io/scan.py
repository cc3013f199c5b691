"""Account for every file below a folder: recordings, the companion files each format needs, documents.

``folder:PATH`` must never skip a file unseen. :func:`scan_folder` sorts each file into exactly one of

* **recordings** — a format MNE reads (EDF/BDF/GDF, BrainVision ``.vhdr``/``.ahdr``, EEGLAB ``.set``, FIF,
  EGI ``.mff``/``.raw``, Nihon Kohden ``.eeg``, Neuroscan/ANT ``.cnt``, Persyst ``.lay``, Curry ``.cdt``,
  NeuroExplorer ``.nxe``, SNIRF, ``.nedf``), or a consumer EEG table (Muse, Mind Monitor, OpenBCI ``.csv``/``.txt``);
* **companions** — files a recording consists of (BrainVision ``.eeg``/``.vmrk``/``.amrk``, EEGLAB ``.fdt``,
  Persyst ``.dat``, Nihon Kohden ``.21e``/``.pnt``/``.log``, ANT ``.evt``, Curry ``.dpa``/``.cef``, a
  Sleep-EDF hypnogram beside its PSG);
* **documents** — sidecars and notes that are not signals (``.json``, ``.tsv``, ``.md``, images, anatomy, ...),
  listed on the console;
* **problems** — everything else, each reported as a failed recording with a hint (unknown extension, a
  MATLAB or NumPy file, a companion without its header, a hypnogram without its PSG).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from neurofm.io._formats import EDF_LIKE, annotation_only, split_ext

# Formats read as one recording each (the header file where a format has several).
PRIMARY = (".edf", ".bdf", ".gdf", ".vhdr", ".ahdr", ".fif", ".fif.gz", ".set", ".cnt", ".mff", ".nxe", ".snirf",
           ".nedf", ".lay", ".cdt", ".mefd", ".raw", ".eeg", ".mat")  # .mat: FieldTrip raw structures
TABULAR = (".csv", ".txt")
# Companion extensions, by the header extension they belong to (same stem, or named inside the header).
COMPANIONS = {
    ".vhdr": (".eeg", ".vmrk", ".amrk", ".dat", ".seg", ".avg"),
    ".ahdr": (".eeg", ".amrk", ".vmrk", ".dat"),
    ".set": (".fdt",),
    ".lay": (".dat",),
    ".eeg": (".21e", ".pnt", ".log", ".11d", ".cmt", ".cn2", ".bft"),  # Nihon Kohden
    ".cnt": (".evt", ".seg"),                                          # ANT eego
    ".cdt": (".cdt.dpa", ".cdt.cef", ".dpa", ".cef", ".dpo", ".ceo"),  # Curry
    ".raw": (".hdr",),
}
DOCUMENTS = (".json", ".tsv", ".md", ".rst", ".html", ".htm", ".pdf", ".png", ".jpg", ".jpeg", ".svg", ".yaml",
             ".yml", ".py", ".ipynb", ".nii", ".nii.gz", ".mgz", ".gii", ".docx", ".xlsx", ".odt", ".bib")
DOC_NAMES = ("readme", "changes", "license", "licence", "copying", "authors", "sha256sums", "md5sums", ".bidsignore")

_HINTS = {
    ".npy": "a NumPy array has no sampling rate or channel names: wrap it in mne.io.RawArray and save it as FIF, "
            "or register a dataset loader for it.",
    ".npz": "NumPy arrays have no sampling rate or channel names: wrap them in mne.io.RawArray and save them as FIF.",
    ".zip": "an archive: unpack it into the folder first.",
    ".gz": "a compressed file: decompress it into the folder first (FIF may stay .fif.gz).",
    ".tar": "an archive: unpack it into the folder first.",
    ".csv": "neurofm reads Muse (eeg-notebooks, Mind Monitor) and OpenBCI GUI exports; convert other tables to "
            "FIF with mne.io.RawArray, or move the file out of the folder.",
}


@dataclass
class FolderScan:
    """Where every file below a folder went."""

    recordings: list[Path] = field(default_factory=list)
    companions: dict[Path, list[Path]] = field(default_factory=dict)   # recording → its companion files
    annotations: dict[Path, Path] = field(default_factory=dict)        # PSG → hypnogram (annotation-only EDF)
    documents: list[Path] = field(default_factory=list)
    problems: dict[Path, tuple[str, str]] = field(default_factory=dict)   # file → (message, hint)


def _is_document(path: Path, ext: str) -> bool:
    lower = path.name.lower()
    return ext in DOCUMENTS or lower.startswith(DOC_NAMES) or lower.endswith(DOCUMENTS)


def _header_names(header: Path) -> list[Path]:
    """Files a BrainVision header names (``DataFile=``, ``MarkerFile=``)."""
    try:
        text = header.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("DataFile", "MarkerFile") and value.strip():
            out.append(header.parent / value.strip())
    return out


def psg_key(path: Path) -> str:
    """The Sleep-EDF pairing key: ``SC4001E0-PSG.edf`` and ``SC4001EC-Hypnogram.edf`` → ``SC4001E``."""
    head = split_ext(path)[0].split("-")[0]
    return head[:-1] if len(head) > 2 else head


def find_psg(hypnogram: Path, candidates: list[Path] | None = None) -> Path | None:
    """The recording an annotation-only EDF belongs with: same folder, same Sleep-EDF key, with signals."""
    if candidates is None:
        candidates = [p for p in hypnogram.parent.iterdir() if p.is_file() and split_ext(p)[1] in EDF_LIKE]
    key = psg_key(hypnogram)
    hits = [p for p in candidates if p != hypnogram and psg_key(p) == key and not annotation_only(p)]
    return sorted(hits)[0] if hits else None


def find_hypnogram(psg: Path) -> Path | None:
    """The annotation-only EDF beside ``psg`` that pairs with it (Sleep-EDF naming), or ``None``."""
    if annotation_only(psg) or not psg.parent.is_dir():
        return None
    key = psg_key(psg)
    hits = [p for p in psg.parent.iterdir() if p != psg and p.is_file() and split_ext(p)[1] in EDF_LIKE
            and psg_key(p) == key and annotation_only(p)]
    return sorted(hits)[0] if hits else None


def scan_folder(root: str | os.PathLike, *, sniff_table=None) -> FolderScan:
    """Sort every file below ``root`` (see the module docstring). ``sniff_table(path)`` says whether a
    ``.csv``/``.txt`` file is a consumer EEG table (default: :func:`neurofm.io.tabular.sniff`)."""
    if sniff_table is None:
        from neurofm.io.tabular import sniff as sniff_table

    root = Path(root)
    scan = FolderScan()
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for d in sorted(dirnames):
            if d.lower().endswith(".mff"):  # an EGI recording is a folder
                scan.recordings.append(here / d)
        dirnames[:] = sorted(d for d in dirnames if not d.lower().endswith(".mff") and not d.startswith("."))
        files += [here / f for f in sorted(filenames) if not f.startswith(".")]
    by_stem: dict[tuple[Path, str], list[Path]] = {}
    for f in files:
        by_stem.setdefault((f.parent, split_ext(f)[0].lower()), []).append(f)

    claimed: set[Path] = set()
    headers = []
    for f in files:
        ext = split_ext(f)[1]
        if ext in (".vhdr", ".ahdr", ".set", ".lay", ".cnt", ".cdt", ".raw"):
            headers.append(f)
    for h in headers:
        ext = split_ext(h)[1]
        named = _header_names(h) if ext in (".vhdr", ".ahdr") else []
        same_stem = [f for f in by_stem.get((h.parent, split_ext(h)[0].lower()), [])
                     if f != h and (split_ext(f)[1] in COMPANIONS.get(ext, ()) or f.name.lower().endswith(COMPANIONS.get(ext, ())))]
        comp = [f for f in dict.fromkeys(named + same_stem) if f.is_file()]
        scan.companions[h] = comp
        claimed.update(comp)
    for f in files:  # an .eeg no BrainVision header claims is read as Nihon Kohden, with its .21e/.pnt/.log
        if split_ext(f)[1] == ".eeg" and f not in claimed:
            comp = [g for g in by_stem.get((f.parent, split_ext(f)[0].lower()), [])
                    if g != f and split_ext(g)[1] in COMPANIONS[".eeg"]]
            scan.companions[f] = comp
            claimed.update(comp)
    edfs = [f for f in files if split_ext(f)[1] in EDF_LIKE]
    for f in files:
        if f in claimed:
            continue
        ext = split_ext(f)[1]
        if ext in EDF_LIKE and annotation_only(f):
            psg = find_psg(f, edfs)
            if psg is not None:
                scan.annotations[psg] = f
            else:
                scan.problems[f] = (
                    f"an annotation-only EDF (a hypnogram or event file: no signals) whose PSG recording is not in "
                    f"this folder (Sleep-EDF pairs {f.name} with {psg_key(f)}?-PSG{ext}).",
                    "put it beside the PSG recording it annotates (Sleep-EDF naming, e.g. SC4001E0-PSG.edf + "
                    "SC4001EC-Hypnogram.edf) so that its stages become window labels, or remove it.")
        elif ext in PRIMARY:
            scan.recordings.append(f)
        elif ext in TABULAR and sniff_table(f):
            scan.recordings.append(f)
        elif ext == ".csv":
            scan.problems[f] = ("a text table that is not a Muse (eeg-notebooks, Mind Monitor) or OpenBCI GUI export "
                                "(no timestamp and EEG channel columns found).", _HINTS[".csv"])
        elif _is_document(f, ext) or ext == ".txt":
            scan.documents.append(f)
        elif any(ext in c or f.name.lower().endswith(c) for c in COMPANIONS.values()):
            scan.problems[f] = (f"a companion file ({ext}) without the recording it belongs to.",
                                "copy the recording's header file (.vhdr, .set, .lay, .eeg, .cnt, ...) of the same "
                                "name into the folder, or remove it.")
        else:
            shown = ext or "(no extension)"
            scan.problems[f] = (f"unknown recording format '{shown}'.", _HINTS.get(
                ext, "convert it to a format MNE reads (EDF, BDF, BrainVision .vhdr, EEGLAB .set, FIF, ...), e.g. "
                "with mne.export.export_raw, or rename it if the extension is wrong."))
    scan.recordings.sort()
    return scan
