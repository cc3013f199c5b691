"""BIDS sidecars found beside a recording: channels.tsv, electrodes.tsv, coordsystem.json."""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_ENTITY = re.compile(r"(sub|ses|acq|task|run|space)-([A-Za-z0-9]+)")
_ATLAS_HINTS = ("destrieux", "destriuex", "desikan", "aseg", "atlas", "label", "region", "anat")


def _entities(name: str) -> dict[str, str]:
    return dict(_ENTITY.findall(name))


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fid:
        return list(csv.DictReader(fid, delimiter="\t"))


@dataclass
class Sidecars:
    """What the BIDS sidecars of one recording say.

    ``electrodes`` maps a contact name to ``{"pos": xyz in metres, <atlas column>: label}``.
    """

    channel_types: dict[str, str] = field(default_factory=dict)
    channel_status: dict[str, str] = field(default_factory=dict)
    electrodes: dict[str, dict] = field(default_factory=dict)
    atlas_columns: list[str] = field(default_factory=list)
    coord_frame: str = "unknown"
    modality: str | None = None
    line_freq: float | None = None  # PowerLineFrequency of the recording's *_eeg.json / *_ieeg.json
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def find(cls, recording: str | os.PathLike) -> Sidecars:
        """Collect the sidecars whose BIDS entities match ``recording``'s (same folder)."""
        recording = Path(recording)
        ents = _entities(recording.name)
        out = cls()
        acq = ents.get("acq", "").lower()
        if acq in ("seeg", "ecog"):
            out.modality = acq
        if "sub" not in ents:
            return out

        def matches(p: Path) -> bool:
            other = _entities(p.name)
            return all(other.get(k) == v for k, v in ents.items() if k in other and k != "space")

        folder = recording.parent
        for p in sorted(folder.glob("*_*eeg.json")):
            if matches(p) and p.name.rsplit("_", 1)[-1] in ("eeg.json", "ieeg.json"):
                try:
                    value = json.loads(p.read_text()).get("PowerLineFrequency")
                    out.line_freq = float(value) if value not in (None, "n/a") else None
                except (OSError, ValueError, TypeError):
                    pass
                out.files.append(str(p))
        for p in sorted(folder.glob("*_channels.tsv")):
            if matches(p):
                out.files.append(str(p))
                for row in _read_tsv(p):
                    out.channel_types[row["name"]] = row.get("type", "MISC")
                    out.channel_status[row["name"]] = row.get("status", "good")
        for p in sorted(folder.glob("*_electrodes.tsv")):
            if matches(p):
                out.files.append(str(p))
                out._read_electrodes(p)
                break
        if out.modality is None and out.channel_types:
            kinds = {t.upper() for t in out.channel_types.values()}
            out.modality = "seeg" if "SEEG" in kinds else "ecog" if "ECOG" in kinds else None
        return out

    def _read_electrodes(self, path: Path) -> None:
        rows = _read_tsv(path)
        scale = self._units_scale(path, rows)
        if rows:
            self.atlas_columns = [c for c in rows[0] if any(h in c.lower() for h in _ATLAS_HINTS)]
        for row in rows:
            try:
                xyz = np.array([float(row[k]) for k in ("x", "y", "z")]) * scale
            except (KeyError, ValueError):
                xyz = np.full(3, np.nan)
            entry = {"pos": xyz}
            for col in self.atlas_columns:
                entry[col] = row.get(col, "n/a")
            self.electrodes[row["name"]] = entry

    def _units_scale(self, electrodes: Path, rows: list[dict[str, str]]) -> float:
        """Metres per coordinate unit, from coordsystem.json or, failing that, from magnitudes."""
        ents = _entities(electrodes.name)
        for p in sorted(electrodes.parent.glob("*_coordsystem.json")):
            other = _entities(p.name)
            if all(other.get(k) == v for k, v in ents.items() if k in other):
                meta = json.loads(p.read_text())
                self.files.append(str(p))
                self.coord_frame = str(meta.get("iEEGCoordinateSystem", meta.get("EEGCoordinateSystem", "unknown")))
                unit = str(meta.get("iEEGCoordinateUnits", meta.get("EEGCoordinateUnits", ""))).lower()
                if unit in ("m", "cm", "mm"):
                    declared = {"m": 1.0, "cm": 1e-2, "mm": 1e-3}[unit]
                    break
        else:
            declared = None
        values = [abs(float(r[k])) for r in rows for k in ("x", "y", "z") if r.get(k) not in (None, "n/a", "")]
        guessed = 1e-3 if values and max(values) > 1.0 else 1.0
        if declared is None or not values:
            return guessed if declared is None else declared
        extent = max(values) * declared
        if not 0.005 <= extent <= 0.5:  # a head/brain spans centimetres: the declared unit cannot be right
            self.notes.append(f"{Path(p).name} declares coordinates in {unit}, but the largest is {max(values):g} "
                              f"({extent:g} m); read as {'mm' if guessed == 1e-3 else 'm'} from their magnitude")
            return guessed
        return declared
