"""Reading stores: random access, subject-wise splits, training-only statistics, mixed montages."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from neurofm._errors import StoreError
from neurofm.data.dataset import WindowDataset, WindowStore, channel_stats, collate, split_by_subject


def test_random_access_matches_shards(eegmat_store):
    store = WindowStore(eegmat_store)
    assert len(store) == 90
    rng = np.random.default_rng(0)
    for i in rng.integers(0, len(store), 10):
        rec = store.recordings[store.rec_index[i]]
        expect = np.load(eegmat_store / "shards" / rec["file"])[store.win_index[i]]
        np.testing.assert_array_equal(store[int(i)], expect)
        assert store.labels[i] == rec["labels"][store.win_index[i]]


def test_subject_split_never_shares_a_subject(eegmat_store):
    store = WindowStore(eegmat_store)
    for seed in range(5):
        idx = split_by_subject(store.subjects, val=1 / 3, test=1 / 3, seed=seed)
        sets = {k: set(store.subjects[v]) for k, v in idx.items()}
        assert all(sets.values())
        assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
        assert sum(len(v) for v in idx.values()) == len(store)
    explicit = split_by_subject(store.subjects, val=["01"], test=["02"])
    assert set(store.subjects[explicit["train"]]) == {"00"}
    with pytest.raises(StoreError, match="not in the store"):
        split_by_subject(store.subjects, val=["99"], test=["02"])


def test_normalisation_uses_training_split_only(eegmat_store):
    """Leakage guard: statistics must change when only the test windows change."""
    store = WindowStore(eegmat_store)
    idx = split_by_subject(store.subjects, val=["01"], test=["02"])
    stats = channel_stats(store, idx["train"])
    direct = np.stack([store[int(i)] for i in idx["train"]])
    cz = [c["name"] for c in store.channels(int(idx["train"][0]))].index("Cz")
    assert stats["Cz"][0] == pytest.approx(direct[:, cz].mean(), rel=1e-4)
    assert stats["Cz"][1] == pytest.approx(direct[:, cz].std(), rel=1e-4)
    all_stats = channel_stats(store, np.arange(len(store)))
    assert stats["Cz"] != all_stats["Cz"]
    from neurofm.data.datamodule import StoreDataModule

    dm = StoreDataModule(str(eegmat_store), val_subjects=["01"], test_subjects=["02"], normalize=True)
    dm.setup("fit")
    assert dm.stats == stats  # the module normalises with training statistics, never with all windows


def test_dataset_items_and_collate_mixed_montages(eegmat_store, tmp_path):
    store = WindowStore(eegmat_store)
    ds = WindowDataset(store)
    item = ds[0]
    assert item["x"].shape == (19, 800) and item["x"].dtype == torch.float32
    assert item["pos"].shape == (19, 3) and item["y"] in (0, 1) and set(ds.label_map) == {"rest", "arithmetic"}
    small = dict(item, x=item["x"][:5], pos=item["pos"][:5], ch_names=item["ch_names"][:5])
    batch = collate([item, small])
    assert batch["x"].shape == (2, 19, 800) and batch["mask"].sum(1).tolist() == [19, 5]
    assert torch.isnan(batch["pos"][1, 5:]).all() and (batch["x"][1, 5:] == 0).all()


def test_manifest_path_escaping_the_store_is_refused(eegmat_store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(eegmat_store, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["recordings"][0]["file"] = "../../../etc/passwd"
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="escapes the store"):
        WindowStore(copy)


def test_datamodule_batches(eegmat_store):
    from neurofm.data.datamodule import StoreDataModule

    dm = StoreDataModule(str(eegmat_store), batch_size=8, val_subjects=["01"], test_subjects=["02"], normalize=True)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (8, 19, 800) and batch["mask"].all()
    assert set(batch["subject"]) == {"00"}
    assert abs(float(batch["x"].mean())) < 1.0  # z-scored with training statistics
