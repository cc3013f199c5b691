"""Distributed correctness: codebooks stay identical on every rank of a 2-process gloo DDP run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).resolve().parents[2]


def run_worker(store: Path, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), MASTER_PORT=str(29500 + os.getpid() % 1000))
    return subprocess.run([sys.executable, str(WORKER), str(store), str(out), *extra], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def books(out: Path, rank: int) -> list[np.ndarray]:
    with np.load(out / f"rank{rank}.npz") as f:
        return [f[k] for k in sorted(f.files) if k.startswith("book")]


QUANTIZING = ["neurorvq-tiny", "labram-vq-tiny", "duin-vqvae-tiny"]


def test_codebooks_identical_on_every_rank(eegmat_store, tmp_path):
    res = run_worker(eegmat_store, tmp_path, "--models", ",".join(QUANTIZING))
    assert res.returncode == 0, res.stderr[-3000:]
    for model in QUANTIZING:
        a, b = books(tmp_path / model, 0), books(tmp_path / model, 1)
        with np.load(tmp_path / model / "rank0.npz") as f:
            assert bool(f["sync"])                 # rebuilt with sync_codebook once the process group was up
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_naive_construction_lets_codebooks_diverge(eegmat_store, tmp_path):
    """The control: built before DDP starts, each rank trains its codebooks on its own data."""
    res = run_worker(eegmat_store, tmp_path, "--no-sync")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = books(tmp_path / "neurorvq-tiny", 0), books(tmp_path / "neurorvq-tiny", 1)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_failed_rank_ends_the_run_with_an_error(eegmat_store, tmp_path):
    res = run_worker(eegmat_store, tmp_path, "--fail-rank", "1", "--steps", "6", "--timeout", "15", timeout=240)
    assert res.returncode != 0
    assert "simulated failure on rank 1" in res.stderr
