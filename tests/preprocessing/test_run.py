"""Store runs: resumable after kill -9, reruns skip finished work, SLURM-style shards, QC report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neurofm._errors import StoreError
from neurofm.datasets import get_dataset
from neurofm.preprocessing.recipe import parse_recipe, resolve_recipe
from neurofm.preprocessing.run import preprocess, process_recording
from tests.conftest import REPO, copy_eegmat, run_cli

SUBJECTS = ("00", "01", "02", "03", "04", "05")


def _store_contents(root: Path) -> dict[str, bytes]:
    """Every shard file's bytes (what downstream code reads); names include the .json metadata."""
    return {p.name: p.read_bytes() for p in sorted((root / "shards").iterdir())}


def test_killed_run_resumes_to_identical_store(tmp_path):
    data = copy_eegmat(tmp_path / "eegmat", SUBJECTS)
    ref = tmp_path / "uninterrupted"
    proc = run_cli("preprocess", "--dataset", "eegmat", "--root", str(data), "--pipeline", "eeg-200hz",
                   "--out", str(ref), "--no-report")
    assert proc.returncode == 0, proc.stderr

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "neurofm.cli", "preprocess", "--dataset", "eegmat", "--root", str(data),
           "--pipeline", "eeg-200hz", "--out", str(killed), "--no-report"]
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "shards").glob("*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    done_before = len(list((killed / "shards").glob("*.json")))
    assert 3 <= done_before < 2 * len(SUBJECTS), "the kill must land mid-run"
    assert not (killed / "manifest.json").exists()

    proc = run_cli("preprocess", "--dataset", "eegmat", "--root", str(data), "--pipeline", "eeg-200hz",
                   "--out", str(killed), "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert f"{done_before} already up to date" in proc.stdout
    assert _store_contents(killed) == _store_contents(ref)
    assert not list(killed.rglob("*.tmp"))
    m_ref = json.loads((ref / "manifest.json").read_text())
    m_kill = json.loads((killed / "manifest.json").read_text())
    assert m_kill["recordings"] == m_ref["recordings"] and m_kill["n_windows"] == m_ref["n_windows"]


def test_rerun_skips_and_changed_recipe_redoes(tmp_path):
    data = copy_eegmat(tmp_path / "eegmat", ("00",))
    ds = get_dataset("eegmat", str(data))
    recipe = resolve_recipe("eeg-200hz")
    first = preprocess(ds, recipe, tmp_path / "s", report=False, verbose=False)
    assert len(first.done) == 2
    again = preprocess(ds, recipe, tmp_path / "s", report=False, verbose=False)
    assert len(again.done) == 0 and len(again.skipped) == 2
    changed = recipe.to_dict()
    changed["steps"] = [s if "bandpass" not in s else {"bandpass": {"l_freq": 1.0, "h_freq": 40.0}}
                        for s in changed["steps"]]
    with pytest.raises(StoreError, match="made with recipe 'eeg-200hz'.*HINT: .*--force"):
        preprocess(ds, parse_recipe(changed), tmp_path / "s", report=False, verbose=False)  # refused: not merged
    redo = preprocess(ds, parse_recipe(changed), tmp_path / "s", report=False, verbose=False, force=True)
    assert len(redo.done) == 2 and redo.manifest["recipe_hash"] != first.manifest["recipe_hash"]
    # a changed source file is redone too
    src = data / "rest" / "Subject00_1_first62s.edf"
    src.write_bytes(src.read_bytes())  # same bytes: still up to date
    assert len(preprocess(ds, parse_recipe(changed), tmp_path / "s", report=False, verbose=False).skipped) == 2


def test_shards_partition_the_recordings(tmp_path):
    data = copy_eegmat(tmp_path / "eegmat", ("00", "01", "02"))
    ds = get_dataset("eegmat", str(data))
    recipe = resolve_recipe("eeg-200hz")
    ids = []
    for i in range(2):
        res = preprocess(ds, recipe, tmp_path / "s", shard=f"{i}/2", report=False, verbose=False)
        ids += [r["id"] for r in res.done]
    assert sorted(ids) == sorted(r.id for r in ds.recordings())
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["n_recordings"] == 6  # the last shard's manifest sees every finished recording


@pytest.mark.parametrize("workers", ["fork", "loky"])
def test_two_workers_write_the_same_store_as_one(tmp_path, monkeypatch, workers):
    """--n-jobs 2 (forked workers, or loky's) gives byte-identical shards and the same manifest as one job."""
    data = copy_eegmat(tmp_path / "eegmat", ("00", "01"))
    ds, recipe = get_dataset("eegmat", str(data)), resolve_recipe("eeg-200hz")
    preprocess(ds, recipe, tmp_path / "one", report=False, verbose=False)
    monkeypatch.setenv("NEUROFM_WORKERS", workers)
    res = preprocess(ds, recipe, tmp_path / "two", n_jobs=2, report=False, verbose=False)
    assert len(res.done) == 4 and not res.failed
    one, two = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("one", "two"))
    assert [r["id"] for r in one["recordings"]] == [r["id"] for r in two["recordings"]]
    assert one["n_windows"] == two["n_windows"] == 60
    for rec in one["recordings"]:
        a, b = (tmp_path / d / "shards" / rec["file"] for d in ("one", "two"))
        assert a.read_bytes() == b.read_bytes()


_PROCESS_RECORDING = process_recording  # the real one, before any monkeypatch


def _killed_on_sub01_rest(dataset, ref, *args, **kwargs):
    """process_recording, except that the worker running sub-01_rest is killed (module level: workers unpickle it)."""
    if ref.id == "sub-01_rest":
        os.kill(os.getpid(), signal.SIGKILL)
    return _PROCESS_RECORDING(dataset, ref, *args, **kwargs)


def test_a_killed_worker_is_one_clear_error_and_a_rerun_completes(tmp_path, monkeypatch):
    """A --n-jobs worker killed by the system (SIGKILL, as the OOM killer does): one NeurofmError with the fix,
    the recordings finished before are kept, and the same run again completes the store."""
    from neurofm._errors import NeurofmError
    from neurofm.preprocessing import run

    data = copy_eegmat(tmp_path / "eegmat", ("00", "01"))
    ds, recipe = get_dataset("eegmat", str(data)), resolve_recipe("eeg-200hz")
    real = run.process_recording
    monkeypatch.setattr(run, "process_recording", _killed_on_sub01_rest)
    with pytest.raises(NeurofmError, match="worker process died") as err:
        preprocess(ds, recipe, tmp_path / "s", n_jobs=2, report=False, verbose=False)
    assert "--max-memory or --n-jobs" in err.value.hint
    monkeypatch.setattr(run, "process_recording", real)
    res = preprocess(ds, recipe, tmp_path / "s", n_jobs=2, report=False, verbose=False)
    assert len(res.done) + len(res.skipped) == 4 and not res.failed
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["n_recordings"] == 4


def test_bad_shard_spec(tmp_path):
    proc = run_cli("preprocess", "--dataset", "eegmat", "--pipeline", "eeg-200hz", "--out", str(tmp_path),
                   "--shard", "3/2")
    assert proc.returncode == 2 and "--shard '3/2'" in proc.stderr and "Traceback" not in proc.stderr


def test_manifest_and_qc_report(eegmat_store):
    m = json.loads((eegmat_store / "manifest.json").read_text())
    assert m["n_recordings"] == 6 and m["recipe"]["name"] == "eeg-200hz" and len(m["recipe_hash"]) == 16
    rec = m["recordings"][0]
    for key in ("id", "subject", "session", "source", "source_sha256", "channels", "sfreq", "units", "labels",
                "starts", "recipe_hash", "bads", "events", "patch_size"):
        assert key in rec
    assert rec["units"] == "uV" and rec["sfreq"] == 200.0 and rec["patch_size"] == 200
    assert rec["info"]["Gender"] in ("F", "M") and "Count quality" in rec["info"]
    assert all(c["pos"] is not None for c in rec["channels"])
    x = np.load(eegmat_store / "shards" / rec["file"], mmap_mode="r")
    assert x.dtype == np.float32 and x.shape == (15, 19, 800)
    assert 1.0 < float(np.std(x)) < 200.0  # µV
    html = (eegmat_store / "qc" / "report.html").read_text()
    assert "sub-02_rest" in html and "noisy" in html  # Subject02 rest: Fp2 flagged and interpolated
    assert (eegmat_store / "qc" / "summary.tsv").read_text().count("\n") == 7


def test_info_command(eegmat_store):
    proc = run_cli("info", str(eegmat_store))
    assert proc.returncode == 0
    assert "recordings  6  subjects 3  windows 90" in proc.stdout
    assert "19 channels × 800 samples at 200 Hz" in proc.stdout and "arithmetic: 45, rest: 45" in proc.stdout
    proc = run_cli("info", str(eegmat_store.parent))
    assert proc.returncode == 2 and "no manifest.json" in proc.stderr


def test_changed_brainvision_data_file_is_redone(tmp_path):
    """Regression: the up-to-date check must hash the .eeg/.vmrk a .vhdr points to, not only the header."""
    import shutil

    from tests.conftest import FORMATS

    folder = tmp_path / "bv"
    folder.mkdir()
    for ext in (".vhdr", ".eeg", ".vmrk"):
        shutil.copy(FORMATS / "brainvision" / f"test_CA_208{ext}", folder)
    ds = get_dataset(f"folder:{folder}")
    recipe = resolve_recipe("eeg-200hz")
    assert len(preprocess(ds, recipe, tmp_path / "s", report=False, verbose=False).done) == 1
    assert len(preprocess(ds, recipe, tmp_path / "s", report=False, verbose=False).skipped) == 1
    data = bytearray((folder / "test_CA_208.eeg").read_bytes())
    data[1000:1010] = bytes(10)
    (folder / "test_CA_208.eeg").write_bytes(bytes(data))
    assert len(preprocess(ds, recipe, tmp_path / "s", report=False, verbose=False).done) == 1
