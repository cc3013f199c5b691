"""File-format checks done before handing a file to MNE.

MNE reads a truncated or line-ending-damaged EDF without complaint in some
cases (it pads or reads garbage), so the EDF/BDF header is checked against the
file size first. Every failure raises a :class:`~neurofm._errors.RecordingError`
subclass naming the file and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from neurofm._errors import CorruptFileError, UnknownFormatError

# Extensions mne.io.read_raw dispatches on (mne 1.13), longest first for matching.
MNE_EXTENSIONS = (
    ".fif.gz", ".cdt.dpa", ".cdt.cef", ".edf", ".bdf", ".gdf", ".vhdr", ".ahdr", ".eeg", ".mefd",
    ".fif", ".set", ".cnt", ".mff", ".nxe", ".hdr", ".snirf", ".mat", ".bin", ".data", ".sqd", ".con",
    ".ds", ".txt", ".dat", ".dap", ".rs3", ".cdt", ".cef", ".nedf", ".asc", ".ns3", ".lay",
)
# Extensions that are recordings rather than sidecars, used when scanning a folder.
RECORDING_EXTENSIONS = (".edf", ".bdf", ".gdf", ".vhdr", ".fif", ".fif.gz", ".set", ".cnt", ".mff", ".nxe", ".snirf", ".nedf", ".lay", ".npy")
EDF_LIKE = (".edf", ".bdf")
ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")


def split_ext(path: str | os.PathLike) -> tuple[str, str]:
    """Split ``path`` into stem and lower-case extension, keeping double extensions like ``.fif.gz``."""
    name = Path(path).name
    lower = name.lower()
    for ext in MNE_EXTENSIONS + (".npy",):
        if lower.endswith(ext):
            return name[: -len(ext)], ext
    return Path(name).stem, Path(name).suffix.lower()


def check_extension(path: str | os.PathLike) -> str:
    """Return the extension, or raise :class:`UnknownFormatError` if no reader knows it."""
    _, ext = split_ext(path)
    if ext not in MNE_EXTENSIONS:
        shown = ext or "(no extension)"
        raise UnknownFormatError(
            f"unknown recording format '{shown}'.",
            source=path,
            hint="convert it to a format MNE reads (EDF, BDF, BrainVision .vhdr, EEGLAB .set, FIF, ...), "
            "e.g. with mne.export.export_raw, or rename it if the extension is wrong.",
        )
    return ext


def _field(raw: bytes, what: str, path: Path) -> str:
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CorruptFileError(
            f"EDF header field '{what}' is not ASCII ({raw[:16]!r}); the header is damaged.",
            source=path,
            hint="re-export the recording from the acquisition software or restore it from the original copy.",
        ) from None


def _int(raw: bytes, what: str, path: Path) -> int:
    text = _field(raw, what, path)
    try:
        return int(float(text))
    except (ValueError, OverflowError):  # not a number, or nan/inf/1e999
        raise CorruptFileError(
            f"EDF header field '{what}' should be a number but reads {text!r}.",
            source=path,
            hint="the header is damaged; re-export the recording or restore it from the original copy.",
        ) from None


def read_edf_header(path: str | os.PathLike) -> dict:
    """Parse the fixed part of an EDF/BDF header and check it against the file size.

    Returns a dict with ``labels``, ``n_records``, ``samples_per_record``,
    ``header_bytes`` and ``bytes_per_sample``.

    Raises
    ------
    CorruptFileError
        The file is empty, truncated, or its size disagrees with the header
        (for instance after a text-mode transfer converted line endings).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CorruptFileError("the file is empty (0 bytes).", source=path,
                               hint="copy the recording again; the transfer or export did not complete.")
    with open(path, "rb") as fid:
        fixed = fid.read(256)
        if len(fixed) < 256:
            raise CorruptFileError(
                f"truncated: {size} bytes, shorter than the 256-byte EDF header.", source=path,
                hint="copy the recording again; the transfer or export did not complete.")
        is_bdf = fixed[:1] == b"\xff"
        bytes_per_sample = 3 if is_bdf else 2
        header_bytes = _int(fixed[184:192], "number of header bytes", path)
        n_records = _int(fixed[236:244], "number of data records", path)
        ns = _int(fixed[252:256], "number of signals", path)
        if ns <= 0 or header_bytes != 256 * (ns + 1):
            raise CorruptFileError(
                f"EDF header is inconsistent: {ns} signals but {header_bytes} header bytes "
                f"(expected {256 * (ns + 1)}).", source=path,
                hint="the header is damaged; re-export the recording or restore it from the original copy.")
        signal_header = fid.read(256 * ns)
    if len(signal_header) < 256 * ns:
        raise CorruptFileError(
            f"truncated inside the header: {size} bytes, header alone needs {header_bytes}.", source=path,
            hint="copy the recording again; the transfer or export did not complete.")
    labels = [_field(signal_header[16 * i: 16 * (i + 1)], f"label of signal {i + 1}", path) for i in range(ns)]
    off = 216 * ns  # label 16 + transducer 80 + dim 8 + pmin 8 + pmax 8 + dmin 8 + dmax 8 + prefilter 80
    spr = [_int(signal_header[off + 8 * i: off + 8 * (i + 1)], f"samples per record of signal {i + 1}", path)
           for i in range(ns)]
    record_bytes = sum(spr) * bytes_per_sample
    info = dict(labels=labels, n_records=n_records, samples_per_record=spr, header_bytes=header_bytes,
                bytes_per_sample=bytes_per_sample, record_bytes=record_bytes, size=size)
    if n_records < 0 or record_bytes == 0:  # -1: unknown during recording; data size checked by MNE
        return info
    expected = header_bytes + n_records * record_bytes
    if size == expected:
        return info
    data = size - header_bytes
    if size < expected:
        complete = data // record_bytes
        raise CorruptFileError(
            f"truncated: the header declares {n_records} data records ({expected} bytes) but the file has "
            f"{size} bytes ({complete} complete records).", source=path,
            hint="copy the recording again in binary mode; if only this copy exists, rewrite the header's "
            f"record count to {complete} (e.g. with edfio) to keep the complete records.")
    extra = size - expected
    if extra % record_bytes == 0:
        raise CorruptFileError(
            f"header/data size mismatch: the header declares {n_records} data records but the file holds "
            f"{data // record_bytes}.", source=path,
            hint="the header's record count is wrong; re-export the recording or correct the count with edfio.")
    raise CorruptFileError(
        f"header/data size mismatch: {extra} bytes more than the header declares, not a whole number of "
        f"{record_bytes}-byte records; this is the signature of a line-ending conversion (text-mode transfer).",
        source=path,
        hint="copy the file again in binary mode (e.g. `git config core.autocrlf false`, FTP binary mode).")


