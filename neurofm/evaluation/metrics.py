"""Decoding metrics and their summaries over seeds.

Classification scores take integer labels ``y`` (n,) and class probabilities ``proba`` (n, n_classes);
regression scores take targets and predictions (n,). Every function is plain NumPy/SciPy/scikit-learn
and returns Python floats, so results serialise to JSON as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CLASSIFICATION = ("balanced_accuracy", "auroc", "kappa", "accuracy")
REGRESSION = ("pearson_r", "r2", "rmse")
METRICS = CLASSIFICATION + REGRESSION
# Higher is better for every metric except these.
LOWER_IS_BETTER = frozenset({"rmse"})
LABELS = {"balanced_accuracy": "bal. acc.", "auroc": "AUROC", "kappa": "Cohen's κ", "accuracy": "accuracy",
          "pearson_r": "Pearson r", "r2": "R²", "rmse": "RMSE"}


def confusion_matrix(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of windows of true class ``i`` predicted as ``j``."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    return cm


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, n_classes: int | None = None) -> float:
    """Mean per-class recall over the classes present in ``y``."""
    y = np.asarray(y, dtype=np.int64)
    k = int(max(y.max(initial=0), np.max(pred, initial=0)) + 1) if n_classes is None else n_classes
    cm = confusion_matrix(y, pred, k)
    present = cm.sum(1) > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / cm.sum(1)[present]))


def cohen_kappa(y: np.ndarray, pred: np.ndarray, n_classes: int | None = None) -> float:
    """Agreement beyond chance: (p_o − p_e) / (1 − p_e)."""
    y = np.asarray(y, dtype=np.int64)
    k = int(max(y.max(initial=0), np.max(pred, initial=0)) + 1) if n_classes is None else n_classes
    cm = confusion_matrix(y, pred, k).astype(np.float64)
    n = cm.sum()
    if n == 0:
        return float("nan")
    po = np.trace(cm) / n
    pe = float(cm.sum(0) @ cm.sum(1)) / n**2
    return float((po - pe) / (1 - pe)) if pe < 1 else 0.0


def auroc(y: np.ndarray, proba: np.ndarray) -> float:
    """Area under the ROC curve: binary (positive = class 1), else macro one-vs-rest over present classes.

    NaN when ``y`` holds a single class (AUROC is undefined).
    """
    from sklearn.metrics import roc_auc_score

    y, proba = np.asarray(y, dtype=np.int64), np.asarray(proba, dtype=np.float64)
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    scores = [roc_auc_score(y == c, proba[:, c]) for c in present]
    return float(np.mean(scores))


def pearson_r(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if len(y) < 2 or y.std() == 0:
        return float("nan")
    if pred.std() == 0:
        return 0.0  # a constant prediction carries no linear information
    return float(np.corrcoef(y, pred)[0, 1])


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    ss = float(((y - y.mean()) ** 2).sum())
    return float(1 - ((y - pred) ** 2).sum() / ss) if ss > 0 else float("nan")


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(pred, float)) ** 2)))


def classification_scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Every classification metric from labels and probabilities (prediction = arg-max)."""
    proba = np.asarray(proba)
    k = proba.shape[1]
    pred = proba.argmax(1)
    return dict(balanced_accuracy=balanced_accuracy(y, pred, k), auroc=auroc(y, proba),
                kappa=cohen_kappa(y, pred, k), accuracy=float(np.mean(pred == np.asarray(y))))


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return dict(pearson_r=pearson_r(y, pred), r2=r2(y, pred), rmse=rmse(y, pred))


def scores(kind: str, y: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """``classification_scores`` or ``regression_scores`` by task kind."""
    return classification_scores(y, out) if kind == "classification" else regression_scores(y, np.ravel(out))


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, sample std and the t-interval of the mean over seeds (NaN values are left out).

    With one value the std is 0 and the interval collapses to the value.
    """
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    n = len(v)
    if n == 0:
        nan = float("nan")
        return dict(mean=nan, std=nan, ci_low=nan, ci_high=nan, n=0)
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)) if n > 1 else 0.0
    return dict(mean=mean, std=std, ci_low=mean - half, ci_high=mean + half, n=n)
