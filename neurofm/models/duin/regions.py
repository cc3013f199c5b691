"""Regions from data: group intracranial contacts by atlas label, by shaft, or by a user selection.

Du-IN fuses the contacts of a brain region into a few hidden channels. The reference hard-codes each
subject's region; here the grouping comes from the recording's own ``electrodes.tsv`` atlas columns
(Destrieux, Desikan-Killiany...), from shaft names (``L'12`` → ``L'``), or from a regular expression
on atlas labels or contact names. Nothing here looks at downstream labels. The resolved grouping is
recorded in the model's signal contract (``contract.regions``).

Bipolar channels (``F'1-F'2``) take the shaft of their first contact and the first informative atlas
label of the pair (the store joins a pair's labels as ``a/b``).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from neurofm._errors import ConfigError, ContractError, suggest
from neurofm.io.channels import shaft_of

BY = ("none", "atlas", "shaft", "selection")
UNKNOWN = "Unknown"
_UNINFORMATIVE = re.compile(r"^(|n/?a|unknown|none|nan|-)$", re.I)

# Named selections (regular expressions on Destrieux and Desikan-Killiany labels).
PRESETS: dict[str, str] = {
    # Sensorimotor cortex: pre/postcentral gyri and sulci, subcentral gyrus, central sulcus. Atlas labels do not
    # split ventral from dorsal; keep the ventral part by naming its contacts in your own regex.
    "sensorimotor": r"precentral|postcentral|subcentral|S_central|G_and_S_subcentral",
    # Superior temporal gyrus and sulcus, transverse temporal (Heschl's) gyrus, planum temporale.
    "superior-temporal": r"superiortemporal|transversetemporal|bankssts|G_temp_sup|S_temporal_sup|"
                         r"S_temporal_transverse|Plan_tempo|Lat_Fis-post",
    # Inferior frontal gyrus (Broca's area): opercular, triangular and orbital parts.
    "inferior-frontal": r"parsopercularis|parstriangularis|parsorbitalis|G_front_inf",
}


@dataclass
class RegionSpec:
    """How contacts are grouped into regions.

    Parameters
    ----------
    by : str
        ``"none"`` (all selected contacts form one region), ``"atlas"`` (one region per atlas label),
        ``"shaft"`` (one region per electrode shaft) or ``"selection"`` (the contacts matching
        ``select`` form one region).
    atlas : str | None
        Atlas column of ``electrodes.tsv`` (e.g. ``"destrieux"``, ``"desikan-killiany"``). ``None``
        picks a Destrieux column if present, else Desikan-Killiany, else the first atlas column.
    select : str | None
        Keep only contacts whose atlas label or name matches this regular expression (case-insensitive
        search), or a preset name (``sensorimotor``, ``superior-temporal``, ``inferior-frontal``).
    drop_unknown : bool
        With ``by="atlas"``, leave out contacts without an informative label (``Unknown``, ``n/a``)
        instead of grouping them into an ``Unknown`` region.
    min_contacts : int
        Regions with fewer contacts are merged into ``"other"``.
    """

    by: str = "none"
    atlas: str | None = None
    select: str | None = None
    drop_unknown: bool = False
    min_contacts: int = 1

    def __post_init__(self) -> None:
        if self.by not in BY:
            raise ConfigError(f"regions.by '{self.by}' is not one of {BY}.{suggest(self.by, BY)}",
                              hint="group contacts by 'atlas' labels, 'shaft' names, a regex 'selection' or 'none'.")
        if self.by == "selection" and not self.select:
            raise ConfigError("regions.by 'selection' needs regions.select (a regex or preset name).",
                              hint=f"e.g. select: sensorimotor (presets: {', '.join(PRESETS)}).")
        if self.select:
            try:
                re.compile(self.pattern)
            except re.error as err:
                raise ConfigError(f"regions.select '{self.select}' is not a valid regular expression ({err}).",
                                  hint="escape special characters, e.g. \"S_temporal_sup|G_temp_sup\".") from None

    @property
    def pattern(self) -> str | None:
        if not self.select:
            return None
        return PRESETS.get(self.select, self.select)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pick_atlas(columns: list[str], wanted: str | None = None, *, source: str | None = None) -> str | None:
    """The atlas column to use among ``columns`` (``None`` when there is none and none is wanted)."""
    if wanted is not None:
        lower = {c.lower(): c for c in columns}
        aliases = {"destrieux": ("destrieux", "destriuex"), "dk": ("desikan-killiany", "desikan_killiany", "dk")}
        for cand in (wanted, *aliases.get(wanted.lower(), ())):
            if cand.lower() in lower:
                return lower[cand.lower()]
        raise ContractError(f"atlas column '{wanted}' not found; the contacts have {columns or 'no atlas columns'}."
                            f"{suggest(wanted, columns)}", source=source,
                            hint="set regions.atlas to one of those columns, or group by 'shaft' instead.")
    for key in ("destri", "desikan", "aparc", "aseg", "atlas"):
        for c in columns:
            if key in c.lower():
                return c
    return columns[0] if columns else None


def contact_label(record: dict[str, Any], atlas: str | None) -> str:
    """The atlas label of a contact record; for a bipolar pair ``a/b``, the first informative one."""
    if atlas is None:
        return UNKNOWN
    raw = str(record.get(atlas) or "")
    for part in raw.split("/"):
        part = part.strip()
        if not _UNINFORMATIVE.match(part):
            return part
    return UNKNOWN


def contact_shaft(name: str) -> str:
    """Shaft of a contact (``"L'12"`` → ``"L'"``); a bipolar pair takes its first contact's shaft."""
    first = name.split("-")[0].strip()
    hit = shaft_of(first)
    return hit[0] if hit else first


