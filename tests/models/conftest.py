"""Fixtures of the model tests: a one-run EEGMMIDB store (64 channels) beside the EEGMAT one (19)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import MMIDB


@pytest.fixture(scope="session")
def mmidb_store(tmp_path_factory) -> Path:
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess

    root = tmp_path_factory.mktemp("mmidb")
    (root / "S001").mkdir()
    for f in MMIDB.joinpath("S001").glob("S001R04.edf*"):
        shutil.copy(f, root / "S001")
    out = tmp_path_factory.mktemp("store") / "mmidb"
    res = preprocess(get_dataset("eegmmidb", str(root)), resolve_recipe("eeg-200hz"), out, report=False, verbose=False)
    assert not res.failed, res.failed
    return out


def tiny_tokenizer(name: str = "neurorvq-tiny", **kw):
    """A very small member of a registered family (fast enough for unit tests)."""
    from neurofm.registry import create_model

    small = dict(dim=32, depth=1, decoder_depth=1, heads=2, codebook_size=16, code_dim=8)
    if name.startswith("neurorvq"):
        small["n_levels"] = 3
    return create_model(name, **{**small, **kw})
