"""The filtered output matches MNE's own filters on the same data; sEEG bipolar follows the shafts."""

import numpy as np

from neurofm.data.store import StoreWriter
from neurofm.datasets import get_dataset
from neurofm.preprocessing import recipe as R
from neurofm.preprocessing.run import process_recording


def _process(tmp_path, dataset, recipe, ref_index=0):
    ds = get_dataset(dataset)
    ref = ds.recordings()[ref_index]
    res = process_recording(ds, ref, recipe, StoreWriter(tmp_path))
    assert res["status"] == "done", res
    import json

    meta = json.loads((tmp_path / "shards" / f"{ref.id}.json").read_text())
    return ds, ref, meta, np.load(tmp_path / "shards" / meta["file"])


def test_filtered_output_matches_mne(tmp_path):
    import mne

    recipe = R.parse_recipe({"name": "f", "mode": "exact", "steps": [
        {"pick": {"types": ["eeg"], "require_positions": True}}, {"notch": {"freqs": "line"}},
        {"bandpass": {"l_freq": 0.5, "h_freq": 40.0}}, {"resample": {"sfreq": 200.0}},
        {"window": {"window_s": 4.0, "stride_s": 4.0}}]})
    ds, ref, meta, windows = _process(tmp_path, "eegmat", recipe, ref_index=5)
    raw = mne.io.read_raw_edf(ref.path, preload=True, verbose="error")
    picks = [ch["original"] for ch in meta["channels"]]
    assert "EEG T3" in picks  # renamed T7 in the store, original label kept
    raw.pick(picks)
    raw.notch_filter([50.0, 100.0, 150.0, 200.0], verbose="error")
    raw.filter(0.5, 40.0, verbose="error")
    raw.resample(200.0, verbose="error")
    expect = raw.get_data() * 1e6
    for k, start in enumerate(meta["starts"]):
        np.testing.assert_allclose(windows[k], expect[:, start:start + 800], rtol=1e-5, atol=1e-3)


def test_eegmmidb_r04_event_windows(tmp_path):
    recipe = R.resolve_recipe("eeg-200hz-events")
    ds = get_dataset("eegmmidb")
    (ref,) = [r for r in ds.recordings() if r.id == "S001_R04"]
    res = process_recording(ds, ref, recipe, StoreWriter(tmp_path))
    assert res["status"] == "done", res
    import json

    meta = json.loads((tmp_path / "shards" / "S001_R04.json").read_text())
    labels = meta["labels"]
    # R04 is imagined left vs right fist: 15 T0, 8 T1, 7 T2 cues of 4.1-4.2 s
    assert labels.count("left_fist") == 8 and labels.count("right_fist") == 7 and labels.count("rest") == 15
    assert meta["info"] == {"task": "left-right-fist", "execution": "imagined"}
    assert res["n_windows"] == 30 and np.load(tmp_path / "shards" / "S001_R04.npy").shape == (30, 64, 800)


def test_seeg_bipolar_along_shafts_keeps_atlas(tmp_path):
    _, _, meta, windows = _process(tmp_path, "epilepsy-seeg", R.resolve_recipe("seeg-1000hz"))
    names = [c["name"] for c in meta["channels"]]
    # 88 contacts on 6 shafts (L' has 14, numbered out of order in the file) → 82 neighbouring pairs
    assert len(names) == 82 and "L'8-L'9" in names and "L'14-N'1" not in names
    assert all(c["type"] == "seeg" for c in meta["channels"])
    first = meta["channels"][names.index("L'1-L'2")]
    assert first["destriuex"] == "Right-Cerebral-White-Matter/ctx_rh_G_front_sup"
    assert windows.shape == (6, 82, 3000) and meta["patch_size"] == 100 and meta["sfreq"] == 1000.0


def test_ecog_windows_labelled_around_seizure_onset(tmp_path):
    _, _, meta, _ = _process(tmp_path, "epilepsy-ecog", R.resolve_recipe("seeg-1000hz"))
    starts = np.array(meta["starts"]) / meta["sfreq"]
    centers = starts + 1.5
    expected = ["ictal" if c >= 10.22874 else "preictal" for c in centers]
    assert meta["labels"] == expected and "ictal" in expected and "preictal" in expected


def test_gripforce_target_windows(tmp_path):
    _, _, meta, windows = _process(tmp_path, "gripforce", R.resolve_recipe("seeg-1000hz"))
    assert meta["target"] == "MOV_RIGHT" and "MOV_RIGHT" not in [c["name"] for c in meta["channels"]]
    target = np.load(tmp_path / "shards" / meta["target_file"])
    assert target.shape == (windows.shape[0], windows.shape[2]) and target.std() > 0


def test_qc_welch_matches_scipy():
    from scipy.signal import welch

    from neurofm.preprocessing.steps import welch_psd

    x = np.random.default_rng(0).standard_normal((3, 10001))
    x -= x.mean(axis=1, keepdims=True)
    f, p = welch(x, fs=500.0, nperseg=1000, detrend=False)
    f2, p2 = welch_psd(x, 500.0)
    np.testing.assert_allclose(f2, f)
    np.testing.assert_allclose(p2, p, rtol=1e-10, atol=1e-14)


