"""Consumer EEG tables (Muse eeg-notebooks, Mind Monitor, OpenBCI GUI) and folder scanning, written from a real
EEGMAT recording (its T3/F7/F8/T4 channels stand in for Muse's TP9/AF7/AF8/TP10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurofm._errors import CorruptFileError
from neurofm.io import read_raw
from neurofm.io.scan import scan_folder
from tests.conftest import EEGMAT, FORMATS

SOURCE = EEGMAT / "rest" / "Subject00_1_first62s.edf"
PAIRS = {"TP9": "EEG T3", "AF7": "EEG F7", "AF8": "EEG F8", "TP10": "EEG T4"}
T0 = 1_700_000_000.0


def real_uv(seconds: float = 20.0, names=tuple(PAIRS.values())) -> tuple[np.ndarray, float]:
    """(n_samples, n_channels) µV of the real recording, and its rate (500 Hz)."""
    import mne

    raw = mne.io.read_raw_edf(SOURCE, preload=True, verbose="error")
    sf = raw.info["sfreq"]
    return raw.get_data(picks=list(names))[:, : int(seconds * sf)].T * 1e6, sf


def write_muse(path: Path, markers: dict[int, int] | None = None) -> np.ndarray:
    """eeg-notebooks / muse-lsl layout: timestamps, TP9, AF7, AF8, TP10, Right AUX, Marker0."""
    x, sf = real_uv()
    marker = np.zeros(len(x), int)
    for i, code in (markers or {}).items():
        marker[i] = code
    with open(path, "w") as fid:
        fid.write("timestamps,TP9,AF7,AF8,TP10,Right AUX,Marker0\n")
        for k, row in enumerate(x):
            fid.write(f"{T0 + k / sf:.6f}," + ",".join(f"{v:.3f}" for v in row) + f",0.000,{marker[k]}\n")
    return x


def write_mind_monitor(path: Path) -> np.ndarray:
    """Mind Monitor layout: TimeStamp (date-time, ms), band powers, RAW_*, AUX_RIGHT, ..., Elements rows."""
    from datetime import datetime, timedelta

    x, sf = real_uv()
    start = datetime(2024, 3, 1, 10, 0, 0)
    cols = ["TimeStamp", "Delta_TP9", "RAW_TP9", "RAW_AF7", "RAW_AF8", "RAW_TP10", "AUX_RIGHT", "HeadBandOn",
            "Battery", "Elements"]
    with open(path, "w") as fid:
        fid.write(",".join(cols) + "\n")
        for k, row in enumerate(x):
            stamp = (start + timedelta(seconds=k / sf)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            fid.write(f"{stamp},0.5," + ",".join(f"{v:.3f}" for v in row) + ",0.0,1,80,\n")
            if k in (2500, 7500):  # an element row: a marker, no samples
                fid.write(f"{stamp},,,,,,,,,/Marker/{1 if k == 2500 else 2}\n")
    return x


def write_openbci(path: Path, *, rate_line: bool = True, timestamps: bool = True) -> np.ndarray:
    """OpenBCI GUI v5 text export: % header, 'Sample Index, EXG Channel 0..3, ..., Timestamp, Marker Channel'."""
    x, sf = real_uv(names=("EEG Fp1", "EEG Fp2", "EEG C3", "EEG C4"))
    cols = ["Sample Index"] + [f"EXG Channel {i}" for i in range(4)] + ["Accel Channel 0"] + (
        ["Timestamp"] if timestamps else []) + ["Marker Channel"]
    with open(path, "w") as fid:
        fid.write("%OpenBCI Raw EXG Data\n%Number of channels = 4\n")
        if rate_line:
            fid.write(f"%Sample Rate = {sf:g} Hz\n")
        fid.write("%Board = OpenBCI_GUI$BoardCytonSerial\n" + ", ".join(cols) + "\n")
        for k, row in enumerate(x):
            vals = [str(k % 256)] + [f"{v:.3f}" for v in row] + ["0.0"]
            vals += [f"{T0 + k / sf:.6f}"] if timestamps else []
            vals += ["7" if k == 5000 else "0"]
            fid.write(", ".join(vals) + "\n")
    return x


def test_muse_csv_timestamps_channels_and_markers(tmp_path):
    x = write_muse(tmp_path / "muse.csv", markers={1000: 1, 6000: 2})
    raw = read_raw(tmp_path / "muse.csv")
    assert raw.info["sfreq"] == 500.0 and raw.ch_names == ["TP9", "AF7", "AF8", "TP10", "Right AUX"]
    assert raw.get_channel_types()[:4] == ["eeg"] * 4 and raw.get_channel_types()[4] == "misc"
    assert np.allclose(raw.get_data(picks="TP9")[0] * 1e6, x[:, 0], atol=1e-3)   # µV in the file, Volts in MNE
    assert list(raw.annotations.description) == ["1", "2"]
    assert np.allclose(raw.annotations.onset, [2.0, 12.0])


def test_mind_monitor_csv_marker_rows_become_events(tmp_path):
    x = write_mind_monitor(tmp_path / "mm.csv")
    raw = read_raw(tmp_path / "mm.csv")
    assert raw.info["sfreq"] == 500.0 and raw.n_times == len(x)            # marker rows hold no samples
    assert raw.ch_names == ["TP9", "AF7", "AF8", "TP10", "AUX_RIGHT"]
    assert list(raw.annotations.description) == ["/Marker/1", "/Marker/2"]
    assert np.allclose(raw.annotations.onset, [5.0, 15.0], atol=0.002)


def test_openbci_declared_rate_timestamps_and_sfreq_only_without_timestamps(tmp_path):
    write_openbci(tmp_path / "a.txt")
    raw = read_raw(tmp_path / "a.txt")
    assert raw.info["sfreq"] == 500.0 and raw.ch_names == [f"EXG Channel {i}" for i in range(4)]
    assert list(raw.annotations.description) == ["7"] and raw.annotations.onset[0] == pytest.approx(10.0)
    write_openbci(tmp_path / "b.txt", rate_line=False)                     # rate from the timestamps
    assert read_raw(tmp_path / "b.txt").info["sfreq"] == 500.0
    write_openbci(tmp_path / "c.txt", rate_line=False, timestamps=False)   # nothing says the rate
    with pytest.raises(CorruptFileError, match="sampling rate is unknown.*HINT: pass --sfreq"):
        read_raw(tmp_path / "c.txt")
    assert read_raw(tmp_path / "c.txt", sfreq=500.0).info["sfreq"] == 500.0


def test_scan_accounts_for_every_file_of_the_shared_formats():
    scan = scan_folder(FORMATS)
    names = {p.name for p in scan.recordings}
    assert {"test_CA_208.vhdr", "test_raw.set", "test_CA_208.cnt", "MB0400FU.EDF"} <= names
    companions = {p.name for c in scan.companions.values() for p in c}
    assert {"test_CA_208.eeg", "test_CA_208.vmrk", "test_raw.fdt", "test_CA_208.evt"} <= companions
    every = {p for p in FORMATS.rglob("*") if p.is_file() and not p.name.startswith(".")}
    accounted = set(scan.recordings) | {p for c in scan.companions.values() for p in c} | set(scan.documents) | set(
        scan.problems) | set(scan.annotations.values())
    assert every == accounted
