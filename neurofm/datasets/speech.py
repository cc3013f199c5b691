"""Speech-decoding intracranial datasets: the Du-IN release and BIDS iEEG with word onsets.

Two layouts are read (no such recording is in ``../shared/data``; the tests write small files in
exactly these layouts):

**Du-IN release** (Zheng et al. 2024, per-subject pickled 3-s epochs with word labels)::

    ROOT/<subject>/word-recitation/<run>/dataset.<reference>.<variant>/data   pickled list of epochs
    ROOT/<subject>/word-recitation/<run>/dataset.<reference>.<variant>/info   pickled dict (ch_names, ...)

Each epoch is a dict with the samples under ``data_s`` (or ``data``/``X``), shaped (n_chans, n_times)
(or (n_times, n_chans)), and the word under ``name`` (or ``label``/``word``). ``info`` holds
``ch_names`` and, if present, ``sfreq``. The pickles are read with :func:`restricted_load`, which
admits numpy arrays and plain containers only, never arbitrary objects.

**BIDS iEEG with word onsets in events.tsv** (SingleWordProductionDutch-iBIDS layout)::

    ROOT/dataset_description.json, participants.tsv
    ROOT/sub-XX/ieeg/sub-XX_task-wordProduction_ieeg.nwb        (or .edf/.vhdr/... read by MNE)
    ROOT/sub-XX/ieeg/sub-XX_task-wordProduction_channels.tsv
    ROOT/sub-XX/ieeg/sub-XX_task-wordProduction_events.tsv      onset, duration, word (or trial_type/value)
    ROOT/sub-XX/ieeg/sub-XX_task-wordProduction_space-ACPC_electrodes.tsv, *_coordsystem.json

NWB files are read with h5py (``acquisition/iEEG/data``, (n_samples, n_chans), rate from
``starting_time``'s ``rate`` attribute, scaled by the ``conversion`` attribute and ``unit``); channel
names come from ``channels.tsv`` (same order as the data columns).

Both datasets give MNE Raw recordings in Volts with one labelled event per word, so they go through
``neurofm preprocess`` like any other dataset: the Du-IN epochs are laid end to end (fixed 3-s windows
give them back, see ``pipelines/duin-release.yaml``); for BIDS, :func:`word_recipe` builds an
event-locked recipe over the recording's words.
"""

from __future__ import annotations

import csv
import io
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import CorruptFileError, DatasetRootError, EventsError, RecordingError
from neurofm.datasets._base import Dataset, Event, Recording, RecordingRef

# ---------------------------------------------------------------------------------------------- safe unpickling
# (module, name) pairs a pickle of plain data may reference: numpy array/dtype/scalar reconstruction and
# plain containers. Anything else (os.system, builtins.eval, a user class...) is refused before it exists.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "bytearray"),
    ("builtins", "slice"), ("builtins", "range"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
}
# numpy dtype classes (numpy.dtypes.Float32DType...) appear in pickles written by numpy >= 1.25.
_DTYPE_CLASS = re.compile(r"^(Bool|U?Int(8|16|32|64)|Float(16|32|64)|LongDouble|Complex(64|128)|CLongDouble|Str|Bytes|"
                          r"Void|Object|DateTime64|TimeDelta64|U?Long|U?LongLong|U?Short|U?Byte|Half|Double|"
                          r"Single|CDouble|CFloat)DType$")
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
# Plain dict subclasses some releases pickle (Du-IN's ``utils.DotDict``): loaded as plain dicts.
_DICT_LIKE = re.compile(r"^(utils(\.\w+)*)\.?$|^utils$")


class _PlainDict(dict):
    """Stand-in for a pickled ``dict`` subclass: only its items are kept."""


