"""Streaming (mode: fast): chunked output equals whole-recording output; the fast filters stay close to MNE's."""

import json

import numpy as np
import pytest

from neurofm._errors import ConfigError
from neurofm.data.store import StoreWriter
from neurofm.datasets import get_dataset
from neurofm.preprocessing import recipe as R
from neurofm.preprocessing import stream
from neurofm.preprocessing._fir import fir_kernel
from neurofm.preprocessing.run import process_recording
from tests.conftest import EEGMAT, MMIDB, run_cli

NOTCH = ((50.625,), (49.375,), 0.5, 0.5)  # 50-Hz notch at 200 Hz (its harmonics: in the anti-alias stop band)
NOTCH_60 = ((60.65,), (59.35,), 0.5, 0.5)  # 60-Hz notch at 160 Hz (EEGMMIDB; 120 Hz is above its Nyquist)


def _eeg200_stages():
    """The stages eeg-200hz gives a 500-Hz recording with 50-Hz mains: band-pass fused with the anti-alias
    low-pass at 500 Hz, polyphase 2/5 (image rejection only), then the notch at 200 Hz."""
    return stream.fuse([stream.Fir(fir_kernel(500.0, 0.1, 75.0)), *stream.antialias_fir(500.0, 200.0),
                        stream.Fir(fir_kernel(200.0, *NOTCH))])


def test_plan_runs_the_filters_at_the_lower_rate_and_keeps_kernels_shared(tmp_path, monkeypatch):
    """On real 500-Hz EEGMAT recordings: band-pass and anti-alias low-pass fused, polyphase 2/5, notch at 200 Hz."""
    ds = get_dataset("eegmat", root=EEGMAT)
    plans, real_plan = [], stream.plan
    monkeypatch.setattr(stream, "plan", lambda *a: plans.append(real_plan(*a)) or plans[-1])
    for ref in ds.recordings()[:2]:
        _run(tmp_path, ds, ref, R.resolve_recipe("eeg-200hz"), None)
    first, second = (p[2] for p in plans)
    assert [type(st).__name__ for st in first] == ["Fir", "Resample", "Fir"]
    assert (first[1].up, first[1].down) == (2, 5) and len(first[1].h) < 40  # images only: a few taps
    for got, want in zip(first, _eeg200_stages(), strict=True):
        np.testing.assert_allclose(got.h, want.h, rtol=0, atol=1e-12)
    assert second[0].h is first[0].h  # the fused kernel is made once per dataset, not per recording


def _mmidb_stages():
    """The stages eeg-200hz gives a 160-Hz EEGMMIDB run: notch and band-pass fused, then polyphase 5/4 upsampling."""
    return stream.fuse([stream.Fir(fir_kernel(160.0, *NOTCH_60)), stream.Fir(fir_kernel(160.0, 0.1, 75.0)),
                        *stream.antialias_fir(160.0, 200.0)])


def test_plan_upsamples_eegmmidb_by_block_matrix_products(tmp_path, monkeypatch):
    """A real 160-Hz EEGMMIDB run: one fused FIR at 160 Hz, then 5/4 polyphase on the matrix-product path."""
    ds = get_dataset("eegmmidb", root=MMIDB)
    plans, real_plan = [], stream.plan
    monkeypatch.setattr(stream, "plan", lambda *a: plans.append(real_plan(*a)) or plans[-1])
    (ref,) = [r for r in ds.recordings() if r.id == "S001_R03"]
    _, meta, windows = _run(tmp_path, ds, ref, R.resolve_recipe("eeg-200hz"), None)
    stages = plans[0][2]
    assert [type(st).__name__ for st in stages] == ["Fir", "Resample"] and (stages[1].up, stages[1].down) == (5, 4)
    assert stages[1]._periods() is not None  # blocks of periods as matrix products, not upfirdn
    for got, want in zip(stages, _mmidb_stages(), strict=True):
        np.testing.assert_allclose(got.h, want.h, rtol=0, atol=1e-12)
    assert meta["sfreq"] == 200.0 and windows.shape[1:] == (64, 800) and np.isfinite(windows).all()


