"""Reconstruction fidelity and rate of tokenizers: z-scored MSE, Pearson r per band, code usage, bits."""

from __future__ import annotations

import math

import numpy as np

from neurofm.evaluation.metrics import summarize

BANDS: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 45.0),
    "high_gamma": (45.0, float("inf")),
}


def bands_for(sfreq: float, h_freq: float | None = None) -> dict[str, tuple[float, float]]:
    """The standard bands up to Nyquist (and the recording's low-pass edge, when given)."""
    top = min(sfreq / 2, h_freq or sfreq / 2)
    return {k: (lo, min(hi, top)) for k, (lo, hi) in BANDS.items() if lo < top}


def band_filter(x: np.ndarray, sfreq: float, lo: float, hi: float) -> np.ndarray:
    """Zero-phase brick-wall band-pass along the last axis (FFT mask over the whole window)."""
    spec = np.fft.rfft(x, axis=-1)
    f = np.fft.rfftfreq(x.shape[-1], 1 / sfreq)
    spec[..., (f < lo) | (f >= hi)] = 0
    return np.fft.irfft(spec, n=x.shape[-1], axis=-1)


class FidelityAccumulator:
    """Accumulates original/reconstructed channel-windows (n, T) and reports fidelity metrics.

    ``zmse``: mean over channel-windows of MSE between the separately z-scored signals (= 2(1 − r)).
    ``r``: Pearson r over all samples after z-scoring each channel-window by the original's statistics;
    ``bands``: the same r after a band-pass of both signals.
    With ``groups`` given to :meth:`update` (a subject per channel-window), the result also has each group's
    z-MSE (``subjects``) and the t-interval of their mean (``zmse_ci``, :func:`group_interval`).
    """

    def __init__(self, sfreq: float, bands: dict[str, tuple[float, float]] | None = None):
        self.sfreq = sfreq
        self.bands = bands or bands_for(sfreq)
        self.zmse_sum, self.n = 0.0, 0
        self.stats = {name: np.zeros(5) for name in ["all", *self.bands]}  # Σx, Σy, Σxx, Σyy, Σxy
        self.groups: dict[str, list[float]] = {}                          # group -> [Σ z-MSE, n]

    @staticmethod
    def _moments(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([a.sum(), b.sum(), (a * a).sum(), (b * b).sum(), (a * b).sum()], dtype=np.float64)

    def update(self, x: np.ndarray, xhat: np.ndarray, groups: np.ndarray | None = None) -> None:
        x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        xhat = np.asarray(xhat, np.float64).reshape(-1, xhat.shape[-1])
        mu, sd = x.mean(-1, keepdims=True), x.std(-1, keepdims=True) + 1e-12
        zx = (x - mu) / sd
        zy = (xhat - xhat.mean(-1, keepdims=True)) / (xhat.std(-1, keepdims=True) + 1e-12)
        rows = ((zx - zy) ** 2).mean(-1)
        self.zmse_sum += float(rows.sum())
        self.n += x.shape[0]
        if groups is not None:
            accumulate_groups(self.groups, rows, groups)
        y = (xhat - mu) / sd
        self.stats["all"] += self._moments(zx, y)
        for name, (lo, hi) in self.bands.items():
            self.stats[name] += self._moments(band_filter(zx, self.sfreq, lo, hi), band_filter(y, self.sfreq, lo, hi))

    @staticmethod
    def _r(m: np.ndarray, n: int) -> float:
        sx, sy, sxx, syy, sxy = m
        cov = sxy / n - sx * sy / n**2
        vx, vy = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
        return float(cov / math.sqrt(max(vx * vy, 1e-300)))

    def result(self, n_times: int) -> dict:
        n = self.n * n_times
        out = dict(zmse=self.zmse_sum / max(self.n, 1), r=self._r(self.stats["all"], n),
                   bands={name: self._r(self.stats[name], n) for name in self.bands}, n_channel_windows=self.n)
        if self.groups:
            out.update(group_interval(self.groups))
        return out


def energy_above(x: np.ndarray, sfreq: float, h_freq: float) -> float:
    """Mean over channel-windows ``x`` (n, T) of the share of their (mean-removed) energy above ``h_freq``: for a model
    whose training data were low-passed there, a floor under the z-MSE that no code can lower."""
    spec = np.abs(np.fft.rfft(np.asarray(x, np.float64), axis=-1)[..., 1:]) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / sfreq)[1:]
    return float((spec[..., f > h_freq].sum(-1) / np.maximum(spec.sum(-1), 1e-300)).mean())


def accumulate_groups(sums: dict[str, list[float]], rows: np.ndarray, groups: np.ndarray) -> dict[str, list[float]]:
    """Add per-row values ``rows`` to ``sums`` (group -> [Σ, n]) by the label of each row in ``groups``."""
    rows, groups = np.asarray(rows, np.float64).ravel(), np.asarray(groups).ravel()
    if len(rows) != len(groups):
        raise ValueError(f"{len(rows)} rows but {len(groups)} group labels")
    for g in np.unique(groups):
        sel = rows[groups == g]
        acc = sums.setdefault(str(g), [0.0, 0])
        acc[0] += float(sel.sum())
        acc[1] += len(sel)
    return sums


def group_means(sums: dict[str, list[float]]) -> dict[str, float]:
    """Each group's mean of what :func:`accumulate_groups` added, by group label."""
    return {g: s / max(n, 1) for g, (s, n) in sorted(sums.items())}


def group_interval(sums: dict[str, list[float]], confidence: float = 0.95) -> dict:
    """Per-group means (``subjects``: a subject's z-MSE over its channel-windows) and the t-interval of their mean
    (``zmse_ci``: what the z-MSE of new subjects from the same population averages to, with its uncertainty)."""
    per = group_means(sums)
    ci = summarize(list(per.values()), confidence)
    ci["ci_low"] = max(ci["ci_low"], 0.0)   # an error is never negative (few subjects: a wide t-interval)
    return dict(subjects=per, zmse_ci=ci)


class CodeUsage:
    """Histogram of codes per (scale, level): usage %, perplexity, entropy bits."""

    def __init__(self, n_scales: int, n_levels: int, codebook_size: int):
        self.counts = np.zeros((n_scales, n_levels, codebook_size), dtype=np.int64)

    def update(self, codes: np.ndarray) -> None:
        """codes (..., n_scales, n_levels), -1 for padding."""
        c = np.asarray(codes).reshape(-1, *self.counts.shape[:2])
        for s in range(c.shape[1]):
            for lvl in range(c.shape[2]):
                v = c[:, s, lvl]
                self.counts[s, lvl] += np.bincount(v[v >= 0], minlength=self.counts.shape[2])[: self.counts.shape[2]]

    def entropy_bits(self) -> np.ndarray:
        p = self.counts / np.maximum(self.counts.sum(-1, keepdims=True), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=-1)

    def result(self) -> dict:
        used = (self.counts > 0).mean(-1) * 100
        h = self.entropy_bits()
        return dict(usage_pct=used.round(2).tolist(), perplexity=np.exp2(h).round(1).tolist(),
                    entropy_bits=h.round(3).tolist(), min_usage_pct=float(used.min()),
                    entropy_bits_per_token=float(h.sum()))