def _newobj(cls, *args):
    if cls is _PlainDict:
        return _PlainDict()
    raise pickle.UnpicklingError(f"refused to construct {cls!r}")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits numpy arrays and plain containers only."""

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)  # protocol < 3 pickles name builtins as Python 2 did
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "numpy.dtypes" and _DTYPE_CLASS.match(name):
            return super().find_class(module, name)
        if module == "copyreg" and name == "__newobj__":
            return _newobj
        if name == "DotDict" and _DICT_LIKE.match(module):
            return _PlainDict
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not plain data")


def restricted_load(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` admitting only numpy arrays and plain containers (dict, list, tuple, str, numbers).

    Raises :class:`CorruptFileError` (with a HINT) for anything else, before any object is built.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CorruptFileError(f"cannot read the file ({err}).", source=path, hint="check the path.") from None
    try:
        obj = RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        raise CorruptFileError(f"refused to unpickle: {err} (only numpy arrays and plain containers are loaded).",
                               source=path, hint="these files must hold plain data (lists/dicts of numpy arrays, "
                               "strings, numbers); convert them with a trusted script, never load untrusted pickles "
                               "with pickle.load.") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise CorruptFileError(f"not a readable pickle ({type(err).__name__}: {err}).", source=path,
                               hint="the file is truncated or not a pickle; copy it again.") from None
    return _plain(obj)


def _plain(obj: Any) -> Any:
    if isinstance(obj, _PlainDict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------- epochs
@dataclass
class WordEpochs:
    """Word-locked epochs of one run: ``x`` (n_epochs, n_chans, n_times) in µV with one word each."""

    x: np.ndarray
    words: list[str]
    ch_names: list[str]
    sfreq: float
    subject: str
    run: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


_DATA_KEYS = ("data_s", "data", "X", "x")
_WORD_KEYS = ("name", "label", "word")


def read_duin_run(folder: str | os.PathLike, *, sfreq: float = 1000.0, units: str = "uV") -> WordEpochs:
    """Read one Du-IN release run folder (``dataset.*/`` holding ``data`` and ``info``)."""
    folder = Path(folder)
    data_path, info_path = folder / "data", folder / "info"
    for p in (data_path, info_path):
        if not p.is_file():
            raise DatasetRootError(f"missing '{p.name}' in a Du-IN dataset folder.", source=folder,
                                   hint="each <subject>/word-recitation/<run>/dataset.*/ folder holds 'data' and 'info'.")
    epochs, info = restricted_load(data_path), restricted_load(info_path)
    if not isinstance(info, dict) or "ch_names" not in info:
        raise CorruptFileError("'info' is not a dict with 'ch_names'.", source=info_path,
                               hint="the Du-IN 'info' pickle maps 'ch_names' to the list of channel names.")
    if not isinstance(epochs, (list, tuple)) or not epochs:
        raise CorruptFileError("'data' is not a non-empty list of epochs.", source=data_path,
                               hint="the Du-IN 'data' pickle is a list of dicts with 'data_s' and 'name'.")
    ch_names = [str(c) for c in info["ch_names"]]
    sfreq = float(info.get("sfreq", sfreq))
    xs, words = [], []
    for k, ep in enumerate(epochs):
        if not isinstance(ep, dict):
            raise CorruptFileError(f"epoch {k} is a {type(ep).__name__}, not a dict.", source=data_path,
                                   hint="each epoch is a dict with the samples ('data_s') and the word ('name').")
        key = next((c for c in _DATA_KEYS if c in ep), None)
        word = next((c for c in _WORD_KEYS if c in ep), None)
        if key is None or word is None:
            raise CorruptFileError(f"epoch {k} has keys {sorted(ep)[:6]}: no samples ({'/'.join(_DATA_KEYS)}) or no "
                                   f"word ({'/'.join(_WORD_KEYS)}).", source=data_path,
                                   hint="use the release's dataset.*/data files unchanged.")
        x = np.asarray(ep[key], dtype=np.float64)
        if x.ndim != 2 or len(ch_names) not in x.shape:
            raise CorruptFileError(f"epoch {k} has shape {x.shape}, but info lists {len(ch_names)} channels.",
                                   source=data_path, hint="data and info must come from the same run folder.")
        xs.append(x if x.shape[0] == len(ch_names) else x.T)
        words.append(str(ep[word]))
    lengths = {x.shape[1] for x in xs}
    if len(lengths) != 1:
        raise CorruptFileError(f"epochs of different lengths {sorted(lengths)}.", source=data_path,
                               hint="the release's epochs are all 3 s; check the file.")
    scale = {"uV": 1.0, "V": 1e6, "mV": 1e3}.get(units)
    if scale is None:
        raise RecordingError(f"units '{units}' not understood.", source=folder, hint="use 'uV', 'mV' or 'V'.")
    x = np.stack(xs) * scale
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=(0, 2)).sum())
        x = np.nan_to_num(x)
        note = f"{bad} channel(s) held NaN/Inf samples, set to 0"
    else:
        note = ""
    return WordEpochs(x=x.astype(np.float32), words=words, ch_names=ch_names, sfreq=sfreq, subject="",
                      source=str(folder), meta=dict(note=note) if note else {})


class DuINRelease(Dataset):
    """Du-IN release: ``ROOT/<subject>/word-recitation/<run>/dataset.<ref>.<variant>/{data,info}``.

    Parameters
    ----------
    root : path-like
        The release folder holding one folder per subject.
    variant : str
        Glob for the dataset folder of a run (default ``dataset.bipolar.default.aligned``, else any
        ``dataset.*``).
    units : str
        Units of the samples in the pickles (``uV`` by default).
    """

    name = "duin-release"
    description = "Du-IN release: per-subject pickled 3-s word epochs (61 words), sEEG at 1000 Hz"
    licence = "see the release"
    subdir = "ieeg/duin-release"
    modality = "seeg"
    sfreq = 1000.0

    def __init__(self, root: str | os.PathLike | None = None, variant: str = "dataset.bipolar.default.aligned",
                 units: str = "uV"):
        super().__init__(root)
        self.variant, self.units = variant, units

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        refs = []
        for run in sorted(self.root.glob("*/word-recitation*/*")):
            if not run.is_dir():
                continue
            folders = sorted(run.glob(self.variant)) or sorted(run.glob("dataset.*"))
            if not folders:
                continue
            subject = run.parent.parent.name
            rid = f"{subject}_{run.parent.name}_{run.name}".replace(" ", "-")
            refs.append(RecordingRef(id=rid, path=folders[0] / "data", subject=subject, run=run.name,
                                     meta=dict(folder=str(folders[0]))))
        if not refs:
            raise self._empty(f"<subject>/word-recitation/<run>/{self.variant}/data")
        return refs

    def epochs(self, ref: RecordingRef) -> WordEpochs:
        ep = read_duin_run(ref.meta["folder"], sfreq=self.sfreq or 1000.0, units=self.units)
        ep.subject, ep.run = ref.subject, ref.run or ""
        return ep

    def load(self, ref: RecordingRef) -> Recording:
        """The run's epochs laid end to end as one Raw (Volts), one event per epoch labelled with its word."""
        import mne

        from neurofm.io import standardize_channels

        ep = self.epochs(ref)
        n, c, t = ep.x.shape
        data = ep.x.transpose(1, 0, 2).reshape(c, n * t).astype(np.float64) * 1e-6
        raw = mne.io.RawArray(data, mne.create_info(ep.ch_names, ep.sfreq, "seeg"), verbose="error")
        raw._filenames = [str(ref.path)]
        table = standardize_channels(raw, modality="seeg")
        if ep.meta.get("note"):
            table.notes.append(ep.meta["note"])
        table.notes.append(f"{n} epochs of {t / ep.sfreq:g} s laid end to end (window them with window_s = "
                           f"stride_s = {t / ep.sfreq:g}, no filtering across epochs)")
        events = [Event(k * t / ep.sfreq, t / ep.sfreq, w) for k, w in enumerate(ep.words)]
        return Recording(ref, raw, table, events=events)