def _atlas_columns(records: list[dict[str, Any]]) -> list[str]:
    skip = {"name", "original", "type", "pos", "x", "y", "z", "size", "impedance", "group", "hemisphere", "manufacturer"}
    cols: list[str] = []
    for rec in records:
        for k in rec:
            if k not in skip and k not in cols:
                cols.append(k)
    return cols


def group_contacts(records: list[dict[str, Any]], spec: RegionSpec, *, source: str | None = None) -> dict[str, list[str]]:
    """Group contact records (``{"name": ..., <atlas column>: label}``) into ``{region: [names]}``.

    Order of contacts inside a region follows ``records``; regions are ordered by first appearance.
    """
    atlas = None
    if spec.by == "atlas" or spec.select or spec.atlas:
        atlas = pick_atlas(_atlas_columns(records), spec.atlas, source=source)
        if spec.by == "atlas" and atlas is None:
            raise ContractError("regions.by 'atlas' but the contacts carry no atlas labels.", source=source,
                                hint="give electrodes.tsv with an atlas column (e.g. destrieux), or use by: shaft.")
    pattern = re.compile(spec.pattern, re.I) if spec.pattern else None
    regions: dict[str, list[str]] = {}
    for rec in records:
        name = str(rec["name"])
        label = contact_label(rec, atlas)
        if pattern is not None and not (pattern.search(label) or pattern.search(name)):
            continue
        if spec.by == "atlas":
            if label == UNKNOWN and spec.drop_unknown:
                continue
            region = label
        elif spec.by == "shaft":
            region = contact_shaft(name)
        elif spec.by == "selection":
            region = spec.select or "selection"
        else:
            region = "all"
        regions.setdefault(region, []).append(name)
    if not regions:
        raise ContractError(f"no contact is left after the region selection {spec.to_dict()}.", source=source,
                            hint="loosen regions.select, set drop_unknown: false, or use by: shaft / none.")
    if spec.min_contacts > 1:
        small = [r for r, names in regions.items() if len(names) < spec.min_contacts]
        if small:
            other = [n for r in small for n in regions.pop(r)]
            regions.setdefault("other", []).extend(other)
    return regions


def read_electrodes_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a BIDS ``electrodes.tsv`` (``name`` plus every other column, as text)."""
    path = Path(path)
    if not path.is_file():
        raise ContractError("electrodes.tsv not found.", source=path, hint="pass the *_electrodes.tsv of the recording.")
    with open(path, newline="", encoding="utf-8-sig") as fid:
        rows = list(csv.DictReader(fid, delimiter="\t"))
    if not rows or "name" not in rows[0]:
        raise ContractError("electrodes.tsv has no 'name' column or no rows.", source=path,
                            hint="BIDS electrodes.tsv starts with the columns name, x, y, z.")
    return rows


def regions_from_electrodes(path: str | os.PathLike, spec: RegionSpec | None = None, *,
                            channels: list[str] | None = None) -> dict[str, list[str]]:
    """Regions of the contacts listed in ``electrodes.tsv`` (restricted to ``channels`` if given).

    Rows without coordinates and without any atlas label (``DC01``, ``EKG1``...) are not contacts and
    are left out unless named in ``channels``.
    """
    spec = spec or RegionSpec()
    rows = read_electrodes_tsv(path)
    if channels is not None:
        keep = set(channels)
        rows = [r for r in rows if r["name"] in keep]
    else:
        def is_contact(r: dict[str, str]) -> bool:
            coords = [r.get(k, "n/a") for k in ("x", "y", "z")]
            has_xyz = all(c not in ("", "n/a", "nan") for c in coords)
            return has_xyz
        rows = [r for r in rows if is_contact(r)]
    return group_contacts(rows, spec, source=str(path))


def subject_channels(manifest: dict[str, Any], spec: RegionSpec, *, key_of=None
                     ) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """Per input key (subject), its ordered channel list and its regions, from a store manifest.

    ``key_of(record)`` maps a manifest recording to its input-layer key (default: its subject). A key's
    channels are the union over its recordings, in first-seen order.
    """
    key_of = key_of or (lambda rec: str(rec["subject"]))
    records: dict[str, list[dict[str, Any]]] = {}
    for rec in manifest.get("recordings", []):
        key = key_of(rec)
        seen = {c["name"] for c in records.setdefault(key, [])}
        records[key].extend(c for c in rec["channels"] if c["name"] not in seen)
    subjects, regions = {}, {}
    for key, chans in records.items():
        groups = group_contacts(chans, spec, source=f"subject {key}")
        order = [c["name"] for c in chans]
        names = sorted({n for g in groups.values() for n in g}, key=order.index)
        subjects[key], regions[key] = names, groups
    return subjects, regions
