"""Bad input: each kind gets one clear message naming the file and the fix, the batch goes on,
failed recordings are listed with a non-zero exit, and nothing partial is left in the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import EEGMAT, copy_eegmat, run_cli

GOOD = EEGMAT / "rest" / "Subject00_1_first62s.edf"


def _raw(path=GOOD):
    import mne

    return mne.io.read_raw_edf(path, preload=True, verbose="error")


def _save_fif(raw, path: Path) -> None:
    raw.save(path, overwrite=True, verbose="error")


def _edf_label_offset(index: int) -> int:
    return 256 + 16 * index


def biosemi_edf(data: bytes) -> bytes:
    """The EEGMAT EDF with its 19 scalp labels renamed the BioSemi way (A1…A19), header patched in place."""
    out = bytearray(data)
    n_signals = int(data[252:256].decode())
    labels = [data[_edf_label_offset(i): _edf_label_offset(i + 1)].decode().strip() for i in range(n_signals)]
    cap = [f"{letter}{k}" for letter in "ABCD" for k in range(1, 33)]
    scalp = [i for i, lab in enumerate(labels) if lab.startswith("EEG ") and "-" not in lab]
    for i, new in zip(scalp, cap, strict=False):
        out[_edf_label_offset(i): _edf_label_offset(i + 1)] = f"{new:<16}".encode()
    return bytes(out)


def egi_far_raw():
    """EEGMAT with EGI labels (E1…E19) and file positions 100× too far out (7–12 m from the head centre)."""
    import mne

    raw = _raw()
    scalp = [c for c in raw.ch_names if c.startswith("EEG ") and "-" not in c]
    template = mne.channels.make_standard_montage("colin27_1005").get_positions()["ch_pos"]
    pos = {f"E{k + 1}": template[c[4:]] * 100 for k, c in enumerate(scalp)}
    raw.rename_channels({c: f"E{k + 1}" for k, c in enumerate(scalp)})
    raw.pick([*pos, "ECG ECG"])
    raw.set_channel_types({"ECG ECG": "ecg"})
    raw.set_montage(mne.channels.make_dig_montage(ch_pos=pos, coord_frame="head"))
    return raw


def hypnogram_edf(psg: bytes, stages: list[str], epoch_s: float = 30.0) -> bytes:
    """An annotation-only EDF+ (Sleep-EDF hypnogram layout): one 'EDF Annotations' signal, one stage per epoch,
    starting at the same date and time as the PSG header ``psg``."""
    tals = "+0\x14\x14\x00" + "".join(f"+{k * epoch_s:g}\x15{epoch_s:g}\x14{s}\x14\x00" for k, s in enumerate(stages))
    raw_tal = tals.encode("latin-1")
    n_bytes = len(raw_tal) + (len(raw_tal) % 2)
    spr = n_bytes // 2
    head = (f"{'0':<8}{'X X X X':<80}{'Startdate X X X X':<80}".encode() + psg[168:184]
            + f"{512:<8}{'EDF+C':<44}{1:<8}{len(stages) * epoch_s:<8g}{1:<4}".encode())
    sig = (f"{'EDF Annotations':<16}{'':<80}{'':<8}{'-1':<8}{'1':<8}{'-32768':<8}{'32767':<8}{'':<80}{spr:<8}"
           f"{'':<32}").encode()
    assert len(head) == 256 and len(sig) == 256
    return head + sig + raw_tal.ljust(n_bytes, b"\x00")


def make_corpus(folder: Path) -> dict[str, tuple[str, str]]:
    """Write one damaged file per kind (from a real EEGMAT recording) and a good one.

    Returns {file name: (expected fragment of the message, expected fix fragment)}.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = GOOD.read_bytes()
    expected: dict[str, tuple[str, str]] = {}

    (folder / "good.edf").write_bytes(data)

    (folder / "truncated.edf").write_bytes(data[: len(data) // 2 + 7])
    expected["truncated.edf"] = ("truncated", "copy the recording again")

    (folder / "crlf.edf").write_bytes(data.replace(b"\n", b"\r\n"))
    expected["crlf.edf"] = ("line-ending conversion", "binary mode")

    header_records = int(data[236:244].decode())
    bad_header = bytearray(data)
    bad_header[236:244] = f"{header_records - 3:<8d}".encode()
    (folder / "records.edf").write_bytes(bytes(bad_header))
    expected["records.edf"] = ("header/data size mismatch", "record count")

    (folder / "empty.edf").write_bytes(b"")
    expected["empty.edf"] = ("empty", "copy the recording again")

    (folder / "notes.xyz").write_bytes(b"not a recording")
    expected["notes.xyz"] = ("unknown recording format '.xyz'", "convert it")

    dup = bytearray(data)
    dup[_edf_label_offset(1): _edf_label_offset(2)] = dup[_edf_label_offset(0): _edf_label_offset(1)]
    (folder / "duplicate.edf").write_bytes(bytes(dup))
    expected["duplicate.edf"] = ("duplicate channel labels", "unique label")

    raw = _raw()
    x = raw.get_data()
    x[:, 5000:6000] = np.nan
    raw._data = x
    _save_fif(raw, folder / "nan_raw.fif")
    expected["nan_raw.fif"] = ("NaN/Inf samples in every channel", "cut the affected span")

    raw = _raw()
    raw._data[:] = 0.0
    _save_fif(raw, folder / "flat_raw.fif")
    expected["flat_raw.fif"] = ("channels are flat", "check that the file holds a recording")

    raw = _raw()
    raw._data *= 1e6  # µV values where Volts are declared
    _save_fif(raw, folder / "uv_as_v_raw.fif")
    expected["uv_as_v_raw.fif"] = ("stored where Volts are declared", "rescale: {factor: 1e-06}")

    raw = _raw()
    raw._data *= 1e-6  # Volts where µV are declared
    _save_fif(raw, folder / "v_as_uv_raw.fif")
    expected["v_as_uv_raw.fif"] = ("Volts stored where µV are declared", "rescale: {factor: 1e+06}")

    (folder / "biosemi.edf").write_bytes(biosemi_edf(data))   # issue 13, case 2: labels colliding with 10-05
    expected["biosemi.edf"] = ("19 channel label(s) (A1, A2, A3, …, A19) are BioSemi cap labels, not 10-05 electrodes",
                               "montage: {name: biosemi128}")

    _save_fif(egi_far_raw(), folder / "egi_far_raw.fif")       # positions from the file, 7–12 m out
    expected["egi_far_raw.fif"] = ("19 channel position(s) are implausible", "montage step")

    # issue 13, case 3: nothing below the folder is skipped unseen
    (folder / "table.csv").write_text((EEGMAT / "subject-info.csv").read_text())
    expected["table.csv"] = ("a text table that is not a Muse (eeg-notebooks, Mind Monitor) or OpenBCI GUI export",
                             "convert other tables to FIF with mne.io.RawArray")

    from scipy.io import savemat

    savemat(folder / "matlab.mat", {"eeg_data": _raw().get_data()[:2, :1000]})
    expected["matlab.mat"] = ("MNE could not read it", "scipy.io.loadmat")

    (folder / "orphan.fdt").write_bytes(np.zeros(64, "<f4").tobytes())
    expected["orphan.fdt"] = ("a companion file (.fdt) without the recording it belongs to", "header file")

    (folder / "SC4002EC-Hypnogram.edf").write_bytes(hypnogram_edf(data, ["Sleep stage W", "Sleep stage 1"]))
    expected["SC4002EC-Hypnogram.edf"] = ("an annotation-only EDF (a hypnogram or event file: no signals) whose PSG "
                                          "recording is not in this folder", "put it beside the PSG recording")

    (folder / "notes.md").write_text("recorded on the ward, day 2\n")   # a document: listed, not a failure
    return expected


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    expected = make_corpus(folder / "in")
    out = folder / "store"
    proc = run_cli("preprocess", "--dataset", f"folder:{folder / 'in'}", "--pipeline", "eeg-200hz",
                   "--out", str(out), "--no-report")
    return proc, expected, out


def test_batch_exit_code_and_no_traceback(corpus_run):
    proc, _, _ = corpus_run
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "1 processed" in proc.stdout + proc.stderr
    assert "not read: 1 document/sidecar file(s)" in proc.stderr and "notes.md" in proc.stderr   # listed, not hidden


@pytest.mark.parametrize("name", ["truncated.edf", "crlf.edf", "records.edf", "empty.edf", "notes.xyz",
                                  "duplicate.edf", "nan_raw.fif", "flat_raw.fif", "uv_as_v_raw.fif",
                                  "v_as_uv_raw.fif", "biosemi.edf", "egi_far_raw.fif", "table.csv", "matlab.mat",
                                  "orphan.fdt", "SC4002EC-Hypnogram.edf"])
def test_each_kind_gets_one_clear_message(corpus_run, name):
    proc, expected, out = corpus_run
    what, fix = expected[name]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("- ") and f"/{name}:" in ln]
    assert len(lines) == 1, proc.stderr
    assert what in lines[0] and "HINT:" in lines[0] and fix in lines[0], lines[0]
    failures = json.loads((out / "failures.json").read_text())
    assert any(f["source"].endswith(name) and f["kind"] != "InternalError" for f in failures)


def test_good_recording_kept_and_nothing_partial(corpus_run):
    _, expected, out = corpus_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["id"] for r in manifest["recordings"]] == ["good"]
    leftovers = sorted(p.name for p in (out / "shards").iterdir())
    assert leftovers == ["good.json", "good.npy"]
    assert len(manifest["failures"]) == len(expected)