# ---------------------------------------------------------------------------------------------- BIDS words
_WORD_COLUMNS = ("word", "trial_type", "value", "stim_word", "stimulus", "stim_file")
_NWB_UNITS = {"volts": 1.0, "volt": 1.0, "v": 1.0, "millivolts": 1e-3, "mv": 1e-3, "microvolts": 1e-6, "uv": 1e-6,
              "µv": 1e-6}


def read_word_events(path: str | os.PathLike, column: str | None = None) -> list[Event]:
    """Word events from a BIDS ``events.tsv``: onset (s), duration (s, default 0) and the word column."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as fid:
        rows = list(csv.DictReader(fid, delimiter="\t"))
    if not rows or "onset" not in rows[0]:
        raise EventsError("events.tsv has no 'onset' column or no rows.", source=path,
                          hint="BIDS events.tsv starts with the columns onset, duration.")
    col = column or next((c for c in _WORD_COLUMNS if c in rows[0]), None)
    if col is None or col not in rows[0]:
        raise EventsError(f"no word column in events.tsv (columns {list(rows[0])}).", source=path,
                          hint=f"name it one of {_WORD_COLUMNS}, or pass word_column=... to the dataset.")
    out = []
    for k, row in enumerate(rows):
        word = (row.get(col) or "").strip()
        if word in ("", "n/a"):
            continue
        try:
            onset = float(row["onset"])
            dur = float(row.get("duration") or 0.0) if row.get("duration") not in (None, "", "n/a") else 0.0
        except ValueError:
            raise EventsError(f"row {k + 2}: onset/duration '{row['onset']}'/'{row.get('duration')}' are not numbers.",
                              source=path, hint="onset and duration are in seconds.") from None
        out.append(Event(onset, dur, word))
    if not out:
        raise EventsError(f"no word in column '{col}' of events.tsv.", source=path,
                          hint="check the column, or pass word_column=... to the dataset.")
    return out


def read_nwb_ieeg(path: str | os.PathLike, ch_names: list[str] | None = None, series: str = "iEEG"):
    """(data (n_chans, n_times) in Volts, sfreq, names) from an NWB file's ``acquisition/<series>``."""
    import h5py

    path = Path(path)
    try:
        fid = h5py.File(path, "r")
    except OSError as err:
        raise CorruptFileError(f"not a readable NWB/HDF5 file ({err}).", source=path,
                               hint="the file is truncated or not NWB; copy it again.") from None
    with fid:
        group = fid.get(f"acquisition/{series}")
        if group is None or "data" not in group:
            have = list(fid.get("acquisition", {}).keys())
            raise CorruptFileError(f"no acquisition/{series}/data in the NWB file (acquisitions: {have}).",
                                   source=path, hint="the iEEG ElectricalSeries must be named 'iEEG' (as in "
                                   "SingleWordProductionDutch), or pass series=... .")
        dset = group["data"]
        data = np.asarray(dset[()], dtype=np.float64)
        conversion = float(dset.attrs.get("conversion", 1.0))
        unit = dset.attrs.get("unit", "volts")
        unit = unit.decode() if isinstance(unit, bytes) else str(unit)
        scale = _NWB_UNITS.get(unit.strip().lower())
        if scale is None:
            raise RecordingError(f"NWB data unit '{unit}' not understood.", source=path,
                                 hint="the unit attribute must be volts, millivolts or microvolts.")
        if "starting_time" in group and "rate" in group["starting_time"].attrs:
            sfreq = float(group["starting_time"].attrs["rate"])
        elif "timestamps" in group:
            ts = np.asarray(group["timestamps"][:2])
            sfreq = float(1.0 / (ts[1] - ts[0]))
        else:
            raise CorruptFileError("the iEEG series has neither starting_time@rate nor timestamps.", source=path,
                                   hint="write the sampling rate as starting_time's 'rate' attribute.")
    if data.ndim != 2:
        raise CorruptFileError(f"iEEG data has shape {data.shape}, expected (n_samples, n_channels).", source=path,
                               hint="NWB stores time along the first axis.")
    n_chans = data.shape[1]
    if ch_names is None or len(ch_names) != n_chans:
        raise RecordingError(f"{n_chans} data columns but {0 if ch_names is None else len(ch_names)} names in "
                             "channels.tsv.", source=path,
                             hint="channels.tsv must list every column of the iEEG data, in order.")
    return (data * conversion * scale).T, sfreq, list(ch_names)


