"""Intracranial datasets: epilepsy sEEG/ECoG, Bonn segments, grip-force ECoG/LFP, motor ECoG."""

from __future__ import annotations

import numpy as np

from neurofm._errors import CorruptFileError, RecordingError
from neurofm.datasets._base import Dataset, Event, Recording, RecordingRef, annotation_events, read_standard


class _SingleBIDSNamed(Dataset):
    """One BIDS-named EDF with electrodes.tsv beside it (no full BIDS tree)."""

    glob = "*_ieeg.edf"

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        refs = []
        for path in sorted(self.root.glob(self.glob)):
            ents = dict(part.split("-", 1) for part in path.name.split("_") if "-" in part)
            refs.append(RecordingRef(id=path.name.rsplit("_", 1)[0], path=path, subject=ents.get("sub", "01"),
                                     session=ents.get("ses")))
        if not refs:
            raise self._empty(self.glob)
        return refs


class EpilepsySEEG(_SingleBIDSNamed):
    name = "epilepsy-seeg"
    description = "sEEG of one epilepsy patient (OpenNeuro ds003029): 88 depth contacts on 6 shafts, 1000 Hz, atlas labels"
    licence = "BSD-3 (mne-misc-data); recording CC0"
    subdir = "ieeg/epilepsy-seeg"
    modality = "seeg"
    line_freq = 60.0
    sfreq = 1000.0
    glob = "*_acq-seeg_ieeg.edf"

    def load(self, ref: RecordingRef) -> Recording:
        raw, table = read_standard(ref, modality="seeg")
        return Recording(ref, raw, table, events=annotation_events(raw))


class EpilepsyECoG(_SingleBIDSNamed):
    name = "epilepsy-ecog"
    description = "ECoG of one epilepsy patient (OpenNeuro ds003029): 76 contacts, ~1 kHz, seizure onset annotated"
    licence = "BSD-3 (mne-misc-data); recording CC0"
    subdir = "ieeg/epilepsy-ecog"
    modality = "ecog"
    line_freq = 60.0
    sfreq = 999.4
    labels = ("preictal", "ictal")
    glob = "*_acq-ecog_ieeg.edf"
    onset_marker = "eeg sz start"

    def load(self, ref: RecordingRef) -> Recording:
        raw, table = read_standard(ref, modality="ecog")
        duration = raw.n_times / raw.info["sfreq"]
        onsets = [e.onset for e in annotation_events(raw) if e.label == self.onset_marker]
        events = [Event(o, 0.0, "seizure_onset") for o in onsets]
        if onsets:  # label every sample: before the first onset pre-ictal, after it ictal
            events += [Event(0.0, onsets[0], "preictal"), Event(onsets[0], duration - onsets[0], "ictal")]
        return Recording(ref, raw, table, events=events)


