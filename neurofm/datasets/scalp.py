"""Scalp EEG datasets: PhysioNet EEGMAT and EEG Motor Movement/Imagery."""

from __future__ import annotations

import csv
import re

from neurofm.datasets._base import Dataset, Recording, RecordingRef, annotation_events, read_standard


class EEGMAT(Dataset):
    """PhysioNet EEG during mental arithmetic (Zyma et al. 2019), rest vs serial subtraction."""

    name = "eegmat"
    description = "PhysioNet EEGMAT: 24 subjects, 19-ch 10-20 EEG at 500 Hz, rest vs mental arithmetic"
    licence = "ODC-By 1.0"
    subdir = "eeg/eegmat"
    line_freq = 50.0
    sfreq = 500.0
    labels = ("rest", "arithmetic")
    _pattern = re.compile(r"Subject(\d+)_(\d)")

    def _subject_info(self) -> dict[str, dict[str, str]]:
        path = self.root / "subject-info.csv"
        if not path.exists():
            return {}
        with open(path, newline="") as fid:
            return {row["Subject"]: {k: v for k, v in row.items() if k != "Subject"} for row in csv.DictReader(fid)}

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        info = self._subject_info()
        refs = []
        for folder, label in (("rest", "rest"), ("task", "arithmetic")):
            for path in sorted((self.root / folder).glob("Subject*.edf")):
                m = self._pattern.match(path.name)
                if not m:
                    continue
                subject = m.group(1)
                refs.append(RecordingRef(id=f"sub-{subject}_{label}", path=path, subject=subject, session=m.group(2),
                                         label=label, meta=dict(info.get(f"Subject{subject}", {}))))
        if not refs:
            raise self._empty("rest/Subject*.edf, task/Subject*.edf")
        return refs

    def load(self, ref: RecordingRef) -> Recording:
        raw, table = read_standard(ref, modality="eeg")
        duration = raw.n_times / raw.info["sfreq"]
        from neurofm.datasets._base import Event

        return Recording(ref, raw, table, events=[Event(0.0, duration, ref.label)])


# EEGMMIDB run protocol: run number → (task, execution) and what T1/T2 mean in it.
_MMIDB_RUNS = {
    1: ("baseline-eyes-open", "none"), 2: ("baseline-eyes-closed", "none"),
    3: ("left-right-fist", "real"), 4: ("left-right-fist", "imagined"),
    5: ("fists-feet", "real"), 6: ("fists-feet", "imagined"),
}
for _r in range(7, 15):
    _MMIDB_RUNS[_r] = _MMIDB_RUNS[3 + (_r - 3) % 4]
_MMIDB_T = {"left-right-fist": ("left_fist", "right_fist"), "fists-feet": ("both_fists", "both_feet")}


class EEGMMIDB(Dataset):
    """PhysioNet EEG Motor Movement/Imagery (Schalk et al. 2004); T0/T1/T2 mapped per run."""

    name = "eegmmidb"
    description = "PhysioNet EEG Motor Movement/Imagery: S001 all 14 runs, S002-S004 fist runs; 64-ch EEG at 160 Hz"
    licence = "ODC-By 1.0"
    subdir = "eeg/eegmmidb"
    line_freq = 60.0
    sfreq = 160.0
    labels = ("rest", "left_fist", "right_fist", "both_fists", "both_feet", "eyes_open", "eyes_closed")
    _pattern = re.compile(r"(S\d+)R(\d+)\.edf$", re.I)

    @staticmethod
    def event_mapping(run: int) -> dict[str, str]:
        task, _ = _MMIDB_RUNS[run]
        if task in _MMIDB_T:
            t1, t2 = _MMIDB_T[task]
            return {"T0": "rest", "T1": t1, "T2": t2}
        return {"T0": "eyes_open" if run == 1 else "eyes_closed"}

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        refs = []
        for path in sorted(self.root.glob("S*/S*R*.edf")):
            m = self._pattern.search(path.name)
            if not m:
                continue
            subject, run = m.group(1), int(m.group(2))
            task, execution = _MMIDB_RUNS.get(run, ("unknown", "unknown"))
            refs.append(RecordingRef(id=f"{subject}_R{run:02d}", path=path, subject=subject, run=f"{run:02d}",
                                     meta=dict(task=task, execution=execution)))
        if not refs:
            raise self._empty("S*/S*R*.edf")
        return refs

    def load(self, ref: RecordingRef) -> Recording:
        raw, table = read_standard(ref, modality="eeg")
        run = int(ref.run)
        events = annotation_events(raw, self.event_mapping(run)) if run in _MMIDB_RUNS else annotation_events(raw)
        return Recording(ref, raw, table, events=events)