class SpeechBIDS(Dataset):
    """BIDS iEEG with word onsets in ``*_events.tsv`` (e.g. SingleWordProductionDutch-iBIDS).

    Parameters
    ----------
    root : path-like
        The BIDS root (holding ``dataset_description.json``).
    task : str | None
        Only recordings of this BIDS task (default: all).
    word_column : str | None
        Column of events.tsv holding the word (default: the first of word, trial_type, value, ...).
    """

    name = "speech-bids"
    description = "BIDS iEEG with word onsets in events.tsv (SingleWordProductionDutch layout; NWB or MNE formats)"
    licence = "see the dataset"
    subdir = "ieeg/speech-bids"
    modality = "seeg"
    line_freq = 50.0

    def __init__(self, root: str | os.PathLike | None = None, task: str | None = None, word_column: str | None = None):
        super().__init__(root)
        self.task, self.word_column = task, word_column

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        if not (self.root / "dataset_description.json").exists():
            raise DatasetRootError("not a BIDS root: dataset_description.json is missing.", source=self.root,
                                   hint="point at the folder holding dataset_description.json and sub-*/.")
        refs = []
        pattern = f"sub-*/**/*_task-{self.task}*_ieeg.*" if self.task else "sub-*/**/*_ieeg.*"
        for path in sorted(self.root.glob(pattern)):
            if path.suffix in (".json", ".eeg", ".vmrk", ".fdt"):
                continue
            ents = dict(re.findall(r"(sub|ses|task|run|acq)-([A-Za-z0-9]+)", path.name))
            refs.append(RecordingRef(id=path.name.rsplit("_", 1)[0], path=path, subject=ents.get("sub", ""),
                                     session=ents.get("ses"), run=ents.get("run"),
                                     meta=dict(task=ents.get("task"), bids_root=str(self.root))))
        if not refs:
            raise self._empty(pattern)
        return refs

    def events_path(self, ref: RecordingRef) -> Path:
        base = ref.path.name.rsplit("_", 1)[0]
        path = ref.path.parent / f"{base}_events.tsv"
        if not path.is_file():
            raise EventsError("no events.tsv beside the recording.", source=ref.path,
                              hint=f"word onsets go in {path.name} (columns onset, duration, word).")
        return path

    def words(self, ref: RecordingRef) -> list[str]:
        return sorted({e.label for e in read_word_events(self.events_path(ref), self.word_column)})

    def load(self, ref: RecordingRef) -> Recording:
        import mne

        from neurofm.io import Sidecars, standardize_channels

        events = read_word_events(self.events_path(ref), self.word_column)
        sidecars = Sidecars.find(ref.path)
        if ref.path.suffix.lower() == ".nwb":
            names = list(sidecars.channel_types) or None
            data, sfreq, names = read_nwb_ieeg(ref.path, names)
            raw = mne.io.RawArray(data, mne.create_info(names, sfreq, "seeg"), verbose="error")
            raw._filenames = [str(ref.path)]
            table = standardize_channels(raw, sidecars=sidecars, modality=sidecars.modality or "seeg")
        else:
            from neurofm.datasets.generic import read_bids

            raw, table = read_bids(ref)
            raw.set_annotations(None)
        duration = raw.n_times / raw.info["sfreq"]
        late = [e for e in events if e.onset >= duration]
        if late:
            table.notes.append(f"{len(late)} word event(s) after the end of the recording ignored")
        return Recording(ref, raw, table, events=[e for e in events if e.onset < duration])


def word_recipe(words: list[str], base: str = "seeg-1000hz", *, tmin: float = -0.5, window_s: float = 3.0):
    """An event-locked recipe: ``base``'s steps with windows of ``window_s`` from ``tmin`` around each word.

    Filtering runs on the continuous recording before the windows are cut (no edge effects, and nothing
    is fitted on data).
    """
    from neurofm.preprocessing.recipe import parse_recipe, resolve_recipe

    d = resolve_recipe(base).to_dict()
    steps = []
    for step in d["steps"]:
        (name, _), = step.items()
        steps.append({"window": {"kind": "events", "window_s": window_s, "tmin": tmin, "events": sorted(set(words))}}
                     if name == "window" else step)
    d.update(name=f"{d['name']}-words", steps=steps,
             description=f"{d['name']} locked to {len(set(words))} words ({tmin:g} s, {window_s:g}-s windows)")
    return parse_recipe(d, source=f"word_recipe({base})")
