"""Classical baselines on real windows: features, selection on validation, pickle-free save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import welch

from neurofm._errors import ContractError
from neurofm.decoding.classical import BandPowerLR, TangentSpaceLR
from neurofm.decoding.decoder import Decoder
from neurofm.decoding.finetune import finetune


def test_band_power_features_are_log_welch_band_means(eegmat_data):
    x = eegmat_data.x[:3]
    bp = BandPowerLR(sfreq=200.0)
    f = bp.features(x)
    freqs, psd = welch(x[1, 4].astype(np.float64), fs=200.0, nperseg=400)
    alpha = np.log10(psd[(freqs >= 8) & (freqs < 13)].mean() + 1e-12)
    assert f.shape == (3, 5 * 19)
    assert f[1, 2 * 19 + 4] == pytest.approx(alpha, rel=1e-9)  # band-major: alpha is the third band
    assert list(BandPowerLR(sfreq=60.0).kwargs["bands"]) == ["delta", "theta", "alpha", "beta"]  # gamma > Nyquist


@pytest.mark.parametrize("model", ["bandpower-lr", "tangentspace-lr"])
def test_classical_decoders_select_on_validation_and_reload_without_pickle(eegmat_data, model, tmp_path):
    from sklearn.linear_model import LogisticRegression

    res = finetune(eegmat_data.task, model, data=eegmat_data, out=tmp_path, verbose=False)
    clf = res.decoder.classical
    grid = res.record["train"]["val_grid"]
    chosen = res.record["train"]["chosen"]
    assert grid[f"{chosen:g}"] == max(grid.values())  # C chosen on the validation split
    assert res.metrics["val"]["balanced_accuracy"] == pytest.approx(grid[f"{chosen:g}"])
    # The NumPy prediction from the saved coefficients equals scikit-learn's own.
    idx = eegmat_data.splits()
    f_tr = clf.features(eegmat_data.x[idx["train"]])
    z = (f_tr - f_tr.mean(0)) / np.where(f_tr.std(0) > 0, f_tr.std(0), 1)
    sk = LogisticRegression(C=chosen, class_weight="balanced", max_iter=2000).fit(z, eegmat_data.y[idx["train"]])
    f_te = clf.features(eegmat_data.x[idx["test"]])
    z_te = (f_te - f_tr.mean(0)) / np.where(f_tr.std(0) > 0, f_tr.std(0), 1)
    np.testing.assert_allclose(res.predictions["test"][1], sk.predict_proba(z_te), rtol=1e-6, atol=1e-8)
    dec = Decoder.load(tmp_path)
    np.testing.assert_allclose(dec.predict(eegmat_data.x[idx["test"]], eegmat_data.mask[idx["test"]]),
                               res.predictions["test"][1], rtol=1e-12)
    assert sorted(p.name for p in (tmp_path / "decoder").iterdir()) == ["decoder.json", "decoder.safetensors"]
    cfg = json.loads((tmp_path / "decoder" / "decoder.json").read_text())
    assert cfg["family"] == "classical" and cfg["build"]["kwargs"]["sfreq"] == 200.0


def test_tangent_space_on_a_single_channel_and_missing_channels(eegmat_data):
    x, y = eegmat_data.x, eegmat_data.y
    ts = TangentSpaceLR(sfreq=200.0, band=[8.0, 30.0])
    ts.fit(x[:60, :1], y[:60], x[60:, :1], y[60:], metric="balanced_accuracy", n_classes=2)
    assert ts.reference.shape == (1, 1) and ts.predict(x[:5, :1]).shape == (5, 2)
    bp = BandPowerLR(sfreq=200.0).fit(x[:60], y[:60], x[60:], y[60:], metric="balanced_accuracy", n_classes=2)
    mask = eegmat_data.mask[:5].copy()
    mask[:, 3] = False  # Fz absent, e.g. data from another montage
    with pytest.raises(ContractError, match=r"1 channel\(s\) of the layout absent from 5 window\(s\); classical decoders need every channel"):
        bp.predict(x[:5], mask[:, :])