def _store_one(raw, tmp_path: Path) -> tuple[dict, Path]:
    """Save ``raw`` alone in a folder, preprocess it through the CLI, return its manifest entry."""
    folder = tmp_path / "in"
    folder.mkdir()
    _save_fif(raw, folder / "one_raw.fif")
    proc = run_cli("preprocess", "--dataset", f"folder:{folder}", "--pipeline", "eeg-200hz", "--out",
                   str(tmp_path / "s"), "--no-report")
    assert proc.returncode == 0, proc.stderr
    (rec,) = json.loads((tmp_path / "s" / "manifest.json").read_text())["recordings"]
    return rec, tmp_path / "s" / "shards" / rec["file"]


def test_nan_in_one_channel_is_marked_bad_and_interpolated(tmp_path):
    raw = _raw()
    raw._data[raw.ch_names.index("EEG Fp1"), 1000:1200] = np.inf
    rec, shard = _store_one(raw, tmp_path)
    assert "non-finite" in rec["bads"]["Fp1"] and rec["interpolated"] == ["Fp1"]
    assert np.isfinite(np.load(shard)).all()


def test_one_flat_channel_is_marked_bad(tmp_path):
    raw = _raw()
    raw._data[raw.ch_names.index("EEG O2")] = 0.0
    rec, _ = _store_one(raw, tmp_path)
    assert rec["bads"]["O2"].startswith("flat") and rec["interpolated"] == ["O2"]


