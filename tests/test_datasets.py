"""Registered datasets list the shared recordings with the right subjects and labels."""

from pathlib import Path

import pytest

from neurofm._errors import DatasetRootError
from neurofm.datasets import get_dataset
from tests.conftest import EEGMAT, FORMATS, IEEG


def test_eegmat_recordings_labels_and_subject_info():
    refs = get_dataset("eegmat").recordings()
    assert len(refs) == 48 and {r.label for r in refs} == {"rest", "arithmetic"}
    assert len({r.subject for r in refs}) == 24
    s01 = next(r for r in refs if r.subject == "01" and r.label == "rest")
    assert s01.meta == {"Age": "18", "Gender": "F", "Recording year": "2011", "Number of subtractions": "29.35",
                        "Count quality": "1"}


def test_eegmmidb_runs_and_mapping():
    ds = get_dataset("eegmmidb")
    refs = ds.recordings()
    by_subject = {}
    for r in refs:
        by_subject.setdefault(r.subject, []).append(r.run)
    # S001: all 14 runs; S002-S004: the left/right fist runs only (real R03/R07/R11, imagined R04/R08/R12)
    assert by_subject == {"S001": [f"{i:02d}" for i in range(1, 15)],
                          **{s: ["03", "04", "07", "08", "11", "12"] for s in ("S002", "S003", "S004")}}
    assert len({r.id for r in refs}) == len(refs)  # one id per recording, the subject in it
    assert ds.event_mapping(4) == {"T0": "rest", "T1": "left_fist", "T2": "right_fist"}
    assert ds.event_mapping(14) == {"T0": "rest", "T1": "both_fists", "T2": "both_feet"}
    assert next(r for r in refs if r.run == "10").meta == {"task": "fists-feet", "execution": "imagined"}


def test_bonn_segments():
    ds = get_dataset("bonn")
    refs = ds.recordings()
    assert len(refs) == 300
    assert {r.label for r in refs} == {"healthy", "interictal", "ictal"}
    rec = ds.load(refs[250])
    assert rec.ref.label == "ictal" and rec.raw.n_times == 4097 and rec.raw.info["sfreq"] == 173.61
    assert rec.channels.types == ["eeg"]  # one type for all sets, so the type cannot leak the class


def test_ecog_seizure_onset_event():
    ds = get_dataset("epilepsy-ecog")
    rec = ds.load(ds.recordings()[0])
    onset = [e for e in rec.events if e.label == "seizure_onset"]
    assert len(onset) == 1 and onset[0].onset == pytest.approx(10.2287, abs=1e-3)


def test_generic_folder_and_bids():
    refs = get_dataset(f"folder:{FORMATS}").recordings()
    names = {r.path.name for r in refs}
    assert {"multiple_annotation_chans.bdf", "test_CA_208.vhdr", "test_raw.set", "MB0400FU.EDF",
            "data_resting_EO_200Hz_raw.fif"} <= names
    assert "test_CA_208.eeg" not in names and "test_raw.fdt" not in names
    (ref,) = get_dataset(f"bids:{IEEG / 'gripforce-ecog-lfp'}").recordings()
    assert ref.subject == "testsub" and ref.session == "EphysMedOff"


def test_root_override_and_missing_root(tmp_path):
    with pytest.raises(DatasetRootError, match="dataset root does not exist"):
        get_dataset("bonn", str(tmp_path / "missing")).recordings()
    with pytest.raises(DatasetRootError, match="no recordings matching"):
        get_dataset("eegmat", str(tmp_path)).recordings()
    with pytest.raises(DatasetRootError, match="not a BIDS root"):
        get_dataset(f"bids:{tmp_path}").recordings()


def test_folder_subject_is_the_person_not_the_file(tmp_path):
    import re
    import shutil

    from neurofm.datasets.generic import subject_of

    # EEGMAT's rest and arithmetic files of one person are one subject (was: one subject per file)
    refs = get_dataset(f"folder:{EEGMAT}").recordings()
    assert [r.path.name for r in refs if r.options.get("problem")] == ["subject-info.csv"]   # listed, will fail
    by_subject = {}
    for r in refs:
        if r.options.get("problem"):
            continue
        by_subject.setdefault(r.subject, []).append(r.path.parent.name)
    assert len(by_subject) == 24 and all(sorted(v) == ["rest", "task"] for v in by_subject.values())
    assert subject_of(Path("S001/S001R03.edf")) == "S001" and subject_of(Path("SC4012E0-PSG.edf")) == "SC401"
    assert subject_of(Path("ses-1/sub-07_ses-1_eeg.vhdr")) == "07" and subject_of(Path("odd name.edf")) == "odd-name"
    # a configurable pattern: one folder per person
    for person in ("P01", "P02"):
        (tmp_path / person).mkdir()
        for name in ("Subject00_1_first62s.edf", "Subject01_1_first62s.edf"):
            shutil.copy(EEGMAT / "rest" / name, tmp_path / person / name)
    ds = get_dataset(f"folder:{tmp_path}")
    ds.subject_pattern = re.compile(r"^(P\d+)/")
    assert sorted({r.subject for r in ds.recordings()}) == ["P01", "P02"]


def test_subject_pattern_without_a_group_is_refused(tmp_path):
    from tests.conftest import run_cli

    proc = run_cli("preprocess", "--dataset", f"folder:{EEGMAT}", "--pipeline", "eeg-200hz", "--out",
                   str(tmp_path / "s"), "--subject-pattern", r"P\d+")
    assert proc.returncode == 2 and "has no group" in proc.stderr and "HINT" in proc.stderr
    assert not (tmp_path / "s").exists()


def test_folder_without_recordings_says_what_it_saw(tmp_path):
    (tmp_path / "README.md").write_text("notes\n")
    (tmp_path / "participants.json").write_text("{}")
    with pytest.raises(DatasetRootError, match=r"no recordings found \(saw 2 document/sidecar file\(s\): "
                                               r"README.md, participants.json\).*HINT: point folder:PATH"):
        get_dataset(f"folder:{tmp_path}").recordings()
