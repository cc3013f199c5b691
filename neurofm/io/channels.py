"""Channel names, types and positions.

Scalp EEG channels get canonical 10-05 names (``EEG Fp1`` → ``Fp1``,
``Fc5.`` → ``FC5``) and positions from MNE's ``standard_1005`` montage.
Intracranial contacts keep their names and take positions and atlas labels from
a BIDS ``electrodes.tsv``. Every decision is recorded in a per-channel table
(:class:`ChannelTable`) so that it can be reported, never applied silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# Channel types neurofm distinguishes (MNE names).
DATA_TYPES = ("eeg", "seeg", "ecog", "dbs")
ALL_TYPES = DATA_TYPES + ("eog", "ecg", "emg", "stim", "misc", "resp", "bio")

_MODALITY_PREFIX = re.compile(r"^(EEG|EOG|ECG|EKG|EMG|POL|SEEG|ECOG)[\s_:]+", re.I)
_REF_SUFFIX = re.compile(r"[-_ ]?(REF|LE|RE|AVG|AV|CAR|AR)$", re.I)
_EAR_REFS = {"A1", "A2", "M1", "M2"}
_OLD_1020 = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}  # same sites, 10-10 names

_TYPE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ecg", re.compile(r"(^|[\s_\-])(ECG|EKG)|^(ECG|EKG)", re.I)),
    ("eog", re.compile(r"(^|[\s_\-])(EOG|HEOG|VEOG|LOC|ROC)\b|^EOG", re.I)),
    ("emg", re.compile(r"(^|[\s_\-])(EMG|CHIN)|^EMG", re.I)),
    ("stim", re.compile(r"^(STI\s?\d*|STI\d{3}|STATUS|TRIG(GER)?|EVENTS?(/MARKERS)?|MARK\d*|DI\d*)$", re.I)),
    ("resp", re.compile(r"^(RESP|THOR|ABDO|AIRFLOW|NASAL)", re.I)),
    ("misc", re.compile(r"^(DC\d+|ACC\d*|SPO2|PULSE|PHOTIC|PLETH|BIP\d+|X\d+|\$.*|MOV_.*|POS\d*|LIGHT|SOUND|BATT)$", re.I)),
)


@lru_cache(maxsize=1)
def _standard_positions() -> dict[str, tuple[str, np.ndarray]]:
    """Upper-case name → (canonical name, head-frame position in metres) for the 10-05 system."""
    import warnings

    import mne

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # 'standard_1005' is being renamed 'colin27_1005'
        try:
            montage = mne.channels.make_standard_montage("colin27_1005")
        except ValueError:
            montage = mne.channels.make_standard_montage("standard_1005")
    # Let MNE transform the template into the head frame (fiducial-aligned), as set_montage would.
    info = mne.create_info(montage.ch_names, 1000.0, "eeg")
    info.set_montage(montage)
    return {ch["ch_name"].upper(): (ch["ch_name"], ch["loc"][:3].copy()) for ch in info["chs"]}


def canonical_scalp_name(name: str) -> str | None:
    """Return the canonical 10-05 name for a scalp channel label, or ``None``.

    Strips modality prefixes (``EEG ``), trailing dots (EEGMMIDB), reference
    suffixes (``-Ref``, ``-LE``) and an ear/mastoid reference (``F4-A1``) and
    fixes capitalisation (``Fc5`` → ``FC5``). A derivation between two ear or
    mastoid electrodes (``A2-A1``) and bipolar pairs are not single electrodes
    and return ``None``.
    """
    table = _standard_positions()
    s = _MODALITY_PREFIX.sub("", name.strip()).strip().rstrip(".").strip()
    s = _REF_SUFFIX.sub("", s).strip()
    if "-" in s:
        left, _, right = s.partition("-")
        if right.upper() in _EAR_REFS and left.upper() not in _EAR_REFS and left.upper() in table:
            s = left
        else:
            return None
    s = _OLD_1020.get(s.upper(), s)
    hit = table.get(s.upper())
    return hit[0] if hit else None


def scalp_position(canonical: str) -> np.ndarray | None:
    hit = _standard_positions().get(canonical.upper())
    return None if hit is None else hit[1].copy()


def type_from_name(name: str) -> str | None:
    """Guess a non-EEG channel type from its label; ``None`` when the label says nothing."""
    for kind, pattern in _TYPE_PATTERNS:
        if pattern.search(name.strip()):
            return kind
    return None


_SHAFT = re.compile(r"^(.*?\D)(\d+)$")


def shaft_of(name: str) -> tuple[str, int] | None:
    """Split an intracranial contact label into (shaft, number): ``"L'12"`` → ``("L'", 12)``."""
    m = _SHAFT.match(name.strip())
    return (m.group(1), int(m.group(2))) if m else None


@dataclass
class ChannelTable:
    """Per-channel decisions: canonical name, type, position and atlas labels.

    ``positions`` are in metres (head or MNI/scanner space), ``NaN`` where unknown.
    ``notes`` explains every non-trivial decision and ends up in the QC report.
    """

    original: list[str]
    names: list[str]
    types: list[str]
    positions: np.ndarray
    atlas: dict[str, list[str]] = field(default_factory=dict)
    coord_frame: str = "head"
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def has_position(self) -> np.ndarray:
        return np.isfinite(self.positions).all(axis=1)

    def to_records(self) -> list[dict]:
        out = []
        for i, name in enumerate(self.names):
            rec = {"name": name, "original": self.original[i], "type": self.types[i],
                   "pos": None if not np.isfinite(self.positions[i]).all() else [round(float(v), 6) for v in self.positions[i]]}
            for atlas, labels in self.atlas.items():
                rec[atlas] = labels[i]
            out.append(rec)
        return out

    def subset(self, names: list[str]) -> ChannelTable:
        idx = [self.names.index(n) for n in names]
        return ChannelTable(
            original=[self.original[i] for i in idx], names=list(names), types=[self.types[i] for i in idx],
            positions=self.positions[idx], atlas={k: [v[i] for i in idx] for k, v in self.atlas.items()},
            coord_frame=self.coord_frame, notes=list(self.notes))
