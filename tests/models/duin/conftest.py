"""Fixtures of the Du-IN tests: the real sEEG recording, its electrodes.tsv, small stores built from it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import IEEG

SEEG = IEEG / "epilepsy-seeg"
SEEG_EDF = SEEG / "sub-pat01_ses-test_acq-seeg_ieeg.edf"
SEEG_ELECTRODES = SEEG / "sub-pat01_ses-test_acq-seeg_electrodes.tsv"

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)
    try:  # vector-quantize-pytorch warns through loguru when k-means sees few vectors
        from loguru import logger

        logger.remove()
    except ImportError:
        pass


@pytest.fixture(scope="session")
def seeg_recording():
    """The real sEEG recording with its channel table (sidecars applied)."""
    from neurofm.datasets import get_dataset

    ds = get_dataset("epilepsy-seeg")
    return ds.load(ds.recordings()[0])


@pytest.fixture(scope="session")
def depth_segment(seeg_recording):
    """(names, z-scored µV array (n_contacts, n_times)) of every depth contact, first 3 s at 1000 Hz."""
    rec = seeg_recording
    names = [n for n, t in zip(rec.channels.names, rec.channels.types, strict=True) if t == "seeg"]
    x = rec.raw.get_data(picks=names)[:, :3000] * 1e6
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    return names, x.astype(np.float32)


def _preprocess(dataset: str, recipe: str, out: Path) -> Path:
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess

    res = preprocess(get_dataset(dataset), resolve_recipe(recipe), out, report=False, verbose=False)
    assert not res.failed, res.failed
    return out


@pytest.fixture(scope="session")
def seeg_store(tmp_path_factory) -> Path:
    """The sEEG recording in the Du-IN contract, 3-s windows every 0.5 s (35 windows, 82 bipolar channels)."""
    return _preprocess("epilepsy-seeg", "seeg-1000hz-dense", tmp_path_factory.mktemp("duin") / "seeg")


@pytest.fixture(scope="session")
def grip_store(tmp_path_factory) -> Path:
    """Grip-force ECoG/LFP in the Du-IN contract with 1-s windows (continuous target MOV_RIGHT)."""
    return _preprocess("gripforce", "ieeg-1000hz-1s", tmp_path_factory.mktemp("duin") / "grip")


@pytest.fixture(scope="session")
def exported_vqvae(tmp_path_factory, seeg_store) -> Path:
    """A tiny VQ-VAE trained for one epoch on the sEEG store and exported (safetensors + contract)."""
    import lightning as L

    from neurofm.data.duin import DuINDataModule
    from neurofm.training.duin import DuINVQVAEModule

    L.seed_everything(0, verbose=False)
    dm = DuINDataModule([str(seeg_store)], names=["seeg"], batch_size=8, split="time")
    module = DuINVQVAEModule(model_kwargs=tiny_kwargs(), regions=dict(by="shaft"), warmup_steps=2)
    quiet_trainer(max_epochs=1, val=False).fit(module, dm)
    out = tmp_path_factory.mktemp("duin") / "vqvae"
    module.export(out)
    return out


def tiny_kwargs(**kw):
    """A smaller-than-tiny Du-IN for unit tests (same code paths)."""
    return dict(dict(sfreq=1000.0, patch_s=0.1, n_times=3000, dim=32, depth=1, heads=2, widths=[16, 16, 8],
                     code_dim=16, codebook_size=64, decoder_depth=1), **kw)


def quiet_trainer(max_epochs: int = 1, val: bool = True, **kw):
    import lightning as L

    return L.Trainer(max_epochs=max_epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1.0 if val else 0,
                     accelerator="cpu", devices=1, **kw)
