"""UCI EEG Database (alcoholism) reader and dataset, on the real trial files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurofm._errors import CorruptFileError
from neurofm.datasets import get_dataset
from neurofm.io.uci_eeg import read_uci_trial
from tests.conftest import SHARED, run_cli

UCI = SHARED / "eeg" / "uci-alcohol"


def _copy(dest: Path, subjects=("co2a0000364", "co2c0000337"), n_trials: int = 4) -> Path:
    for s in subjects:
        (dest / s).mkdir(parents=True)
        for p in sorted((UCI / s).glob("*.rd.*.gz"))[:n_trials]:
            shutil.copy(p, dest / s)
    return dest


def test_trial_file_values_names_and_rate():
    path = UCI / "co2a0000364" / "co2a0000364.rd.000.gz"
    t = read_uci_trial(path)
    assert (t.subject, t.condition, t.trial, t.sfreq) == ("co2a0000364", "S1 obj", 0, 256.0)
    assert t.data.shape == (64, 256) and t.ch_names[:3] == ["FP1", "FP2", "F7"]
    with gzip.open(path, "rt") as fid:  # first data row of the file: "0 FP1 0 -8.921"
        first = next(line for line in fid if not line.startswith("#")).split()
    assert t.data[0, 0] == pytest.approx(float(first[3])) == pytest.approx(-8.921)


def test_dataset_subjects_groups_channels_and_trial_events():
    ds = get_dataset("uci-alcohol")
    refs = ds.recordings()
    assert len(refs) == 16 and sum(r.label == "alcoholic" for r in refs) == 8
    rec = ds.load(next(r for r in refs if r.id == "co2c0000337"))
    table = rec.channels
    assert rec.raw.info["sfreq"] == 256.0 and rec.raw.n_times == 30 * 256
    assert {"Fp1", "AFz", "FCz", "POz", "CPz"} <= set(table.names)
    typed = dict(zip(table.names, table.types, strict=True))
    assert (typed["X"], typed["Y"], typed["nd"]) == ("eog", "eog", "misc")
    assert sum(t == "eeg" for t in table.types) == 61 and np.isfinite(table.positions[[
        i for i, t in enumerate(table.types) if t == "eeg"]]).all()
    assert any(n.startswith("nd:") for n in table.notes) and any(n.startswith("X:") for n in table.notes)
    assert len(rec.events) == 30 and all(e.duration == 1.0 for e in rec.events)
    assert {e.label for e in rec.events} == {"control/S1-obj", "control/S2-match", "control/S2-nomatch"}
    # Volts in the Raw, µV in the files
    first = read_uci_trial(sorted((UCI / "co2c0000337").glob("*.gz"))[0])
    assert rec.raw.get_data(picks=["Fp1"])[0, :5] == pytest.approx(first.data[0, :5] * 1e-6)


def test_bad_trial_files_name_the_file(tmp_path):
    src = UCI / "co2a0000364" / "co2a0000364.rd.000.gz"
    truncated = tmp_path / "trunc.rd.000.gz"
    truncated.write_bytes(src.read_bytes()[:5000])
    with pytest.raises(CorruptFileError, match=r"trunc\.rd\.000\.gz.*decompress.*HINT"):
        read_uci_trial(truncated)
    lines = gzip.open(src, "rt").read().splitlines()
    k = next(i for i, line in enumerate(lines) if not line.startswith("#")) + 10
    malformed = tmp_path / "bad.rd.000.gz"
    with gzip.open(malformed, "wt") as fid:
        fid.write("\n".join(lines[:k] + ["0 FP1 ten 3.2"] + lines[k + 1:]) + "\n")
    with pytest.raises(CorruptFileError, match=r"bad\.rd\.000\.gz: malformed data row 11 '0 FP1 ten 3.2'"):
        read_uci_trial(malformed)
    short = tmp_path / "short.rd.000.gz"
    with gzip.open(short, "wt") as fid:
        fid.write("\n".join(lines[:-7]) + "\n")
    with pytest.raises(CorruptFileError, match=r"short\.rd\.000\.gz: .*truncated"):
        read_uci_trial(short)


def test_preprocess_root_copy_one_window_per_trial_and_bad_file_reported(tmp_path):
    root = _copy(tmp_path / "uci", subjects=("co2a0000364", "co2c0000337", "co2c0000338"))
    bad = sorted((root / "co2c0000338").glob("*.gz"))[1]
    bad.write_bytes(bad.read_bytes()[:3000])
    out = tmp_path / "store"
    proc = run_cli("preprocess", "--dataset", "uci-alcohol", "--root", str(root), "--pipeline", "uci-200hz",
                   "--out", str(out), "--no-report", "--quiet")
    assert proc.returncode != 0 or "failed" in proc.stdout + proc.stderr
    err_lines = [ln for ln in proc.stderr.splitlines() if bad.name in ln]
    assert len(err_lines) == 1 and "HINT:" in err_lines[0] and "Traceback" not in proc.stderr, proc.stderr
    from neurofm.data.dataset import WindowStore

    store = WindowStore(out)
    recs = {r["id"]: (i, r) for i, r in enumerate(store.recordings)}
    assert set(recs) == {"co2a0000364", "co2c0000337"}  # the good subjects are kept
    for rid, (i, rec) in recs.items():
        assert store.array(i).shape == (4, 61, 200)  # one 1-s window per trial, EEG only, 200 Hz
        # a folder recording is hashed over its trial files (regression: was the empty-input sha256)
        assert rec["source_sha256"] != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        group = "alcoholic" if rid.startswith("co2a") else "control"
        assert all(lab.split("/")[0] == group for lab in rec["labels"])
