"""Reader for the UCI "EEG Database" text format (Begleiter, SUNY Downstate; SMNI_CMI files).

One gzipped text file per trial (``co2a0000364.rd.000.gz``)::

    # co2a0000364.rd
    # 120 trials, 64 chans, 416 samples 368 post_stim samples
    # 3.906000 msecs uV
    # S1 obj , trial 0
    # FP1 chan 0
    ...
    0 FP1 0 -8.921          <- trial  channel  sample  value (µV)

The header's ``416 samples`` is the original epoch length; the distributed files hold
256 samples per channel (1 s at 256 Hz, stimulus at 0). The sampling interval comes
from the ``msecs`` line. Every problem (truncated gzip, a malformed row, a channel
with missing samples) is a :class:`~neurofm._errors.CorruptFileError` naming the file.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofm._errors import CorruptFileError

_HINT = "use the original UCI files (gzipped text: '#' header lines, then rows 'trial channel sample value')."
_CONDITION = re.compile(r"^#\s*(S\d\s+\w+(?:\s+err)?)\s*,\s*trial\s+(\d+)", re.I)
_CHANNEL = re.compile(r"^#\s*(\S+)\s+chan\s+(\d+)\s*$")
_INTERVAL = re.compile(r"^#\s*([\d.]+)\s*msecs", re.I)
_SUBJECT = re.compile(r"^#\s*(co\w+?)(?:\.rd)?\s*$")


@dataclass
class UCITrial:
    """One trial: ``data`` (n_channels, n_times) in µV, channel names as in the file."""

    path: Path
    subject: str
    condition: str  # "S1 obj", "S2 match", "S2 nomatch" (plus " err" where the file says so)
    trial: int
    ch_names: list[str]
    sfreq: float
    data: np.ndarray


def _text(path: Path) -> str:
    try:
        with gzip.open(path, "rt", encoding="ascii") as fid:
            return fid.read()
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as err:
        raise CorruptFileError(f"cannot decompress/decode the trial file ({type(err).__name__}: {err}).",
                               source=path, hint=_HINT) from None


def read_uci_trial(path: str | Path) -> UCITrial:
    """Read one ``*.rd.NNN.gz`` trial file.

    Parameters
    ----------
    path : str | Path
        The gzipped trial file.

    Returns
    -------
    UCITrial
        Samples in µV, one row per channel in the order of the ``# NAME chan K`` header lines.
    """
    path = Path(path)
    text = _text(path)
    subject = condition = None
    trial, interval_ms = None, None
    channels: dict[int, str] = {}
    rows: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            if m := _CONDITION.match(line):
                condition, trial = " ".join(m.group(1).split()), int(m.group(2))
            elif m := _CHANNEL.match(line):
                channels[int(m.group(2))] = m.group(1)
            elif m := _INTERVAL.match(line):
                interval_ms = float(m.group(1))
            elif (m := _SUBJECT.match(line)) and subject is None:
                subject = m.group(1)
            continue
        rows.append(line)
    if condition is None or interval_ms is None or not channels:
        missing = [k for k, v in (("'# S1 obj , trial N'", condition), ("'# X msecs uV'", interval_ms),
                                  ("'# NAME chan K'", channels or None)) if v is None]
        raise CorruptFileError(f"header lacks {', '.join(missing)}.", source=path, hint=_HINT)
    names = [channels[k] for k in sorted(channels)]
    index = {n: i for i, n in enumerate(names)}
    if len(index) != len(names):
        raise CorruptFileError("the header lists a channel name twice.", source=path, hint=_HINT)
    n_rows = len(rows)
    if n_rows == 0 or n_rows % len(names):
        raise CorruptFileError(f"{n_rows} data rows for {len(names)} channels (not a whole number of samples "
                               "per channel): the file is truncated.", source=path, hint=_HINT)
    n_times = n_rows // len(names)
    data = np.full((len(names), n_times), np.nan)
    fields = " ".join(rows).split()
    try:  # fast path: whole table at once; on any problem, find the first bad row below
        table = np.asarray(fields, dtype=object).reshape(n_rows, 4)
        ch = np.array([index[c] for c in table[:, 1]])
        s = table[:, 2].astype(int)
        ok = (table[:, 0].astype(int) == trial).all() and s.min() >= 0 and s.max() < n_times
        if not ok:
            raise ValueError
        data[ch, s] = table[:, 3].astype(float)
    except (ValueError, KeyError, IndexError):
        for k, line in enumerate(rows):
            parts = line.split()
            try:
                if len(parts) != 4:
                    raise ValueError(f"{len(parts)} fields, expected 4")
                if int(parts[0]) != trial:
                    raise ValueError(f"trial {parts[0]} in the file of trial {trial}")
                c, j, value = index[parts[1]], int(parts[2]), float(parts[3])
                data[c, j] = value
            except (ValueError, KeyError, IndexError) as err:
                raise CorruptFileError(f"malformed data row {k + 1} {line.strip()!r} ({type(err).__name__}: {err}).",
                                       source=path, hint=_HINT) from None
    if not np.isfinite(data).all():
        ch = names[int(np.nonzero(~np.isfinite(data).all(axis=1))[0][0])]
        raise CorruptFileError(f"channel {ch} lacks some of its {n_times} samples.", source=path, hint=_HINT)
    if subject is None:
        subject = path.name.split(".")[0]
    sfreq = 1000.0 / interval_ms
    if abs(sfreq - round(sfreq)) < 1e-3 * sfreq:  # the header rounds the interval (3.906 ms for 1/256 s)
        sfreq = float(round(sfreq))
    return UCITrial(path, subject, condition, int(trial), names, sfreq, data)