def test_polyphase_blocks_equal_upfirdn_and_chunking_on_real_recordings():
    """The matrix-product polyphase path equals scipy's upfirdn (the path it replaced) to float32 rounding on
    a real EEGMMIDB run (160 -> 200 Hz) and a real EEGMAT one (500 -> 200 Hz), over spans at awkward offsets,
    and chunked processing of the EEGMMIDB run equals the whole run."""
    import mne

    cases = [(MMIDB / "S001" / "S001R03.edf", _mmidb_stages()), (EEGMAT / "task" / "Subject07_2.edf", _eeg200_stages())]
    for path, stages in cases:
        x = mne.io.read_raw_edf(path, preload=True, verbose="error").get_data()[:19].astype(np.float32)
        resample = next(st for st in stages if isinstance(st, stream.Resample))
        assert resample._periods() is not None
        plain = stream.Resample(resample.up, resample.down, resample.h)
        plain._cache["T"] = None  # force upfirdn
        n_out = resample.n_out(x.shape[1])
        get = lambda lo, hi, x=x: x[:, lo:hi]  # noqa: E731
        for a, b in [(0, n_out), (1, 2), (7, 4_003), (n_out - 13, n_out), (12_345, 12_346)]:
            got, want = resample(get, x.shape[1], a, b), plain(get, x.shape[1], a, b)
            assert got.shape == want.shape == (19, b - a)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())
    x = mne.io.read_raw_edf(cases[0][0], preload=True, verbose="error").get_data()[:19]
    whole = stream.process_array(x, cases[0][1])
    assert whole.shape == (19, 25_000)  # 20 000 samples at 160 Hz
    for chunk in (997, 4001, 12_399):
        np.testing.assert_allclose(stream.process_array(x, cases[0][1], chunk=chunk), whole,
                                   rtol=0, atol=2e-6 * np.abs(whole).max())


def _run(tmp_path, ds, ref, recipe, max_memory):
    res = process_recording(ds, ref, recipe, StoreWriter(tmp_path), max_memory=max_memory)
    assert res["status"] == "done", res
    meta = json.loads((tmp_path / "shards" / f"{ref.id}.json").read_text())
    return res, meta, np.load(tmp_path / "shards" / meta["file"])


def test_chunks_at_awkward_boundaries_equal_the_whole_recording():
    import mne

    raw = mne.io.read_raw_edf(EEGMAT / "task" / "Subject07_2.edf", preload=True, verbose="error")
    x = raw.get_data()[:19]
    stages = _eeg200_stages()
    whole = stream.process_array(x, stages)
    assert whole.dtype == np.float32 and whole.shape == (19, round(x.shape[1] * 0.4))
    for chunk in (997, 4001, 12_399):  # output samples per chunk; the recording has 12 400
        np.testing.assert_allclose(stream.process_array(x, stages, chunk=chunk), whole,
                                   rtol=0, atol=2e-6 * np.abs(whole).max())


