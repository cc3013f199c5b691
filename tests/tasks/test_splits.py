"""Task data and split protocols on real recordings: no subject in two splits, purged time blocks."""

from __future__ import annotations

import numpy as np
import pytest

from neurofm._errors import ConfigError, DatasetRootError
from neurofm.tasks.data import load_task, split_task
from neurofm.tasks.spec import Split, parse_task


def _eegmat_task(**split):
    return parse_task(dict(name="eegmat-3", dataset="eegmat", recipe="eeg-200hz", labels=["rest", "arithmetic"],
                           split=split or dict(by="subject", val=["01"], test=["02"])))


@pytest.fixture(scope="module")
def eegmat_data(eegmat_three, task_cache):
    return load_task(_eegmat_task(), root=eegmat_three, cache=task_cache, verbose=False)


def test_task_windows_are_the_stores_windows_with_mapped_labels(eegmat_data):
    d = eegmat_data
    assert d.x.shape == (90, 19, 800) and d.mask.all() and d.sfreq == 200.0
    assert sorted(set(d.subjects)) == ["00", "01", "02"]
    shard = np.load(d.store / "shards" / "sub-01_arithmetic.npy")
    sel = d.recordings == "sub-01_arithmetic"
    np.testing.assert_array_equal(d.x[sel], shard)
    assert (d.y[sel] == 1).all() and (d.y[d.recordings == "sub-01_rest"] == 0).all()
    assert np.isfinite(d.pos).all()  # 10-05 positions carried to the encoders


def test_subject_splits_never_share_a_subject(eegmat_data):
    d = eegmat_data
    protocols = [Split(by="subject", val=["01"], test=["02"]), Split(by="subject", train=["00"], val=["02"], test=["01"])]
    protocols += [Split(by="subject", val=0.3, test=0.3, seed=s) for s in range(6)]
    seen_test = set()
    for split in protocols:
        idx = split_task(d, split)
        subs = {k: set(d.subjects[v]) for k, v in idx.items()}
        assert all(subs.values())
        assert not (subs["train"] & subs["val"] or subs["train"] & subs["test"] or subs["val"] & subs["test"])
        assert sum(len(v) for v in idx.values()) == len(d.y)
        seen_test |= subs["test"]
    assert len(seen_test) > 1  # the seed changes which subject is held out


def test_split_errors_name_the_ids(eegmat_data):
    with pytest.raises(ConfigError, match=r"val subject \['99'\] not in the data") as info:
        split_task(eegmat_data, Split(by="subject", val=["99"], test=["02"]))
    assert "'00', '01', '02'" in str(info.value)
    with pytest.raises(ConfigError, match="a subject would land in two splits"):
        split_task(eegmat_data, Split(by="recording", val=["sub-01_rest"], test=["sub-02_rest"]))


def test_a_label_missing_from_the_store_is_named(eegmat_three, task_cache):
    task = parse_task(dict(name="typo", dataset="eegmat", recipe="eeg-200hz", labels=["rest", "arithmatic"]))
    with pytest.raises(ConfigError, match="label 'arithmatic' never occurs.*Did you mean 'arithmetic'"):
        load_task(task, root=eegmat_three, cache=task_cache, verbose=False)


def test_missing_root_stops_before_work(tmp_path, task_cache):
    with pytest.raises(DatasetRootError, match="does not exist"):
        load_task(_eegmat_task(), root=tmp_path / "nowhere", cache=task_cache, verbose=False)


def test_run_split_keeps_only_the_tasks_runs(task_cache):
    d = load_task("eegmmidb-imagery-lr", cache=task_cache, verbose=False)
    idx = d.splits()
    assert {k: sorted(set(d.runs[v])) for k, v in idx.items()} == {"train": ["04"], "val": ["08"], "test": ["12"]}
    assert d.x.shape[1:] == (64, 800) and set(d.y.tolist()) == {0, 1}
    assert len(d.y) == 45  # 15 cues per run (T1/T2), rest cues left out by the label map


def test_time_split_blocks_and_purges_overlapping_windows(task_cache):
    d = load_task("ecog-seizure-onset", cache=task_cache, verbose=False)
    idx = d.splits()
    n_win = d.n_times
    assert d.sfreq == 250.0 and n_win == 250 and len(set(d.subjects)) == 1
    for k in ("train", "val", "test"):
        assert set(d.y[idx[k]].tolist()) == {0, 1}, k  # both states in every split
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        gap = np.abs(d.starts[idx[a]][:, None] - d.starts[idx[b]][None, :])
        assert gap.min() >= n_win, (a, b)  # no window shares a sample with one of another split
    for c in (0, 1):  # within each state: train before val before test
        s = {k: d.starts[idx[k]][d.y[idx[k]] == c] for k in idx}
        assert s["train"].max() < s["val"].min() and s["val"].max() < s["test"].min()
    dropped = len(d.y) - sum(len(v) for v in idx.values())
    assert dropped > 0  # the 50 % overlapping windows at block edges were purged


def test_recording_filter_typo_is_named(task_cache):
    task = parse_task(dict(name="typo", dataset="eegmmidb", recipe="eeg-200hz-events", recordings={"rn": ["04"]},
                           labels=["left_fist", "right_fist"], split=dict(by="run", val=["08"], test=["12"])))
    with pytest.raises(ConfigError, match="no field 'rn'. Did you mean 'run'") as info:
        load_task(task, cache=task_cache, verbose=False)
    assert "HINT: filter on" in str(info.value)
