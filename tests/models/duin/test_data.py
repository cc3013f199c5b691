"""Leakage-free protocol of the Du-IN data module: splits by time/recording, training-split statistics only."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from neurofm._errors import ConfigError, StoreError
from neurofm.data.dataset import WindowStore, channel_stats
from neurofm.data.duin import DuINDataModule, group_split, time_split, window_spans


def test_time_split_blocks_are_disjoint_and_ordered(seeg_store):
    store = WindowStore(seeg_store)
    idx = time_split(store, 0.2, 0.2, gap_s=0.5)
    spans = window_spans(store)
    train_end = spans[idx["train"], 1].max()
    val_start, val_end = spans[idx["val"], 0].min(), spans[idx["val"], 1].max()
    test_start = spans[idx["test"], 0].min()
    assert len(idx["train"]) and len(idx["val"]) and len(idx["test"])
    assert train_end + 500 <= val_start and val_end + 500 <= test_start  # no shared samples, 0.5-s gap


def test_leakage_guard_statistics_from_training_split_only(seeg_store, tmp_path):
    """Shift the test windows of a copy of the store by 10 mV: the normalisation must not move."""
    copy = tmp_path / "seeg"
    shutil.copytree(seeg_store, copy)
    clean = DuINDataModule([str(seeg_store)], names=["seeg"], split="time")
    clean.setup()
    test_idx = clean.indices["seeg"]["test"]
    rec = WindowStore(copy).recordings[0]
    shard = copy / "shards" / rec["file"]
    data = np.load(shard)
    data[test_idx] += 10_000.0  # µV, on the test windows only
    np.save(shard, data)

    shifted = DuINDataModule([str(copy)], names=["seeg"], split="time")
    shifted.setup()
    assert np.array_equal(shifted.indices["seeg"]["test"], test_idx)
    assert shifted.stats["seeg"] == clean.stats["seeg"]  # would differ if test windows fed the statistics
    leaky = channel_stats(WindowStore(copy), np.arange(len(data)))
    assert abs(leaky["L'1-L'2"][0] - clean.stats["seeg"]["L'1-L'2"][0]) > 100  # the shift is visible to a leaky mean
    # training windows come out z-scored, test windows carry the shift
    train = np.stack([shifted.splits["train"][k]["x"].numpy() for k in range(len(shifted.splits["train"]))])
    assert abs(train.mean()) < 0.05 and abs(train.std() - 1) < 0.05
    test = shifted.splits["test"][0]["x"].numpy()
    assert test.mean() > 10
    # the contract the modules write carries exactly these statistics
    record = shifted.normalization_record()
    assert record["channel_stats"]["seeg"]["L'1-L'2"] == clean.stats["seeg"]["L'1-L'2"]


def test_target_normalised_with_training_statistics(grip_store):
    dm = DuINDataModule([str(grip_store)], names=["grip"], split="time")
    dm.setup()
    store = dm.stores_[0]
    train_t = np.concatenate([store.target(int(i)) for i in dm.indices["grip"]["train"]])
    assert dm.target_stats["grip"] == pytest.approx((train_t.mean(), train_t.std()))
    item = dm.splits["train"][0]
    assert item["subject"] == "grip/testsub" and item["target"].shape == (1000,)


def test_group_split_is_stratified_and_disjoint():
    groups = np.repeat([f"{c}{i:02d}" for c in "ADE" for i in range(20)], 7)
    labels = np.repeat(["healthy", "interictal", "ictal"], 140)
    idx = group_split(groups, labels, 0.2, 0.2, seed=0)
    sets = {k: set(groups[v]) for k, v in idx.items()}
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        assert sorted(np.unique(labels[idx[split]], return_counts=True)[1]) == [7 * n] * 3
    again = group_split(groups, labels, 0.2, 0.2, seed=0)
    assert all(np.array_equal(again[k], idx[k]) for k in idx)  # same seed, same split


def test_config_mistakes(seeg_store):
    with pytest.raises(ConfigError, match="data split 'times'.*Did you mean 'time'.*HINT"):
        DuINDataModule([str(seeg_store)], split="times")
    with pytest.raises(ConfigError, match="shared_input names \\['bonn'\\].*HINT"):
        DuINDataModule([str(seeg_store)], names=["seeg"], shared_input=["bonn"]).setup()
    with pytest.raises(StoreError, match="no training windows"):
        DuINDataModule([str(seeg_store)], names=["seeg"], split="time", val_fraction=0.5, test_fraction=0.5).setup()
