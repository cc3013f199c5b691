"""Subject (or recording) alignment: the same unlabelled statistics at training and at test time.

Subject-to-subject shift is what cross-subject decoders lose most to. Each method uses only the
windows of one subject (or recording), never their labels, so it may be applied to new people at
test time:

- neural models: **Euclidean alignment** (He & Wu 2019): whiten each group's windows by the inverse
  square root of the group's mean spatial covariance, shrunk toward a scaled identity (average-referenced
  EEG has a rank-deficient covariance: unshrunk whitening blows up its null direction);
- tangent space: **Riemannian re-centering**: each group's covariances are moved so that their Riemannian
  mean is the identity (pyriemann);
- band power: **per-group standardisation** of the log band-power features.

``align`` names the grouping unit: ``"none"``, ``"subject"`` or ``"recording"``.
"""

from __future__ import annotations

import numpy as np

from neurofm._errors import ConfigError

UNITS = ("none", "subject", "recording")
#: What alignment means for each model family (recorded in the decoder).
METHODS = {"classical:bandpower-lr": "per-group feature standardisation",
           "classical:tangentspace-lr": "Riemannian re-centering (pyriemann)",
           "neural": "Euclidean alignment (shrunk mean covariance)"}
SHRINK = 0.1


def check_unit(align: str | None) -> str:
    align = align or "none"
    if align not in UNITS:
        raise ConfigError(f"unknown alignment unit '{align}'.", hint=f"use one of {', '.join(UNITS)}.")
    return align


def group_ids(data, align: str) -> np.ndarray | None:
    """Per-window group ids of :class:`~neurofm.tasks.data.TaskData` for ``align`` (``None`` for ``"none"``)."""
    align = check_unit(align)
    if align == "none":
        return None
    return np.asarray([str(v) for v in (data.subjects if align == "subject" else data.recordings)], dtype=object)


def group_indices(n: int, groups: np.ndarray | None) -> list[np.ndarray]:
    """Window indices of every group, in order of first appearance (``None``: all ``n`` windows are one group)."""
    if groups is None:
        return [np.arange(n)]
    groups = np.asarray(groups, dtype=object)
    return [np.flatnonzero(groups == g) for g in dict.fromkeys(groups.tolist())]


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    w = np.maximum(w, w.max() * 1e-10)
    return (v / np.sqrt(w)) @ v.T


def euclidean_align(x: np.ndarray, mask: np.ndarray, groups: np.ndarray | None, shrink: float = SHRINK) -> np.ndarray:
    """Whiten every group's windows by its shrunk mean covariance.

    Parameters
    ----------
    x : ndarray, shape (n, n_chans, n_times)
        Windows in µV.
    mask : ndarray of bool, shape (n, n_chans)
        Channels present; the covariance of a group uses the channels present in all of its windows,
        the others stay 0.
    groups : ndarray, shape (n,) | None
        Group id of every window (``None``: one group).
    shrink : float
        Weight of ``trace(C)/n_chans · I`` in the shrunk covariance (0.1: 10 %).

    Returns
    -------
    ndarray, float32, shape (n, n_chans, n_times)
        Aligned windows (unit-free: each group's shrunk mean covariance becomes the identity).
    """
    out = np.zeros(x.shape, dtype=np.float32)
    for idx in group_indices(len(x), groups):
        ch = np.flatnonzero(mask[idx].all(0))
        if len(ch) == 0:
            continue
        xs = np.asarray(x[idx][:, ch], dtype=np.float64)
        xs = xs - xs.mean(-1, keepdims=True)
        c = np.einsum("nct,ndt->cd", xs, xs) / (xs.shape[0] * xs.shape[2])
        c = (1 - shrink) * c + shrink * np.trace(c) / len(ch) * np.eye(len(ch))
        r = _inv_sqrt(c)
        aligned = np.einsum("cd,ndt->nct", r, xs).astype(np.float32)
        out[np.ix_(idx, ch)] = aligned
    return out


def standardize_groups(f: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Z-score features within every group (each group's own mean and std over its windows)."""
    out = np.array(f, dtype=np.float64, copy=True)
    for idx in group_indices(len(f), groups):
        mu, sd = out[idx].mean(0), out[idx].std(0)
        out[idx] = (out[idx] - mu) / np.where(sd > 0, sd, 1.0)
    return out


def recenter(covs: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Riemannian re-centering: ``M_g^{-1/2} C M_g^{-1/2}`` with ``M_g`` the group's Riemannian mean."""
    from neurofm.decoding.classical import _riemann

    mean_covariance, _ = _riemann()
    out = np.empty_like(covs)
    for idx in group_indices(len(covs), groups):
        m = mean_covariance(covs[idx], metric="riemann")
        r = _inv_sqrt(m)
        out[idx] = r @ covs[idx] @ r
    return out