def test_vectorised_fir_equals_mne_overlap_add():
    """Regression guard for the batched FIR: same numbers as MNE's per-channel overlap-add."""
    import mne

    from neurofm.preprocessing._fir import filter_zero_phase, fir_kernel
    from tests.conftest import EEGMAT

    raw = mne.io.read_raw_edf(EEGMAT / "task" / "Subject07_2.edf", preload=True, verbose="error")
    x = raw.get_data()[:19]
    for args in ((500.0, 0.1, 75.0), (500.0, 1.0, None), (500.0, None, 40.0),
                 (500.0, (50.625, 100.75), (49.375, 99.25), 0.5, 0.5)):
        expect = raw.copy().pick(raw.ch_names[:19]).filter(
            *[list(a) if isinstance(a, tuple) else a for a in args[1:3]],
            l_trans_bandwidth=args[3] if len(args) > 3 else "auto",
            h_trans_bandwidth=args[4] if len(args) > 4 else "auto", verbose="error").get_data()
        got = filter_zero_phase(x, fir_kernel(*args))
        np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12 * np.abs(expect).max())
    short = x[:, :900]  # signal shorter than the 0.1-Hz kernel: MNE pads with zeros beyond one reflection
    expect = mne.filter.filter_data(short, 500.0, 0.1, 75.0, verbose="error")
    np.testing.assert_allclose(filter_zero_phase(short, fir_kernel(500.0, 0.1, 75.0)), expect, atol=1e-12 * np.abs(expect).max())


def test_seeg_laplacian_subtracts_shaft_neighbours(tmp_path):
    import mne

    recipe = R.parse_recipe({"name": "lap", "modality": "seeg", "steps": [
        {"pick": {"types": ["seeg"]}}, {"rereference": {"kind": "laplacian"}},
        {"window": {"window_s": 2.0, "stride_s": 2.0}}]})
    ds, ref, meta, windows = _process(tmp_path, "epilepsy-seeg", recipe)
    names = [c["name"] for c in meta["channels"]]
    assert len(names) == 88 and all(c["type"] == "seeg" for c in meta["channels"])
    raw = mne.io.read_raw_edf(ref.path, preload=True, verbose="error")
    x = raw.get_data() * 1e6
    col = {n: i for i, n in enumerate(raw.ch_names)}
    k = names.index("L'5")
    expect = x[col["L'5"]] - (x[col["L'4"]] + x[col["L'6"]]) / 2
    np.testing.assert_allclose(windows[0, k], expect[:2000], rtol=1e-5, atol=1e-3)
    end = names.index("L'14")  # last contact: only one neighbour
    np.testing.assert_allclose(windows[0, end], (x[col["L'14"]] - x[col["L'13"]])[:2000], rtol=1e-5, atol=1e-3)


def test_bids_power_line_frequency_drives_the_notch(tmp_path):
    """bids:PATH datasets declare no line frequency; the *_ieeg.json sidecar's PowerLineFrequency is used."""
    from tests.conftest import IEEG

    recipe = R.parse_recipe({"name": "n", "steps": [{"pick": {"types": ["ecog"]}}, {"notch": {"freqs": "line"}},
                                                     {"window": {"window_s": 2.0}}]})
    ds = get_dataset(f"bids:{IEEG / 'gripforce-ecog-lfp'}")
    assert ds.line_freq is None
    res = process_recording(ds, ds.recordings()[0], recipe, StoreWriter(tmp_path))
    assert res["status"] == "done" and not any("notch skipped" in n for n in res["notes"])


def test_robust_std_equals_the_numpy_median_formula_on_real_recordings():
    """robust_std (one partition per median) equals 1.4826 × np.median(|x − np.median(x)|) bit for bit, so
    bad-channel decisions cannot change: real EEGMMIDB (even length) and EEGMAT (cut to an odd length) data,
    a NaN sample (the nanmedian path), a transposed axis; the input is left untouched."""
    import mne

    from neurofm.preprocessing.steps import robust_std
    from tests.conftest import EEGMAT, MMIDB

    def reference(x, axis=-1):
        median = np.median if np.isfinite(x).all() else np.nanmedian
        return 1.4826 * median(np.abs(x - median(x, axis=axis, keepdims=True)), axis=axis)

    mmidb = mne.io.read_raw_edf(MMIDB / "S001" / "S001R03.edf", preload=True, verbose="error").get_data()
    eegmat = mne.io.read_raw_edf(EEGMAT / "rest" / "Subject02_1_first62s.edf", preload=True, verbose="error").get_data()
    with_nan = mmidb[:8, :5000].copy()
    with_nan[3, 100] = np.nan
    for x, axis in [(mmidb, -1), (eegmat[:, :-1], -1), (eegmat[:, :-1].T, 0), (with_nan, -1)]:
        before = x.copy()
        got = robust_std(x, axis=axis)
        np.testing.assert_array_equal(got, reference(x, axis=axis))
        np.testing.assert_array_equal(x, before)
        assert np.isfinite(got).all() and (got > 0).all()
