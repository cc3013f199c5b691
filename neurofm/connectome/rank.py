"""Comparing and choosing non-negative CP fits: factor match score, rank scan, flat components.

Rank selection follows the replicate similarity of Williams et al. (2018, tensortools): fit several
randomly initialised models per rank and keep the largest rank whose replicates agree before the
error curve flattens.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from neurofm.connectome.ntf import NTFResult, ntf_hals

__all__ = ["RankScan", "factor_match_score", "flat_components", "rank_scan"]

def _congruence(a: NTFResult, b: NTFResult) -> np.ndarray:
    """``(R_a, R_b)``: product over modes of the absolute cosine similarities of factor columns."""
    sizes = ([f.shape[0] for f in a.factors], [f.shape[0] for f in b.factors])
    if sizes[0] != sizes[1]:
        raise ValueError(f"models of different shapes: {sizes[0]} vs {sizes[1]}")
    score = np.ones((a.factors[0].shape[1], b.factors[0].shape[1]))
    for fa, fb in zip(a.factors, b.factors, strict=True):
        fa, fb = np.asarray(fa, np.float64), np.asarray(fb, np.float64)
        na, nb = np.linalg.norm(fa, axis=0), np.linalg.norm(fb, axis=0)
        score *= np.abs(fa.T @ fb) / np.outer(np.where(na > 0, na, 1.0), np.where(nb > 0, nb, 1.0))
    return score


def factor_match_score(a: NTFResult, b: NTFResult) -> float:
    """Factor match score (FMS) of two CP models of tensors of the same shape, in [0, 1].

    The congruence of two components is the product over modes of the cosine similarities of their
    factor columns. Components are paired by the Hungarian assignment that maximises the summed
    congruence; the FMS is the mean congruence over the ``min(R_a, R_b)`` pairs. Weights are ignored:
    1 means the same factors up to permutation and scaling.
    """
    score = _congruence(a, b)
    rows, cols = linear_sum_assignment(score, maximize=True)
    return float(np.clip(score[rows, cols].mean(), 0.0, 1.0))


@dataclass
class RankScan:
    """Replicated fits over candidate ranks.

    Attributes
    ----------
    ranks : list of int
        Scanned ranks, ascending.
    errors, similarity : np.ndarray, shapes (n_ranks, n_replicates) and (n_ranks,)
        Final relative error of every replicate; mean FMS of each rank's best (lowest-error)
        replicate with the others (NaN for a single replicate).
    best : dict of int to NTFResult
        The lowest-error replicate of each rank.
    """

    ranks: list[int]
    errors: np.ndarray
    similarity: np.ndarray
    best: dict[int, NTFResult]

    def choose(self, min_similarity: float = 0.9, flat_tol: float = 0.01) -> int:
        """The largest stable rank before the error curve flattens.

        Ranks are visited in ascending order. The curve has flattened at rank ``r`` when the best
        error improves by less than ``flat_tol`` (absolute, in relative-error units) from the previous
        scanned rank to ``r``; ``r`` and all larger ranks are then out. Of the ranks left, the largest
        whose replicates agree (similarity >= ``min_similarity``) is returned; if none does, the
        smallest scanned rank.
        """
        best_err = self.errors.min(axis=1)
        n_before_flat = 1
        while n_before_flat < len(self.ranks) and best_err[n_before_flat - 1] - best_err[n_before_flat] >= flat_tol:
            n_before_flat += 1
        stable = [self.ranks[i] for i in range(n_before_flat) if self.similarity[i] >= min_similarity]
        return max(stable) if stable else self.ranks[0]


def rank_scan(X, ranks, n_replicates: int = 5, *, seed: int = 0, **ntf_kwargs) -> RankScan:
    """Fit ``n_replicates`` randomly initialised models per rank and measure their agreement.

    Replicate ``k`` of rank ``r`` is seeded with ``(seed, r, k)``; ``ranks`` are sorted and
    deduplicated; ``ntf_kwargs`` go to :func:`ntf_hals` (which gets ``init="random"`` here).
    Returns a :class:`RankScan`; :meth:`RankScan.choose` picks the rank.
    """
    ranks = sorted({int(r) for r in ranks})
    if not ranks or n_replicates < 1:
        raise ValueError("rank_scan needs at least one rank and one replicate")
    for key in ("init", "random_state"):
        if ntf_kwargs.pop(key, None) is not None:
            warnings.warn(f"rank_scan sets {key!r} itself; ignoring the one passed", stacklevel=2)
    errors = np.zeros((len(ranks), n_replicates))
    similarity = np.full(len(ranks), np.nan)
    best: dict[int, NTFResult] = {}
    for i, r in enumerate(ranks):
        fits = [ntf_hals(X, r, init="random", random_state=np.random.default_rng([seed, r, k]), **ntf_kwargs)
                for k in range(n_replicates)]
        errors[i] = [f.errors[-1] for f in fits]
        top = int(np.argmin(errors[i]))
        best[r] = fits[top]
        if n_replicates > 1:
            similarity[i] = np.mean([factor_match_score(fits[top], f) for k, f in enumerate(fits) if k != top])
    return RankScan(ranks, errors, similarity, best)


def flat_components(result: NTFResult, mode: int = 1, *, peak_ratio: float | None = 2.0,
                    cv_threshold: float | None = None) -> np.ndarray:
    """Flag components whose factor along ``mode`` is nearly constant (the "flat baseline").

    ``mode`` 1 is the window (time) mode of a ``(pairs, windows, subjects)`` tensor. A component is
    flat when its column never exceeds ``peak_ratio`` × its median (the default rule: a baseline is
    never much stronger than usual, which window-to-window noise does not disturb), or, if given,
    when its coefficient of variation (std / mean) is below ``cv_threshold``. All-zero columns are
    not flat. Returns a bool array ``(R,)``.
    """
    f = np.asarray(result.factors[mode], dtype=np.float64)
    flat = np.zeros(f.shape[1], dtype=bool)
    if peak_ratio is not None:
        med = np.median(f, axis=0)
        flat |= np.divide(f.max(axis=0), med, out=np.full(med.shape, np.inf), where=med > 0) < peak_ratio
    if cv_threshold is not None:
        mean = f.mean(axis=0)
        flat |= np.divide(f.std(axis=0), mean, out=np.full(mean.shape, np.inf), where=mean > 0) < cv_threshold
    return flat
