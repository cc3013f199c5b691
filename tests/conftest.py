"""Shared fixtures: paths to the real recordings and small stores built from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEUROFM_DATA", REPO.parent / "shared" / "data"))
EEGMAT = SHARED / "eeg" / "eegmat"
MMIDB = SHARED / "eeg" / "eegmmidb"
IEEG = SHARED / "ieeg"
FORMATS = SHARED / "formats"

if not SHARED.is_dir():  # the real recordings are required: fail loudly rather than skip everything
    raise RuntimeError(f"real recordings not found at {SHARED}; set NEUROFM_DATA to the shared data folder")


def copy_eegmat(dest: Path, subjects: tuple[str, ...] = ("00", "01")) -> Path:
    """A writable copy of part of EEGMAT with the dataset's own layout."""
    for folder, suffix in (("rest", "_1_first62s.edf"), ("task", "_2.edf")):
        (dest / folder).mkdir(parents=True, exist_ok=True)
        for s in subjects:
            shutil.copy(EEGMAT / folder / f"Subject{s}{suffix}", dest / folder)
    shutil.copy(EEGMAT / "subject-info.csv", dest)
    return dest


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed console entry point the way a user does."""
    return subprocess.run([sys.executable, "-m", "neurofm.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture(scope="session")
def eegmat_store(tmp_path_factory) -> Path:
    """eeg-200hz store of EEGMAT subjects 00, 01, 02 (rest + arithmetic), built once."""
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess

    root = copy_eegmat(tmp_path_factory.mktemp("eegmat"), ("00", "01", "02"))
    out = tmp_path_factory.mktemp("store") / "eegmat"
    res = preprocess(get_dataset("eegmat", str(root)), resolve_recipe("eeg-200hz"), out, report=True, verbose=False)
    assert not res.failed, res.failed
    return out


@pytest.fixture(scope="session")
def eegmat_three(tmp_path_factory) -> Path:
    """A writable EEGMAT copy with subjects 00, 01, 02 at ``DATA/eeg/eegmat`` (usable as ``NEUROFM_DATA=DATA``)."""
    return copy_eegmat(tmp_path_factory.mktemp("data3") / "eeg" / "eegmat", ("00", "01", "02"))


@pytest.fixture(scope="session")
def task_cache(tmp_path_factory) -> Path:
    """One store cache for the decoding tests: each task's recordings are preprocessed once."""
    return tmp_path_factory.mktemp("task-cache")
