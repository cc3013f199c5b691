"""The frozen-feature probe (scripts/bench/feature_probe.py) scores information that is there, and only that."""

from __future__ import annotations

import numpy as np

from tests.bench_scripts import load_bench


def _windows(rng, n=120, sfreq=100.0):
    """Two homologous channels (C3, C4) and one other, with per-window alpha and beta amplitudes drawn at random."""
    t = np.arange(int(2 * sfreq)) / sfreq
    amps = rng.uniform(0.2, 2.0, size=(n, 3, 2))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 3, 2))
    x = (amps[..., 0, None] * np.sin(2 * np.pi * 10 * t + phase[..., 0, None])
         + amps[..., 1, None] * np.sin(2 * np.pi * 20 * t + phase[..., 1, None])
         + 0.3 * rng.standard_normal((n, 3, len(t))))
    return x.astype(np.float32), amps, sfreq


def test_the_probe_finds_band_power_that_features_encode_and_none_in_noise():
    fp = load_bench("feature_probe")
    rng = np.random.default_rng(0)
    x, amps, sfreq = _windows(rng)
    subjects = np.repeat(np.array(["a", "b", "c", "d"]), len(x) // 4)
    rel, lat, pairs = fp.band_targets(x, sfreq, ["C3", "C4", "Pz"])
    assert pairs == [(0, 1)]
    # features that carry each channel's log alpha and beta amplitude (plus noise dimensions)
    informative = np.concatenate([np.log(amps), rng.standard_normal((*amps.shape[:2], 6))], -1)
    noise = rng.standard_normal(informative.shape)
    good = fp.probe(informative, rel, lat, pairs, subjects)
    bad = fp.probe(noise, rel, lat, pairs, subjects)
    assert good["rel alpha"] > 0.6 and good["rel beta"] > 0.6 and good["lateral beta"] > 0.6
    assert max(bad.values()) < 0.1
    # within-subject standardisation (the decoders' standardize_groups): zero mean and unit variance per subject
    z = fp.standardize_groups(informative[:, 0], subjects)
    for s in "abcd":
        assert np.allclose(z[subjects == s].mean(0), 0, atol=1e-9) and np.allclose(z[subjects == s].std(0), 1, atol=1e-6)


def test_the_decoding_probe_scores_a_label_the_features_carry_and_chance_for_noise():
    """decode(): leave-subjects-out logistic regression with C chosen on the training subjects only."""
    fp = load_bench("feature_probe")
    rng = np.random.default_rng(1)
    n, subjects = 160, np.repeat(np.array(["a", "b", "c", "d"]), 40)
    y = rng.integers(0, 2, n)
    signal = rng.standard_normal((n, 3, 8)) + 2.5 * y[:, None, None] * np.array([1.0] + [0.0] * 7)
    noise = rng.standard_normal((n, 3, 8))
    good = fp.decode(signal, y, subjects, folds=4)
    bad = fp.decode(noise, y, subjects, folds=4)
    assert len(good["folds"]) == 4 and good["mean"] > 0.8
    assert 0.3 < bad["mean"] < 0.7
