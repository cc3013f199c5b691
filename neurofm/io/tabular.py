"""Consumer EEG exported as text tables: Muse (eeg-notebooks, Mind Monitor) and OpenBCI GUI.

Each becomes an ``mne.io.RawArray`` in Volts:

* **Muse, eeg-notebooks / muse-lsl** (``.csv``): ``timestamps`` (s), ``TP9, AF7, AF8, TP10`` (µV), optional
  ``Right AUX``, and a marker column (``Marker0``, ``stim``, ...: non-zero codes are events).
* **Muse, Mind Monitor** (``.csv``): ``TimeStamp`` (date-time), ``RAW_TP9 … RAW_TP10`` (µV), ``AUX_*``; rows
  with an ``Elements`` entry (markers, blinks) become events.
* **OpenBCI GUI** (``.txt``/``.csv``): ``%`` header lines (``%Sample Rate = 250 Hz``), then either a header
  row (GUI v5: ``Sample Index, EXG Channel 0 … , Timestamp, Marker Channel``) or bare rows (v4: index,
  channels in µV, accelerometer, time); marker values other than 0 are events.

The sampling rate comes from the file (OpenBCI's declared rate, else the timestamps: samples over span,
snapped to a standard rate within 1 %); ``sfreq`` is used only where the file has no timestamps.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from neurofm._errors import CorruptFileError, RecordingError

MUSE = ("TP9", "AF7", "AF8", "TP10")
_STANDARD_RATES = (100.0, 125.0, 128.0, 200.0, 220.0, 250.0, 256.0, 500.0, 512.0, 1000.0, 1024.0, 2000.0, 2048.0)
_MARKER = re.compile(r"^(marker\d*|markers|marker channel|stim|event|events|trigger)$", re.I)


def _head(path: Path, n: int = 40) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fid:
            return [fid.readline() for _ in range(n)]
    except OSError:
        return []


def sniff(path: str | os.PathLike) -> str | None:
    """``"muse"``, ``"mindmonitor"``, ``"openbci"`` or ``None`` (not a consumer EEG table), from the first lines."""
    lines = [ln for ln in _head(Path(path)) if ln]
    if not lines:
        return None
    if lines[0].lstrip().startswith("%OpenBCI") or any("EXG Channel" in ln for ln in lines[:15]):
        return "openbci"
    header = [c.strip().strip('"') for c in lines[0].split(",")]
    upper = {c.upper() for c in header}
    if "TIMESTAMP" in upper and {f"RAW_{m}" for m in MUSE} <= upper:
        return "mindmonitor"
    if "TIMESTAMPS" in upper and set(MUSE) <= upper:
        return "muse"
    return None


def _rate_from_timestamps(t: np.ndarray, path: Path) -> float:
    t = t[np.isfinite(t)]
    if len(t) < 3 or not np.all(np.diff(t) >= 0) or t[-1] <= t[0]:
        raise CorruptFileError("its timestamps are missing, too few or not increasing, so the sampling rate is "
                               "unknown.", source=path, hint="pass --sfreq RATE (Hz) to neurofm preprocess.")
    rate = (len(t) - 1) / (t[-1] - t[0])
    near = min(_STANDARD_RATES, key=lambda r: abs(r - rate))
    return near if abs(near - rate) <= 0.01 * near else round(rate, 2)


def _events(raw, column: np.ndarray, times: np.ndarray) -> None:
    """Non-empty, non-zero marker values → annotations at their sample times."""
    import mne

    onsets, labels = [], []
    for t, v in zip(times, column, strict=True):
        if v is None or (isinstance(v, float) and (np.isnan(v) or v == 0)) or v in ("", "0", 0):
            continue
        label = str(v).strip()
        if re.fullmatch(r"-?\d+\.0+", label):
            label = label.split(".")[0]
        if label and label != "0":
            onsets.append(float(t))
            labels.append(label)
    if onsets:
        raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), labels))


def _raw(data_uv: np.ndarray, names: list[str], types: list[str], sfreq: float):
    import mne

    info = mne.create_info(names, sfreq, types)
    data = np.asarray(data_uv, dtype=float).T * 1e-6
    return mne.io.RawArray(data, info, verbose="error")


def read_tabular(path: str | os.PathLike, *, sfreq: float | None = None):
    """Read a Muse / Mind Monitor / OpenBCI table as an ``mne.io.RawArray`` (Volts), markers as annotations.

    Parameters
    ----------
    path : path-like
        The ``.csv``/``.txt`` export.
    sfreq : float | None
        Sampling rate (Hz), used only when the file has neither a declared rate nor timestamps.

    Raises
    ------
    RecordingError
        Not a known table, no channel columns, or no way to know the sampling rate.
    """
    import pandas as pd

    path = Path(path)
    kind = sniff(path)
    if kind is None:
        raise RecordingError("a text table that is not a Muse (eeg-notebooks, Mind Monitor) or OpenBCI GUI export.",
                             source=path, hint="convert it to FIF with mne.io.RawArray (Volts, channel names, sfreq), "
                             "or move it out of the folder.")
    if kind == "openbci":
        return _read_openbci(path, sfreq)
    try:
        table = pd.read_csv(path, low_memory=False)
    except Exception as err:
        raise CorruptFileError(f"cannot parse the table ({type(err).__name__}: {str(err)[:160]}).", source=path,
                               hint="export it again from the app; the file may be truncated.") from None
    cols = {c.strip(): c for c in table.columns}
    if kind == "muse":
        tcol = next(c for k, c in cols.items() if k.lower() == "timestamps")
        chans = [k for k in cols if k.upper() in MUSE or "AUX" in k.upper()]
        markers = [cols[k] for k in cols if _MARKER.match(k)]
        keep = table
        times = pd.to_numeric(keep[tcol], errors="coerce").to_numpy(float)
    else:
        tcol = next(c for k, c in cols.items() if k.upper() == "TIMESTAMP")
        chans = [k for k in cols if k.upper().startswith("RAW_") or k.upper().startswith("AUX_")]
        markers = [cols[k] for k in cols if k.lower() == "elements"]
        stamps = pd.to_datetime(table[tcol], errors="coerce")
        times = (stamps - stamps.min()).dt.total_seconds().to_numpy(float)
        keep = table
    values = keep[[cols[k] for k in chans]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    rows = np.isfinite(values[:, : min(4, values.shape[1])]).all(axis=1)  # Mind Monitor: marker rows hold no samples
    if not rows.any():
        raise CorruptFileError("no row holds EEG samples.", source=path, hint="export the raw EEG from the app.")
    has_time = np.isfinite(times[rows]).sum() >= 3
    rate = _rate_from_timestamps(times[rows], path) if has_time else sfreq
    if rate is None:
        _rate_from_timestamps(np.array([]), path)  # raises with the --sfreq hint
    t0 = times[rows][0] if has_time else 0.0
    names = [re.sub(r"^(RAW|AUX)_", "", k, flags=re.I) if k.upper().startswith("RAW_") else k for k in chans]
    types = ["eeg" if n.upper() in MUSE else "misc" for n in names]
    raw = _raw(values[rows], names, types, rate)
    for col in markers:
        marker_rows = table[col].notna().to_numpy()
        at = times - t0 if has_time else np.arange(len(table)) / rate
        _events(raw, table[col].where(marker_rows, None).to_numpy(object)[marker_rows], at[marker_rows])
    return raw


def _read_openbci(path: Path, sfreq: float | None):
    import pandas as pd

    lines = _head(path, 60)
    declared = None
    n_declared = None
    for ln in lines:
        if ln.startswith("%"):
            m = re.search(r"Sample Rate\s*=\s*([\d.]+)", ln)
            declared = float(m.group(1)) if m else declared
            m = re.search(r"Number of channels\s*=\s*(\d+)", ln)
            n_declared = int(m.group(1)) if m else n_declared
    skip = sum(1 for ln in lines if ln.startswith("%"))
    try:
        first = lines[skip] if skip < len(lines) else ""
        has_header = "EXG Channel" in first or "Sample Index" in first
        table = pd.read_csv(path, skiprows=skip, header=0 if has_header else None, skipinitialspace=True,
                            low_memory=False)
    except Exception as err:
        raise CorruptFileError(f"cannot parse the OpenBCI table ({type(err).__name__}: {str(err)[:160]}).",
                               source=path, hint="export it again from the OpenBCI GUI; it may be truncated.") from None
    if has_header:
        cols = [str(c).strip() for c in table.columns]
        table.columns = cols
        chans = [c for c in cols if c.startswith("EXG Channel")]
        tcol = next((c for c in cols if c == "Timestamp"), None)
        markers = [c for c in cols if _MARKER.match(c)]
        times = pd.to_numeric(table[tcol], errors="coerce").to_numpy(float) if tcol else np.full(len(table), np.nan)
    else:  # v4: index, channels, 3 accelerometer columns, then time columns
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        n = n_declared or max(len(numeric) - 1 - 3 - (1 if numeric[-1] == table.columns[-1] else 0), 0)
        chans = numeric[1: 1 + n]
        markers = []
        last = table[table.columns[-1]]
        times = pd.to_numeric(last, errors="coerce").to_numpy(float) / 1000.0  # unix ms, where present
        table = table.rename(columns={c: f"EXG Channel {i}" for i, c in enumerate(chans)})
        chans = [f"EXG Channel {i}" for i in range(len(chans))]
    if not chans:
        raise RecordingError("no EXG channel columns found in the OpenBCI export.", source=path,
                             hint="export the raw EXG data from the OpenBCI GUI (Playback → file, BDF or text).")
    values = table[chans].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    has_time = np.isfinite(times).sum() >= 3
    rate = declared or (_rate_from_timestamps(times, path) if has_time else sfreq)
    if rate is None:
        _rate_from_timestamps(np.array([]), path)
    raw = _raw(values, chans, ["eeg"] * len(chans), rate)
    for col in markers:
        _events(raw, table[col].to_numpy(object), np.arange(len(table)) / rate)
    return raw
