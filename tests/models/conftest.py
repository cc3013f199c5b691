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


def exported_tokenizer(tmp_path: Path, store: Path):
    """A tiny NeuroRVQ exported with the store's contract: (model in eval mode, a real batch, directory)."""
    import torch

    from neurofm.data.dataset import WindowDataset, WindowStore, collate
    from neurofm.models._contract import SignalContract
    from neurofm.models._hub import save_pretrained

    torch.manual_seed(0)
    kw = dict(dim=32, depth=1, decoder_depth=1, heads=2, codebook_size=16, code_dim=8, n_levels=3)
    model = tiny_tokenizer(**kw)
    batch = collate([WindowDataset(WindowStore(store))[i] for i in range(4)])
    model(batch["x"], pos=batch["pos"], ch_names=batch["ch_names"])   # k-means init: non-trivial codebooks
    contract = SignalContract.from_manifest(WindowStore(store).manifest, positions_required=True)
    save_pretrained(model, tmp_path / "tok", name="neurorvq-tiny", kwargs=kw, contract=contract)
    return model.eval(), batch, tmp_path / "tok"
