"""Decoding metrics against scikit-learn / SciPy, on a real decoder's predictions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from neurofm.evaluation import metrics as M


@pytest.fixture(scope="module")
def predictions(eegmat_data):
    """Band power + LR probabilities on real windows (train on subject 00, predict all)."""
    from neurofm.decoding.classical import BandPowerLR

    x, y = eegmat_data.x, eegmat_data.y
    idx = eegmat_data.splits()
    clf = BandPowerLR(sfreq=200.0).fit(x[idx["train"]], y[idx["train"]], x[idx["val"]], y[idx["val"]],
                                       metric="balanced_accuracy", n_classes=2)
    return y, clf.predict(x)


def test_binary_scores_match_sklearn(predictions):
    y, proba = predictions
    pred = proba.argmax(1)
    s = M.classification_scores(y, proba)
    assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert s["kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert s["auroc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    np.testing.assert_array_equal(M.confusion_matrix(y, pred, 2), skm.confusion_matrix(y, pred))


def test_multiclass_and_regression_scores_match_sklearn(predictions):
    y2, proba2 = predictions
    # three classes from the real windows: rest, arithmetic of subject 00, arithmetic of the others
    y = y2.copy()
    y[(y2 == 1) & (np.arange(len(y)) % 2 == 0)] = 2
    p = np.column_stack([proba2[:, 0], proba2[:, 1] * 0.6, proba2[:, 1] * 0.4])
    s = M.classification_scores(y, p)
    assert s["auroc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p.argmax(1)))
    assert s["kappa"] == pytest.approx(skm.cohen_kappa_score(y, p.argmax(1)))
    assert np.isnan(M.auroc(np.zeros(5, int), p[:5]))  # one class: undefined, not a crash
    target, pred = proba2[:, 1] * 3 + 1, proba2[:, 1] + y2 * 0.5
    r = M.regression_scores(target, pred)
    assert r["pearson_r"] == pytest.approx(stats.pearsonr(target, pred)[0])
    assert r["r2"] == pytest.approx(skm.r2_score(target, pred))
    assert r["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(target, pred)))


def test_summary_over_seeds_is_a_t_interval():
    values = [0.71, 0.78, 0.74]
    s = M.summarize(values)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert s["mean"] == pytest.approx(np.mean(values)) and s["std"] == pytest.approx(np.std(values, ddof=1))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi))
    one = M.summarize([0.5, float("nan")])
    assert one["n"] == 1 and one["std"] == 0 and one["ci_low"] == one["ci_high"] == 0.5
