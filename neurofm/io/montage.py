"""Electrode positions you can trust: montage families whose labels collide with 10-05 names, montages
given by the recipe, and plausibility checks on every position.

BioSemi caps label their electrodes ``A1…A32, B1…B32, …`` and EGI nets ``E1…E256``: ``A1``, ``C3`` or
``F7`` are then cap sites, not the 10-05 electrodes of the same name, and placing them at the 10-05
template would be physically wrong. Such labels get their positions from the file, a BIDS
``electrodes.tsv`` or the recipe's ``montage`` step, or the recording is refused with the fix.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from neurofm._errors import ChannelError, ConfigError

_LETTER_NUM = re.compile(r"^([A-H])(\d{1,2})$")
_EGI = re.compile(r"^E(\d{1,3})$")
_NUMBERED = re.compile(r"^\d{1,3}$")

# Head-frame plausibility (metres from the head centre) for scalp positions; intracranial positions must
# lie within MAX_IEEG_M of the origin of their (MNI/scanner) frame.
SCALP_RANGE_M = (0.02, 0.30)
MAX_IEEG_M = 0.30
MIN_SCALP_SPREAD_M = 0.02
DUPLICATE_M = 1e-4


def detect_family(labels: list[str]) -> tuple[str, list[str]] | None:
    """Recognise a montage family whose labels are not 10-05 names even where they look like them.

    Parameters
    ----------
    labels : list of str
        Channel labels without modality prefix (``EEG A1`` → ``A1``), of the channels that would be scalp EEG.

    Returns
    -------
    (family, members) | None
        ``"BioSemi"`` (``A1…H32``, recognised by a label no 10-05 electrode has: ``B*``, ``D*``, ``G*``,
        ``H*`` or ``A3``…``A32``), ``"EGI"`` (8 or more ``E<n>``) or ``"numbered"`` (4 or more ``1…N``),
        with the labels that belong to it; ``None`` for anything else.
    """
    letter_num = [(lab, m.group(1), int(m.group(2))) for lab in labels if (m := _LETTER_NUM.match(lab.upper()))]
    if any(letter in "BDGH" or (letter == "A" and num > 2) for _, letter, num in letter_num):
        return "BioSemi", [lab for lab, _, num in letter_num if 1 <= num <= 32]
    egi = [lab for lab in labels if _EGI.match(lab.upper())]
    if len(egi) >= 8:
        return "EGI", egi
    numbered = [lab for lab in labels if _NUMBERED.match(lab)]
    if len(numbered) >= 4:
        return "numbered", numbered
    return None


def suggest_montage(family: str, members: list[str]) -> str:
    """A recipe line that would give ``members`` positions, for the error hint."""
    if family == "BioSemi":
        letters = {m[0].upper() for m in members}
        n = next(k for k, top in ((128, "D"), (160, "E"), (256, "H")) if max(letters) <= top)
        return f"'- montage: {{name: biosemi{n}}}'"
    if family == "EGI":
        top = max(int(m[1:]) for m in members)
        n = next((k for k in (32, 64, 128, 256) if top <= k), 256)
        return "'- montage: {name: " + {32: "GSN-HydroCel-32", 64: "GSN-HydroCel-65_1.0", 128: "GSN-HydroCel-129",
                                         256: "GSN-HydroCel-257"}[n] + "}'"
    return "'- montage: {file: my-cap.elc, rename: {\"1\": Fp1, ...}}'"


@lru_cache(maxsize=8)
def _montage_positions(name: str | None, file: str | None) -> dict[str, np.ndarray]:
    import warnings

    import mne

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if file is not None:
                montage = mne.channels.read_custom_montage(file)
            else:
                montage = mne.channels.make_standard_montage(name)
            info = mne.create_info(montage.ch_names, 1000.0, "eeg")
            info.set_montage(montage, on_missing="ignore")
    except Exception as err:  # unreadable electrodes file, unknown name
        what = file if file is not None else name
        raise ConfigError(f"montage '{what}' cannot be read ({type(err).__name__}: {' '.join(str(err).split())[:200]}).",
                          source=what, hint="give a built-in name (mne.channels.get_builtin_montages()) or an "
                          "electrodes file mne.channels.read_custom_montage reads (.elc, .sfp, .loc, .bvef, .csd, ...).") from None
    return {ch["ch_name"].upper(): ch["loc"][:3].copy() for ch in info["chs"] if np.isfinite(ch["loc"][:3]).all()}


def montage_positions(spec: dict) -> dict[str, np.ndarray]:
    """Upper-case label → head-frame position (m) of the recipe's montage (``name`` or ``file``)."""
    if not spec.get("name") and not spec.get("file"):
        return {}
    file = spec.get("file")
    if file is not None and not Path(file).is_file():
        raise ConfigError("montage file not found.", source=file, hint="check the path in the recipe's montage step.")
    return _montage_positions(spec.get("name"), None if file is None else str(Path(file).resolve()))