def test_streamed_store_equals_one_chunk_and_reads_are_bounded(tmp_path, monkeypatch):
    """sub-02 rest: Fp2 is flagged noisy and interpolated from chunk statistics, as in the in-memory path."""
    ds = get_dataset("eegmat")
    (ref,) = [r for r in ds.recordings() if r.id == "sub-02_rest"]
    recipe = R.resolve_recipe("eeg-200hz")
    assert recipe.mode == "fast"
    res_big, meta_big, big = _run(tmp_path / "big", ds, ref, recipe, "1G")

    import mne

    spans = []
    get_data = mne.io.BaseRaw.get_data

    def spy(self, picks=None, start=0, stop=None, *args, **kwargs):
        spans.append((stop if stop is not None else self.n_times) - start)
        return get_data(self, picks, start, stop, *args, **kwargs)

    monkeypatch.setattr(mne.io.BaseRaw, "get_data", spy)
    res, meta, small = _run(tmp_path / "small", ds, ref, recipe, "32M")  # 4 chunks of 4 windows
    assert max(spans) <= 32 * 2**20 // (stream.BYTES_PER_SAMPLE * 19) < 31_000  # never the whole recording at once
    assert len(spans) > 6
    np.testing.assert_allclose(small, big, rtol=0, atol=1e-5 * np.abs(big).max())
    assert meta["starts"] == meta_big["starts"] and meta["channels"] == meta_big["channels"]
    assert list(meta["bads"]) == ["Fp2"] and meta["bads"] == meta_big["bads"] and meta["interpolated"] == ["Fp2"]

    monkeypatch.undo()
    _, meta_x, exact = _run(tmp_path / "exact", ds, ref, recipe.model_copy(update=dict(mode="exact")), None)
    assert meta_x["bads"].keys() == meta["bads"].keys() and exact.shape == big.shape  # same decisions, same layout
    assert meta_x["recipe_hash"] != meta["recipe_hash"]  # the mode is part of the recipe: stores are not mixed


def _gain(y, sf, f, edge):
    """Complex amplitude of frequency ``f`` in ``y`` (least squares on the interior)."""
    t = np.arange(len(y)) / sf
    a = np.stack([np.cos(2 * np.pi * f * t), np.sin(2 * np.pi * f * t)], 1)[edge:-edge]
    c, *_ = np.linalg.lstsq(a, y[edge:-edge], rcond=None)
    return c[0] - 1j * c[1]


def test_fast_mode_against_mne_passband_and_stopband():
    """Passband (<= 0.8 x new Nyquist) response within 1e-3 of MNE's; stop band at least as attenuated.

    MNE's path: notch_filter, filter and FFT resampling (npad=0: with npad="auto" MNE's output is shifted by
    half an output sample on many lengths, see the README).
    """
    import mne

    sf, n = 500.0, 30_000
    t = np.arange(n) / sf
    pass_f = [0.3, 1.0, 7.3, 13.0, 30.0, 49.0, 51.5, 62.0, 74.0, 79.5]
    stop_f = [94.0, 97.0, 99.0, 101.0, 120.0, 140.0, 180.0, 230.0, 249.0]
    x = np.stack([np.cos(2 * np.pi * f * t) for f in pass_f + stop_f])
    fast = stream.process_array(x, _eeg200_stages()).astype(np.float64)
    raw = mne.io.RawArray(x, mne.create_info(len(x), sf, "misc"), verbose="error")
    raw.notch_filter([50.0, 100.0, 150.0, 200.0], picks="all", verbose="error")
    raw.filter(0.1, 75.0, picks="all", verbose="error")
    raw.resample(200.0, npad=0, verbose="error")
    ref = raw.get_data()
    edge = 3500  # 17.5 s at 200 Hz: past the edge effects of the 33-s long 0.1-Hz high-pass kernel
    for i, f in enumerate(pass_f):
        err = abs(_gain(fast[i], 200.0, f, edge) - _gain(ref[i], 200.0, f, edge))
        assert err <= 1e-3, (f, err)
    rms = lambda y: np.sqrt(np.mean(y[edge:-edge] ** 2) * 2)  # noqa: E731  (amplitude of a unit cosine: 1)
    worst_fast = max(rms(fast[len(pass_f) + k]) for k in range(len(stop_f)))
    worst_mne = max(rms(ref[len(pass_f) + k]) for k in range(len(stop_f)))
    assert worst_fast <= worst_mne < 3e-3  # MNE's worst: the band-pass stop-band edge at 93.75 Hz


