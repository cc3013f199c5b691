"""Connectome pipeline: planted ground truth, real ECoG seizure onset, EEGMAT conditions, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurofm.connectome.affinity import pair_index, pairs_to_matrix, windowed_affinity
from neurofm.connectome.pipeline import ConnectomeConfig, Source, run_connectome
from neurofm.connectome.synthetic import Planted, planted_recording
from tests.conftest import run_cli


def _planted_sources(n: int = 4):
    out, planted = [], None
    for seed in range(n):
        x, planted = planted_recording(seed=seed)
        out.append(Source(f"rec{seed}", f"s{seed}", x, 200.0, [f"ch{i}" for i in range(x.shape[0])]))
    return out, planted


@pytest.fixture(scope="module")
def planted_result():
    sources, planted = _planted_sources()
    cfg = ConnectomeConfig(rank=4, window_s=4.0, step_s=1.0, n_surrogates=2, n_replicates=4)
    return run_connectome(sources, cfg), planted


def test_coderivative_is_vectorised_cosine_of_rectified_rises():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2000))
    aff = windowed_affinity(x, 200.0, band=None, window_s=2.0, step_s=1.0)
    from scipy.signal import hilbert

    env = np.abs(hilbert(x, axis=-1))
    env = (env - env.min(1, keepdims=True)) / (env.max(1, keepdims=True) - env.min(1, keepdims=True))
    rise = np.maximum(np.diff(env, axis=-1, prepend=env[:, :1]), 0)
    w = 3
    seg = rise[:, w * 200: w * 200 + 400]
    for k, (i, j) in enumerate(pair_index(5)):
        expect = seg[i] @ seg[j] / np.sqrt((seg[i] @ seg[i]) * (seg[j] @ seg[j]))
        assert aff.values[w, k] == pytest.approx(expect, rel=1e-4)
    assert aff.values.shape == (9, 10) and aff.values.dtype == np.float32
    assert pairs_to_matrix(aff.values[w], 5)[1, 0] == aff.values[w, 0]


def test_planted_communities_recovered(planted_result):
    from sklearn.metrics import adjusted_rand_score

    result, planted = planted_result
    n = len(result.ch_names)
    peaks = result.times[[int(np.argmax(c.time_course)) for c in result.components]]
    used = set()
    for p in planted:
        hits = [c for c, t in zip(result.components, peaks, strict=True)
                if not c.flat and p.interval[0] <= t < p.interval[1]]
        assert len(hits) == 1, f"one component must peak in {p.interval}, peaks at {peaks}"
        comp = hits[0]
        used.add(comp.index)
        truth = np.isin(np.arange(n), p.members).astype(int)
        best = np.bincount(comp.communities.membership[p.members]).argmax()
        pred = (comp.communities.membership == best).astype(int)
        assert adjusted_rand_score(truth, pred) >= 0.95
        assert comp.p_value is not None and comp.p_value <= 1 / 3  # beats every surrogate component
    (baseline,) = [c for c in result.components if c.index not in used]
    assert baseline.flat  # the fourth component is the flat baseline, and it is flagged


def test_ecog_component_rises_after_seizure_onset():
    from neurofm.connectome.sources import sources_from_dataset
    from neurofm.datasets import get_dataset

    sources = sources_from_dataset(get_dataset("epilepsy-ecog"))
    (onset,) = [e.onset for e in sources[0].events if e.label == "seizure_onset"]
    result = run_connectome(sources, ConnectomeConfig(rank=3, band=(13.0, 30.0), window_s=1.0, step_s=0.25,
                                                      n_surrogates=0, n_replicates=3))
    ratios = [c.time_course[result.times > onset].mean() / c.time_course[result.times < onset].mean()
              for c in result.components if not c.flat]
    assert max(ratios) > 2.0


def test_eegmat_condition_loadings_have_a_paired_test():
    from neurofm.connectome.sources import sources_from_dataset
    from neurofm.datasets import get_dataset

    sources = sources_from_dataset(get_dataset("eegmat"), limit=None, max_seconds=30.0)
    sources = [s for s in sources if int(s.subject) < 8]
    result = run_connectome(sources, ConnectomeConfig(rank=3, n_surrogates=0, n_replicates=2))
    for c in result.components:
        assert c.contrast["test"].startswith("wilcoxon") and c.contrast["n"] == 8
        assert 0.0 <= c.contrast["p_value"] <= 1.0 and set(c.contrast["means"]) == {"arithmetic", "rest"}


@pytest.mark.parametrize("method", ["aec", "plv", "wpli"])
def test_mne_connectivity_methods(method):
    x, _ = planted_recording(n_chans=6, duration_s=20.0, seed=1, planted=[Planted(np.arange(3), (4.0, 12.0))])
    aff = windowed_affinity(x, 200.0, method=method, band=(8.0, 13.0), window_s=4.0, step_s=2.0)
    assert aff.values.shape == (9, 15) and np.all((aff.values >= 0) & (aff.values <= 1))


def test_affinity_into_memmap(tmp_path):
    x, _ = planted_recording(n_chans=8, duration_s=30.0, seed=2, planted=[Planted(np.arange(4), (5.0, 20.0))])
    out = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.float32, shape=(27, 28))
    aff = windowed_affinity(x, 200.0, window_s=4.0, step_s=1.0, out=out)
    assert aff.values is out and np.isfinite(np.asarray(out)).all()


def test_cli_on_a_store(eegmat_store, tmp_path):
    proc = run_cli("connectome", "--store", str(eegmat_store), "--out", str(tmp_path / "c"), "--rank", "2",
                   "--surrogates", "1", "--replicates", "2")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "c" / "connectome.json").read_text())
    assert summary["rank"] == 2 and len(summary["components"]) == 2 and len(summary["sources"]) == 6
    assert all(len(c["communities"]) == 19 for c in summary["components"])
    arrays = np.load(tmp_path / "c" / "connectome.npz")
    assert arrays["pair_factors"].shape == (171, 2) and arrays["loadings"].shape == (6, 2)
    html = (tmp_path / "c" / "report.html").read_text()
    assert "Component 1" in html and "surrogate p" in html


def test_cli_rank_scan_and_bad_method(tmp_path):
    proc = run_cli("connectome", "--dataset", "epilepsy-ecog", "--out", str(tmp_path / "c"), "--ranks", "2", "3",
                   "--replicates", "2", "--surrogates", "0", "--window-s", "1", "--step-s", "0.5", "--no-report")
    assert proc.returncode == 0, proc.stderr
    scan = json.loads((tmp_path / "c" / "connectome.json").read_text())["scan"]
    assert scan["ranks"] == [2, 3] and scan["chosen"] in (2, 3) and len(scan["errors"][0]) == 2
    proc = run_cli("connectome", "--dataset", "epilepsy-ecog", "--out", str(tmp_path / "d"), "--method", "plvv")
    assert proc.returncode == 2 and "Did you mean 'plv'" in proc.stderr and "Traceback" not in proc.stderr
