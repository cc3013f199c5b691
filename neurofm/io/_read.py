"""Read one recording with MNE and make its channels canonical.

``read_raw`` turns every reader failure into a :class:`RecordingError` that
names the file and the fix. ``standardize_channels`` sets channel types,
canonical names and positions, from names and from BIDS sidecars.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from neurofm._errors import ChannelError, CorruptFileError, NeurofmError, RecordingError, UnknownFormatError
from neurofm.io._formats import (
    ANNOTATION_LABELS,
    EDF_LIKE,
    check_edf_channels,
    check_extension,
    read_edf_header,
    split_ext,
)
from neurofm.io.channels import (
    _MODALITY_PREFIX,
    ChannelTable,
    canonical_scalp_name,
    scalp_position,
    shaft_of,
    type_from_name,
)
from neurofm.io.montage import check_positions, detect_family, montage_positions, suggest_montage
from neurofm.io.sidecars import Sidecars
from neurofm.io.tabular import read_tabular
from neurofm.io.tabular import sniff as sniff_table

_BIDS_TYPES = {
    "EEG": "eeg", "SEEG": "seeg", "ECOG": "ecog", "DBS": "dbs", "EOG": "eog", "HEOG": "eog", "VEOG": "eog",
    "ECG": "ecg", "EMG": "emg", "TRIG": "stim", "MISC": "misc", "REF": "misc", "RESP": "resp",
    "GSR": "bio", "PPG": "bio", "TEMP": "misc", "AUDIO": "misc", "SYSCLOCK": "misc",
}
_EAR_DERIVATION = re.compile(r"^(A1|A2|M1|M2)-(A1|A2|M1|M2)$", re.I)


def read_raw(path: str | os.PathLike, *, preload: bool = True, verbose: bool | str | None = "error",
             sfreq: float | None = None):
    """Read a recording in any format ``mne.io.read_raw`` supports, EGI ``.raw``, ANT ``.cnt`` and consumer EEG
    tables (Muse, Mind Monitor, OpenBCI: :mod:`neurofm.io.tabular`).

    Parameters
    ----------
    path : path-like
        The recording. EDF/BDF headers are checked against the file size first.
    preload : bool
        Load the samples into memory.
    verbose : bool | str | None
        MNE verbosity.
    sfreq : float | None
        Sampling rate of a table without timestamps (Muse/OpenBCI exports); ignored for every other format.

    Returns
    -------
    raw : mne.io.BaseRaw
        Data in Volts, channel names as in the file.

    Raises
    ------
    RecordingError
        Missing, empty, truncated or damaged file; unknown format; duplicate labels.
    """
    import mne

    path = Path(path)
    if not path.exists():
        raise RecordingError("file not found.", source=path, hint="check the path (and --root) for typos.")
    if path.is_file() and path.stat().st_size == 0:
        raise CorruptFileError("the file is empty (0 bytes).", source=path,
                               hint="copy the recording again; the transfer or export did not complete.")
    _, ext = split_ext(path)
    if ext in (".csv", ".txt") and sniff_table(path):
        return read_tabular(path, sfreq=sfreq)
    if ext == ".csv":
        raise UnknownFormatError("a text table that is not a Muse (eeg-notebooks, Mind Monitor) or OpenBCI GUI export "
                                 "(no timestamp and EEG channel columns found).", source=path,
                                 hint="convert it to FIF with mne.io.RawArray (Volts, channel names, sfreq), or "
                                 "move it out of the folder.")
    ext = ext if ext == ".raw" else check_extension(path)
    if ext in EDF_LIKE:
        header = read_edf_header(path)
        if header["labels"] and all(lab in ANNOTATION_LABELS for lab in header["labels"]):
            _annotation_only_error(path)
        check_edf_channels(path, header)
    reader = {".raw": "read_raw_egi"}.get(ext)
    if ext == ".cnt" and path.read_bytes()[:4] == b"RF64":
        reader = "read_raw_ant"  # ANT eego CNT (MNE's default .cnt reader is Neuroscan's)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if reader is not None:
                raw = getattr(mne.io, reader)(path, preload=preload, verbose=verbose)
            else:
                raw = mne.io.read_raw(path, preload=preload, verbose=verbose)
        except NeurofmError:
            raise
        except MemoryError:
            raise
        except ImportError as err:  # an optional reader dependency (antio for ANT, ...)
            raise RecordingError(f"reading it needs a package that is not installed ({err}).", source=path,
                                 hint=f"pip install {getattr(err, 'name', None) or 'the package named'} and run "
                                 "again.") from None
        except Exception as err:  # any reader failure is a property of this file
            text = " ".join(str(err).split())[:300]
            raise CorruptFileError(
                f"MNE could not read it ({type(err).__name__}: {text}).", source=path,
                hint=_READ_HINTS.get(ext, "check that the file is complete and of the format its extension says; "
                                     "re-export it from the acquisition software if needed.")) from None
    for w in caught:
        if "not unique" in str(w.message):
            raise ChannelError(
                f"duplicate channel names ({' '.join(str(w.message).split())[:200]}).", source=path,
                hint="give every channel a unique name in the file; neurofm will not guess which copy is which.")
    return raw


_READ_HINTS = {
    ".mat": "MNE reads FieldTrip raw structures only; load other MATLAB files with scipy.io.loadmat, wrap the samples "
            "in mne.io.RawArray (Volts, channel names, sfreq) and save them as FIF, or register a dataset loader.",
    ".eeg": "an .eeg is either BrainVision data (copy its .vhdr/.vmrk beside it and read the .vhdr) or a Nihon "
            "Kohden recording (needs its .21e/.pnt/.log beside it).",
    ".dat": "a .dat is read with its header (.vhdr, .lay); copy the header beside it.",
}


def _annotation_only_error(path: Path) -> None:
    from neurofm.io.scan import find_psg, psg_key

    psg = find_psg(path)
    where = (f"it belongs with the PSG recording {psg.name} beside it" if psg is not None else
             f"its PSG recording ({psg_key(path)}?-PSG{split_ext(path)[1]} in Sleep-EDF naming) is not beside it")
    raise RecordingError(
        f"an annotation-only EDF (a hypnogram or event file, no signals); {where}.", source=path,
        hint="preprocess the folder that holds both (folder:PATH pairs them: the stages become window labels), "
        "or read the PSG file instead of this one.")


def standardize_channels(raw, *, sidecars: Sidecars | None = None, modality: str | None = None,
                         montage: dict | None = None) -> ChannelTable:
    """Set channel types, canonical names and positions on ``raw`` in place.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording as read.
    sidecars : Sidecars | None
        BIDS ``channels.tsv`` / ``electrodes.tsv`` found beside the file.
    modality : str | None
        ``"eeg"``, ``"seeg"`` or ``"ecog"``: what unlabelled data channels are.
        ``None`` infers it (``seeg``/``ecog`` from a BIDS ``acq-`` entity or the
        sidecars, ``eeg`` otherwise).
    montage : dict | None
        The recipe's ``montage`` step: ``name`` (an MNE built-in montage) or ``file`` (an electrodes file) gives
        positions to the channels it names; ``rename`` maps file labels to electrode names first.

    Returns
    -------
    ChannelTable
        The decisions made for every channel, including notes for the QC report.
    """
    sidecars = sidecars or Sidecars()
    original = list(raw.ch_names)
    modality = modality or sidecars.modality or "eeg"
    montage = montage or {}
    rename = {str(k).upper(): str(v) for k, v in (montage.get("rename") or {}).items()}
    from_montage = montage_positions(montage)
    notes: list[str] = list(sidecars.notes)
    names, types = [], []
    positions = np.full((len(raw.ch_names), 3), np.nan)
    electrodes = sidecars.electrodes
    reader_types = raw.get_channel_types()
    labels = [rename.get(o.strip().upper(), rename.get(_core(o).upper(), o)) for o in original]
    scalp = [_core(lab) for i, lab in enumerate(labels) if modality == "eeg" and reader_types[i] == "eeg"
             and sidecars.channel_types.get(original[i], "EEG").upper() == "EEG" and type_from_name(lab) is None]
    family, members = detect_family(scalp) or (None, [])
    members = {m.upper() for m in members}
    unplaced = []
    for i, orig in enumerate(raw.ch_names):
        label = labels[i]
        if label != orig:
            notes.append(f"{orig}: renamed {label} by the recipe's montage step")
        core = _core(label)
        reader_type = reader_types[i]
        name, kind = orig, None
        if orig in sidecars.channel_types:
            kind = _BIDS_TYPES.get(sidecars.channel_types[orig].upper(), "misc")
        elif reader_type != "eeg":
            kind = reader_type
        if kind is None:
            kind = type_from_name(label) or type_from_name(core)
        if kind is None and _EAR_DERIVATION.match(core):
            kind = "misc"
            notes.append(f"{orig}: derivation between reference electrodes, typed misc")
        if kind is None and orig in electrodes and np.isfinite(electrodes[orig]["pos"]).all():
            kind = modality if modality != "eeg" else ("seeg" if shaft_of(orig) else "ecog")
        if kind is None and modality in ("seeg", "ecog"):
            kind = modality
        if (kind is None or kind == "eeg") and core.upper() in members:
            name, kind = core, "eeg"  # a cap label (BioSemi A1 ...), never its 10-05 namesake
            if core.upper() in from_montage:
                positions[i] = from_montage[core.upper()]
        elif kind is None or kind == "eeg":
            canon = canonical_scalp_name(label)
            if canon is not None:
                name, kind = canon, "eeg"
                positions[i] = from_montage.get(canon.upper(), scalp_position(canon))
            else:
                kind, name = kind or "eeg", label
                if core.upper() in from_montage:
                    positions[i] = from_montage[core.upper()]
                elif modality == "eeg":
                    notes.append(f"{orig}: not a 10-05 electrode name, kept as eeg without position")
        if orig in electrodes:
            positions[i] = electrodes[orig]["pos"]
        elif not np.isfinite(positions[i]).all():
            loc = raw.info["chs"][i]["loc"][:3]
            if np.isfinite(loc).all() and np.abs(loc).sum() > 0:  # kept from the file (e.g. FIF digitisation)
                positions[i] = loc
        if kind in ("seeg", "ecog", "dbs") and not np.isfinite(positions[i]).all():
            notes.append(f"{orig}: {kind} contact without coordinates in electrodes.tsv")
        if kind == "eeg" and core.upper() in members and not np.isfinite(positions[i]).all():
            unplaced.append(orig)
        names.append(name)
        types.append(kind)
    source = raw.filenames[0] if raw.filenames else None
    if unplaced and family != "numbered":  # numbered labels collide with no 10-05 name: kept without position
        collide = [c for c in unplaced if canonical_scalp_name(c) is not None]
        raise ChannelError(
            f"{len(unplaced)} channel label(s) ({_span(unplaced)}) are {family} cap labels, not 10-05 electrodes"
            + (f" (placing {', '.join(collide[:4])} ... at the 10-05 sites of the same names would be wrong)"
               if collide else "") + ", and neither the file nor an electrodes.tsv gives their positions.",
            source=source,
            hint=f"give the cap's positions: add {suggest_montage(family, unplaced)} to the recipe (any of "
            "mne.channels.get_builtin_montages()), or '- montage: {file: my-cap.elc}' with your digitised "
            "positions, or an electrodes.tsv beside the recording.")
    if family:
        placed = sum(np.isfinite(positions[i]).all() for i, lab in enumerate(labels) if _core(lab).upper() in members)
        notes.append(f"{len(members)} channel(s) recognised as {family} labels, never placed at 10-05 sites; "
                     f"{placed} have positions from " + ("the recipe's montage" if from_montage else "the file or "
                                                         "electrodes.tsv"))
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ChannelError(
            f"channels map to the same canonical name: {dups}.", source=source,
            hint="rename the channels in the file (e.g. T3/T7 are the same site) or drop one copy.")
    notes += check_positions(names, types, positions, frame="head" if modality == "eeg" else "mri", source=source)
    _apply(raw, names, types, positions, coord_frame="head" if modality == "eeg" else "mri")
    atlas = {col: [str(electrodes.get(o, {}).get(col, "n/a")) for o in original] for col in sidecars.atlas_columns}
    return ChannelTable(original=original, names=names, types=types, positions=positions,
                        atlas=atlas, coord_frame="head" if modality == "eeg" else sidecars.coord_frame,
                        notes=notes)


def _core(label: str) -> str:
    return _MODALITY_PREFIX.sub("", label.strip()).strip()


def _span(labels: list[str]) -> str:
    return ", ".join(labels[:3]) + (f", …, {labels[-1]}" if len(labels) > 3 else "")


def _apply(raw, names: list[str], types: list[str], positions: np.ndarray, coord_frame: str) -> None:
    import mne

    original = list(raw.ch_names)
    mapping = {o: n for o, n in zip(original, names, strict=True) if o != n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        current = dict(zip(original, raw.get_channel_types(), strict=True))
        change = {o: t for o, t in zip(original, types, strict=True) if current[o] != t}
        if change:
            raw.set_channel_types(change, on_unit_change="ignore", verbose="error")
        if mapping:
            raw.rename_channels(mapping, verbose="error")
    frame = mne.io.constants.FIFF.FIFFV_COORD_HEAD if coord_frame == "head" else mne.io.constants.FIFF.FIFFV_COORD_MRI
    with raw.info._unlock():
        for ch, pos in zip(raw.info["chs"], positions, strict=True):
            if np.isfinite(pos).all():
                ch["loc"][:3] = pos
                ch["coord_frame"] = frame