def test_upsampling_160_to_200_against_mne():
    """EEGMMIDB's case (160 -> 200 Hz, 60-Hz notch): passband (<= 0.8 x the input Nyquist, 64 Hz) within 1e-3
    of MNE's notch_filter + filter + FFT resampling; the band-pass stop edge (77-80 Hz) at least as attenuated;
    the images of the upsampling (at 160 - f, folded below 100 Hz) 80 dB down by design (MNE's FFT
    resampling of an interior stretch leaves none: ~1e-8)."""
    import mne

    sf, n = 160.0, 24_000
    t = np.arange(n) / sf
    pass_f = [0.3, 1.0, 7.3, 13.0, 30.0, 45.0, 59.0, 61.5, 64.0]
    stop_f = [77.0, 78.5, 79.5]
    x = np.stack([np.cos(2 * np.pi * f * t) for f in pass_f + stop_f])
    fast = stream.process_array(x, _mmidb_stages()).astype(np.float64)
    raw = mne.io.RawArray(x, mne.create_info(len(x), sf, "misc"), verbose="error")
    raw.notch_filter([60.0], picks="all", verbose="error")
    raw.filter(0.1, 75.0, picks="all", verbose="error")
    raw.resample(200.0, npad=0, verbose="error")
    ref = raw.get_data()
    edge = 3500  # 17.5 s at 200 Hz: past the edge effects of the 0.1-Hz high-pass kernel
    for i, f in enumerate(pass_f):
        err = abs(_gain(fast[i], 200.0, f, edge) - _gain(ref[i], 200.0, f, edge))
        assert err <= 1e-3, (f, err)
        image = 160.0 - f if 160.0 - f <= 100.0 else 40.0 + f
        assert abs(_gain(fast[i], 200.0, image, edge)) <= 1e-4, (f, image)
    rms = lambda y: np.sqrt(np.mean(y[edge:-edge] ** 2) * 2)  # noqa: E731  (amplitude of a unit cosine: 1)
    for k, f in enumerate(stop_f):
        assert rms(fast[len(pass_f) + k]) <= rms(ref[len(pass_f) + k]), f


def test_memory_budget_parsing_and_split():
    assert stream.parse_memory("1G") == 2**30 and stream.parse_memory("512M") == 2**29
    assert stream.parse_memory("1.5GB") == int(1.5 * 2**30)
    assert stream.worker_budget("1G", 2, 48) == 2**29 and stream.worker_budget("1G", 4, 2) == 2**29
    with pytest.raises(ConfigError, match="not a size"):
        stream.parse_memory("lots")
    from threadpoolctl import threadpool_info

    inner = stream.limited(threadpool_info)
    assert inner and all(p["num_threads"] == 1 for p in inner)


def test_cli_exact_flag_and_bad_max_memory(tmp_path):
    from tests.conftest import copy_eegmat

    data = copy_eegmat(tmp_path / "eegmat", ("00",))
    proc = run_cli("preprocess", "--dataset", "eegmat", "--root", str(data), "--pipeline", "eeg-200hz",
                   "--out", str(tmp_path / "s"), "--no-report", "--exact", "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["recipe"]["mode"] == "exact"
    proc = run_cli("preprocess", "--dataset", "eegmat", "--root", str(data), "--pipeline", "eeg-200hz",
                   "--out", str(tmp_path / "t"), "--max-memory", "lots")
    assert proc.returncode == 2 and "--max-memory 'lots'" in proc.stderr and "Traceback" not in proc.stderr


def test_statistics_after_a_filter_fall_back_to_memory(tmp_path):
    """bad_channels after a band-pass needs filtered statistics: that recipe is processed in memory, and says so."""
    ds = get_dataset("eegmat")
    recipe = R.parse_recipe({"name": "late-bads", "steps": [
        {"pick": {"types": ["eeg"], "require_positions": True}}, {"bandpass": {"l_freq": 1.0, "h_freq": 40.0}},
        {"bad_channels": {}}, {"window": {"window_s": 4.0}}]})
    assert stream.supported(recipe) is not None
    res, meta, windows = _run(tmp_path, ds, ds.recordings()[0], recipe, None)
    assert any("processed in memory, not streamed" in n for n in meta["notes"]) and windows.shape[1:] == (19, 2000)