def check_edf_channels(path: str | os.PathLike, header: dict) -> None:
    """Reject EDF/BDF files whose signal labels repeat (MNE would silently rename them)."""
    from neurofm._errors import ChannelError

    seen: dict[str, int] = {}
    for label in header["labels"]:
        if label in ANNOTATION_LABELS:
            continue
        seen[label] = seen.get(label, 0) + 1
    dups = sorted(k for k, v in seen.items() if v > 1)
    if dups:
        raise ChannelError(
            f"duplicate channel labels {dups} in the header.", source=path,
            hint="give every signal a unique label (e.g. with edfio or the acquisition software); "
            "neurofm will not guess which copy is which.")


def companion_files(path: str | os.PathLike) -> list[Path]:
    """The files a recording consists of: the file itself plus the data/marker files it points to.

    BrainVision ``.vhdr`` names its ``DataFile`` and ``MarkerFile``; EEGLAB ``.set`` may keep samples in a
    ``.fdt`` of the same stem. Used to decide whether a stored recording is still up to date.
    """
    path = Path(path)
    if path.is_dir():  # a recording made of a folder of files (UCI: one file per trial)
        return sorted(p for p in path.iterdir() if p.is_file())
    files = [path]
    _, ext = split_ext(path)
    if ext == ".vhdr":
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return files
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("DataFile", "MarkerFile") and value.strip():
                files.append(path.parent / value.strip())
    elif ext == ".set":
        files.append(path.with_suffix(".fdt"))
    return [f for f in files if f.is_file()]
