"""UCI EEG Database (alcoholism): 1-s trials of 64-channel EEG, alcoholic vs control subjects."""

from __future__ import annotations

import re

import numpy as np

from neurofm._errors import CorruptFileError
from neurofm.datasets._base import Dataset, Event, Recording, RecordingRef

#: Channels of the UCI montage that are not scalp EEG electrodes: their MNE type and why.
NON_EEG = {"X": ("eog", "EOG-like channel of the UCI montage"), "Y": ("eog", "EOG-like channel of the UCI montage"),
           "nd": ("misc", "the UCI montage's reference ('nd'), not an EEG electrode")}
GROUPS = {"a": "alcoholic", "c": "control"}
#: Stimulus conditions as written in the files → the part of the window label that names them.
CONDITIONS = {"S1 obj": "S1-obj", "S2 match": "S2-match", "S2 nomatch": "S2-nomatch"}


def trial_label(group: str, condition: str) -> str:
    """Window label of a trial: ``"<group>/<condition>"`` (``"alcoholic/S2-match"``).

    Tasks merge the labels they need (``{alcoholic/S1-obj: alcoholic, ...}``); the condition stays
    in the store for tasks on the stimulus.
    """
    cond = CONDITIONS.get(condition, condition.replace(" ", "-"))
    return f"{group}/{cond}"


class UCIAlcohol(Dataset):
    """UCI "EEG Database" (Begleiter; SMNI_CMI_TRAIN): one recording per subject, its trials end to end.

    Each trial file (1 s at 256 Hz, stimulus at 0) becomes one labelled 1-s span of the subject's
    recording, in trial-number order, so that 1-s windows with a 1-s stride give the trials back.
    Samples are in µV in the files and in Volts in the returned Raw. ``X``/``Y`` are typed ``eog`` and
    ``nd`` ``misc`` (recorded in the channel table notes), never dropped by the reader.
    """

    name = "uci-alcohol"
    description = "UCI EEG Database: 16 subjects (8 alcoholic, 8 control), 30 1-s trials each, 64 ch at 256 Hz"
    licence = "CC BY 4.0"
    subdir = "eeg/uci-alcohol"
    line_freq = 60.0
    sfreq = 256.0
    labels = tuple(trial_label(g, c) for g in GROUPS.values() for c in CONDITIONS)
    _subject = re.compile(r"^co\d?([ac])\w+$")

    def recordings(self) -> list[RecordingRef]:
        self.check_root()
        refs = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            m = self._subject.match(folder.name)
            trials = sorted(folder.glob("*.rd.*.gz"))
            if not m or not trials:
                continue
            group = GROUPS[m.group(1)]
            refs.append(RecordingRef(id=folder.name, path=folder, subject=folder.name, label=group,
                                     meta=dict(group=group, n_trials=len(trials))))
        if not refs:
            raise self._empty("co2?NNNNNNN/*.rd.NNN.gz")
        return refs

    def load(self, ref: RecordingRef) -> Recording:
        import mne

        from neurofm.io import standardize_channels
        from neurofm.io.uci_eeg import read_uci_trial

        trials = sorted((read_uci_trial(p) for p in sorted(ref.path.glob("*.rd.*.gz"))), key=lambda t: t.trial)
        if not trials:
            raise self._empty(f"{ref.path.name}/*.rd.NNN.gz")
        first = trials[0]
        for t in trials[1:]:
            if t.ch_names != first.ch_names or t.sfreq != first.sfreq or t.data.shape != first.data.shape:
                raise CorruptFileError(
                    f"channels/rate/length ({len(t.ch_names)} ch, {t.sfreq} Hz, {t.data.shape[1]} samples) differ "
                    f"from {first.path.name} ({len(first.ch_names)} ch, {first.sfreq} Hz, {first.data.shape[1]}).",
                    source=t.path, hint="every trial of a subject must share its montage; use the original files.")
        group = ref.meta.get("group") or ref.label
        types = [NON_EEG.get(n, ("eeg", ""))[0] for n in first.ch_names]
        info = mne.create_info(list(first.ch_names), first.sfreq, types)
        raw = mne.io.RawArray(np.concatenate([t.data for t in trials], axis=1) * 1e-6, info, verbose="error")
        raw._filenames = [str(first.path)]
        table = standardize_channels(raw, modality="eeg")
        for name in first.ch_names:
            if name in NON_EEG:
                kind, why = NON_EEG[name]
                table.notes.append(f"{name}: {why}, typed {kind}")
        n = first.data.shape[1] / first.sfreq
        events = [Event(i * n, n, trial_label(group, t.condition)) for i, t in enumerate(trials)]
        ref.meta["trials"] = [dict(trial=t.trial, condition=t.condition, file=t.path.name) for t in trials]
        return Recording(ref, raw, table, events=events)