class Bonn(Dataset):
    """Bonn epilepsy segments (Andrzejak et al. 2001): sets A (healthy), D (interictal), E (ictal)."""

    name = "bonn"
    description = "Bonn epilepsy data: 300 single-channel 23.6-s segments at 173.61 Hz, healthy/interictal/ictal"
    licence = "CC BY 4.0"
    subdir = "ieeg/bonn"
    modality = "eeg"
    line_freq = 50.0
    sfreq = 173.61
    labels = ("healthy", "interictal", "ictal")
    files = {"A": ("Bonn_eeg_AZ_100.mat", "healthy"), "D": ("Bonn_eeg_DF_100.mat", "interictal"),
             "E": ("Bonn_eeg_E_100.mat", "ictal")}

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        refs = []
        for set_name, (fname, label) in self.files.items():
            path = self.root / fname
            if not path.exists():
                continue
            for seg in range(100):
                # The segments of a set come from 5 unnamed patients; each segment is its own split unit.
                refs.append(RecordingRef(id=f"{set_name}{seg:03d}", path=path, subject=f"{set_name}{seg:03d}",
                                         label=label, meta=dict(set=set_name, segment=seg)))
        if not refs:
            raise self._empty(", ".join(f for f, _ in self.files.values()))
        return refs

    def load(self, ref: RecordingRef) -> Recording:
        import mne
        import scipy.io

        from neurofm.io import standardize_channels

        try:
            data = scipy.io.loadmat(ref.path, variable_names=["eeg_data"])["eeg_data"]
        except Exception as err:
            raise CorruptFileError(f"cannot read MATLAB variable 'eeg_data' ({type(err).__name__}: {err}).",
                                   source=ref.path, hint="the Bonn files hold eeg_data of shape (4097, 100).") from None
        seg = int(ref.meta["segment"])
        if data.ndim != 2 or seg >= data.shape[1]:
            raise CorruptFileError(f"eeg_data has shape {data.shape}, expected (4097, 100).", source=ref.path,
                                   hint="use the original Bonn .mat files.")
        x = data[:, seg].astype(np.float64)[None] * 1e-6  # int16 µV → V
        # One channel type for all three sets, so that the type cannot give the class away.
        info = mne.create_info(["EEG"], self.sfreq, "eeg")
        raw = mne.io.RawArray(x, info, verbose="error")
        raw._filenames = [str(ref.path)]
        table = standardize_channels(raw, modality="eeg")
        duration = raw.n_times / self.sfreq
        return Recording(ref, raw, table, events=[Event(0.0, duration, ref.label)])


class GripForce(Dataset):
    """BIDS ECoG + STN-LFP with continuous grip force (py_neuromodulation example)."""

    name = "gripforce"
    description = "BIDS ECoG (6) + STN LFP (3) at 1000 Hz with continuous grip force MOV_RIGHT (regression target)"
    licence = "MIT"
    subdir = "ieeg/gripforce-ecog-lfp"
    modality = "ecog"
    line_freq = 60.0  # PowerLineFrequency in the *_ieeg.json sidecar
    sfreq = 1000.0
    target = "MOV_RIGHT"
    scale_fix = 1e-6  # the .vhdr declares µV but the values are ~10^6 too large

    def recordings(self) -> list[RecordingRef]:
        from neurofm.datasets.generic import bids_recordings

        self.check_root()
        return bids_recordings(self.root, self)

    def load(self, ref: RecordingRef) -> Recording:
        from neurofm.datasets.generic import read_bids

        raw, table = read_bids(ref)
        raw.apply_function(lambda x: x * self.scale_fix, picks="all", channel_wise=False)
        return Recording(ref, raw, table, events=annotation_events(raw), target=self.target)


class MotorECoG(Dataset):
    """One ECoG channel over primary motor cortex (Cole et al. 2017, via neurodsp), NumPy array in µV."""

    name = "motor-ecog"
    description = "1 ECoG channel over human M1, 1000 Hz, 10 s (NumPy .npy, µV)"
    licence = "Apache-2.0"
    subdir = "ieeg/motor-ecog"
    modality = "ecog"
    sfreq = 1000.0

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        refs = [RecordingRef(id=p.stem, path=p, subject="01") for p in sorted(self.root.glob("*.npy"))]
        if not refs:
            raise self._empty("*.npy")
        return refs

    def load(self, ref: RecordingRef) -> Recording:
        import mne

        from neurofm.io import standardize_channels

        try:
            x = np.load(ref.path, allow_pickle=False)
        except Exception as err:
            raise CorruptFileError(f"cannot read the NumPy array ({err}).", source=ref.path,
                                   hint="the file must be a plain .npy array of samples in µV.") from None
        if x.ndim != 1:
            raise RecordingError(f"expected a 1-D array of samples, got shape {x.shape}.", source=ref.path,
                                 hint="save one channel per file, in µV.")
        raw = mne.io.RawArray(x[None].astype(np.float64) * 1e-6, mne.create_info(["M1"], self.sfreq, "ecog"),
                              verbose="error")
        raw._filenames = [str(ref.path)]
        table = standardize_channels(raw, modality="ecog")
        return Recording(ref, raw, table)