def check_positions(names: list[str], types: list[str], positions: np.ndarray, *, frame: str, source) -> list[str]:
    """Refuse implausible positions of data channels, naming the channels; return notes on the rest.

    Checks the distance from the head centre (scalp: 2–30 cm; intracranial: within 30 cm of the origin),
    the spread of a scalp montage (at least 2 cm) and duplicates (two channels within 0.1 mm: refused for
    scalp electrodes, noted for intracranial contacts).
    """
    idx = [i for i, t in enumerate(types) if t in ("eeg", "seeg", "ecog", "dbs") and np.isfinite(positions[i]).all()]
    if not idx:
        return []
    pos = positions[idx]
    dist = np.linalg.norm(pos, axis=1)
    scalp = [frame == "head" and types[i] == "eeg" for i in idx]
    ranges = [SCALP_RANGE_M if sc else (0.0, MAX_IEEG_M) for sc in scalp]
    bad = [(names[i], d, r) for i, d, r in zip(idx, dist, ranges, strict=True) if not r[0] <= d <= r[1]]
    if bad:
        shown = ", ".join(f"{n} at {d:.3g} m" for n, d, _ in bad[:6]) + (" ..." if len(bad) > 6 else "")
        lo, hi = bad[0][2]
        unit = " (millimetres or centimetres declared as metres?)" if max(d for _, d, _ in bad) > hi else ""
        raise ChannelError(
            f"{len(bad)} channel position(s) are implausible, {lo * 100:g}–{hi * 100:g} cm from the head centre "
            f"expected: {shown}{unit}.", source=source,
            hint="fix the positions in the file or its electrodes.tsv (units, coordinate frame), or give the "
            "cap's positions with a montage step in the recipe ('- montage: {name: ...}' or '{file: ...}').")
    head = pos[np.array(scalp)]
    if len(head) >= 4:
        spread = float(np.max(np.linalg.norm(head[:, None] - head[None], axis=-1)))
        if spread < MIN_SCALP_SPREAD_M:
            raise ChannelError(
                f"all {len(head)} scalp positions lie within {spread * 1000:.3g} mm of each other; a cap spans "
                "about 20 cm.", source=source,
                hint="fix the positions in the file or its electrodes.tsv (units?), or give a montage step.")
    dups = []
    for a in range(len(idx)):
        near = np.flatnonzero(np.linalg.norm(pos[a + 1:] - pos[a], axis=1) < DUPLICATE_M)
        dups += [(idx[a], idx[a + 1 + b]) for b in near]
    scalp_dups = [f"{names[a]}={names[b]}" for a, b in dups if types[a] == types[b] == "eeg" and frame == "head"]
    if scalp_dups:
        raise ChannelError(
            f"scalp channels share one position: {', '.join(scalp_dups[:8])}{' ...' if len(scalp_dups) > 8 else ''}.",
            source=source, hint="each electrode needs its own position: fix the file or its electrodes.tsv, or "
            "drop the copies.")
    # Two intracranial channels at one contact (e.g. a DC copy of a contact) are possible: reported, not refused.
    return [f"{names[a]} and {names[b]} share one position" for a, b in dups if f"{names[a]}={names[b]}" not in scalp_dups]