def test_event_locked_recipe_on_file_without_events(tmp_path):
    root = copy_eegmat(tmp_path / "eegmat", ("00",))
    shutil.rmtree(root / "task")
    proc = run_cli("preprocess", "--dataset", f"folder:{root}", "--pipeline", "eeg-200hz-events",
                   "--out", str(tmp_path / "s"), "--no-report")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "locks windows to events" in proc.stderr and "HINT: use a fixed-length recipe" in proc.stderr
    assert not list((tmp_path / "s" / "shards").glob("*.npy"))


def test_dataset_root_that_does_not_exist(tmp_path):
    proc = run_cli("preprocess", "--dataset", "eegmat", "--root", str(tmp_path / "nope"), "--pipeline",
                   "eeg-200hz", "--out", str(tmp_path / "s"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "dataset root does not exist" in proc.stderr and str(tmp_path / "nope") in proc.stderr
    assert "HINT" in proc.stderr


def test_recipe_with_unknown_key_suggests_nearest(tmp_path):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("name: x\nsteps:\n  - bandpass: {l_freq: 1, h_frq: 40}\n  - window: {window_s: 2}\n")
    proc = run_cli("preprocess", "--dataset", "eegmat", "--config", str(cfg), "--out", str(tmp_path / "s"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown key 'h_frq'" in proc.stderr and "Did you mean 'h_freq'" in proc.stderr
    assert str(cfg) in proc.stderr
