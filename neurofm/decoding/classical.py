"""Classical decoding baselines: log band power + logistic regression, Riemannian tangent space + LR.

Both pick their regularisation on the validation split only, and are saved as plain arrays
(safetensors) + JSON, never pickled: prediction is re-implemented in NumPy from the fitted
coefficients (and checked against scikit-learn in the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurofm._errors import ContractError

BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 45.0)}
CS = (0.001, 0.01, 0.1, 1.0, 10.0)
ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


class _LinearReadout:
    """Standardise features (training statistics) → logistic / ridge regression, chosen on validation."""

    def __init__(self, kind: str = "classification", grid: tuple[float, ...] | None = None):
        self.kind = kind
        self.grid = tuple(grid) if grid else (CS if kind == "classification" else ALPHAS)
        self.mean = self.scale = self.coef = self.intercept = None
        self.chosen: float | None = None
        self.val_scores: dict[str, float] = {}

    def fit(self, f_tr, y_tr, f_va, y_va, metric: str, n_classes: int) -> _LinearReadout:
        from sklearn.linear_model import LogisticRegression, Ridge

        from neurofm.evaluation.metrics import LOWER_IS_BETTER, scores

        self.mean = f_tr.mean(0)
        self.scale = f_tr.std(0)
        self.scale[self.scale == 0] = 1.0
        z_tr, z_va = (f_tr - self.mean) / self.scale, (f_va - self.mean) / self.scale
        best = None
        for c in self.grid:
            if self.kind == "classification":
                clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(z_tr, y_tr)
                coef, intercept = clf.coef_, clf.intercept_
                if set(clf.classes_.tolist()) != set(range(n_classes)):
                    raise ContractError(f"the training split holds classes {clf.classes_.tolist()} of {n_classes}.",
                                        hint="every class needs training windows; change the split.")
            else:
                reg = Ridge(alpha=c).fit(z_tr, y_tr)
                coef, intercept = reg.coef_[None], np.atleast_1d(reg.intercept_)
            self.coef, self.intercept = coef, intercept
            s = scores(self.kind, y_va, self._out(z_va))
            key = s[metric] if metric not in LOWER_IS_BETTER else -s[metric]
            key = -np.inf if np.isnan(key) else key
            self.val_scores[f"{c:g}"] = float(s[metric])
            if best is None or key > best[0]:
                best = (key, c, coef, intercept)
        _, self.chosen, self.coef, self.intercept = best
        return self

    def _out(self, z: np.ndarray) -> np.ndarray:
        d = z @ self.coef.T + self.intercept
        if self.kind == "regression":
            return d[:, 0]
        if d.shape[1] == 1:  # binary: sklearn keeps one row of coefficients for class 1
            p1 = 1.0 / (1.0 + np.exp(-d[:, 0]))
            return np.stack([1 - p1, p1], 1)
        return _softmax(d)

    def predict(self, f: np.ndarray) -> np.ndarray:
        return self._out((f - self.mean) / self.scale)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"readout.mean": self.mean, "readout.scale": self.scale, "readout.coef": self.coef,
                "readout.intercept": self.intercept}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean, self.scale = arrays["readout.mean"], arrays["readout.scale"]
        self.coef, self.intercept = arrays["readout.coef"], arrays["readout.intercept"]


class ClassicalDecoder:
    """Base class: ``features`` → standardised linear readout. Input: (n, n_chans, n_times) in µV."""

    def __init__(self, sfreq: float, kind: str = "classification", grid: list[float] | None = None,
                 align: str = "none", **kwargs: Any):
        from neurofm.decoding.align import check_unit

        self.sfreq = float(sfreq)
        self.kind = kind
        self.readout = _LinearReadout(kind, grid)
        self.align = check_unit(align)
        self.kwargs = kwargs

    def config(self) -> dict[str, Any]:
        return dict(sfreq=self.sfreq, kind=self.kind, grid=list(self.readout.grid), align=self.align, **self.kwargs)

    @staticmethod
    def _check_mask(mask: np.ndarray | None) -> None:
        if mask is not None and not mask.all():
            raise ContractError(f"{int((~mask).any(0).sum())} channel(s) of the layout absent from "
                                f"{int((~mask).any(1).sum())} window(s); classical decoders need every channel.",
                                hint="evaluate on data with the same montage, or interpolate missing channels "
                                     "(a bad_channels step with interpolate: true).")

    def features(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Features of windows ``x``; ``groups`` (subject/recording ids) are used when the decoder aligns."""
        raise NotImplementedError

    def fit(self, x_tr, y_tr, x_va, y_va, *, metric: str, n_classes: int = 0, mask_tr=None, mask_va=None,
            groups_tr=None, groups_va=None):
        self._check_mask(mask_tr)
        self._check_mask(mask_va)
        f_tr = self.fit_features(x_tr, groups_tr)
        self.readout.fit(f_tr, y_tr, self.features(x_va, groups_va), y_va, metric, n_classes)
        return self

    def fit_features(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Features of the training windows; a decoder whose feature map is fitted on them fits it here."""
        return self.features(x, groups)

    def predict(self, x: np.ndarray, mask: np.ndarray | None = None, groups: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities (n, n_classes), or predictions (n,) for regression.

        With alignment, ``groups`` gives each window's subject/recording (``None``: all windows are one group).
        """
        self._check_mask(mask)
        return self.readout.predict(self.features(x, groups))

    def arrays(self) -> dict[str, np.ndarray]:
        return self.readout.arrays()

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.readout.load(arrays)


class BandPowerLR(ClassicalDecoder):
    """Log10 band power per channel (Welch, 2-s segments) in ``bands`` → logistic regression.

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz).
    bands : dict of name → [l_freq, h_freq]
        Bands above Nyquist are left out.
    """

    def __init__(self, sfreq: float, kind: str = "classification", grid: list[float] | None = None,
                 align: str = "none", bands: dict[str, list[float]] | None = None):
        bands = {k: list(v) for k, v in (bands or BANDS).items() if v[0] < sfreq / 2}
        super().__init__(sfreq, kind, grid, align, bands=bands)

    def features(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        f = self.log_band_power(x)
        if self.align != "none":  # per-subject/recording standardisation (no labels used)
            from neurofm.decoding.align import standardize_groups

            f = standardize_groups(f, groups)
        return f

    def log_band_power(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import welch

        nper = min(x.shape[-1], int(round(2 * self.sfreq)))
        freqs, psd = welch(np.asarray(x, dtype=np.float64), fs=self.sfreq, nperseg=nper, axis=-1)
        feats = []
        for lo, hi in self.kwargs["bands"].values():
            sel = (freqs >= lo) & (freqs < hi)
            feats.append(np.log10(psd[..., sel].mean(-1) + 1e-12))
        return np.concatenate(feats, axis=1)  # (n, n_bands * n_chans), band-major


def _riemann():
    try:  # pyriemann >= 0.10
        from pyriemann.geometry.mean import mean_covariance
        from pyriemann.geometry.tangentspace import tangent_space
    except ImportError:  # pragma: no cover - older pyriemann
        from pyriemann.utils.mean import mean_covariance
        from pyriemann.utils.tangentspace import tangent_space
    return mean_covariance, tangent_space


class TangentSpaceLR(ClassicalDecoder):
    """Shrunk (OAS) spatial covariance → Riemannian tangent space at the training mean → logistic regression.

    Parameters
    ----------
    band : [l_freq, h_freq] | None
        Optional zero-phase band-pass before the covariances (e.g. [8, 30] for motor imagery).
    """

    def __init__(self, sfreq: float, kind: str = "classification", grid: list[float] | None = None,
                 align: str = "none", band: list[float] | None = None):
        super().__init__(sfreq, kind, grid, align, band=list(band) if band else None)
        self.reference: np.ndarray | None = None

    def covariances(self, x: np.ndarray) -> np.ndarray:
        from pyriemann.estimation import Covariances

        x = np.asarray(x, dtype=np.float64)
        if self.kwargs.get("band"):
            from mne.filter import filter_data

            lo, hi = self.kwargs["band"]
            x = filter_data(x, self.sfreq, lo, hi, verbose="error")
        return Covariances(estimator="oas").fit_transform(x)

    def _covs(self, x: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        covs = self.covariances(x)
        if self.align != "none":  # each subject's/recording's Riemannian mean moved to the identity
            from neurofm.decoding.align import recenter

            covs = recenter(covs, groups)
        return covs

    def features(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        _, tangent_space = _riemann()
        if self.reference is None:
            raise RuntimeError("TangentSpaceLR.features before fit")
        return tangent_space(self._covs(x, groups), self.reference, metric="riemann")

    def fit_features(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """The reference point (Riemannian mean of the training covariances) and the training features, from
        one computation of the covariances."""
        mean_covariance, tangent_space = _riemann()
        covs = self._covs(x, groups)
        self.reference = mean_covariance(covs, metric="riemann")
        return tangent_space(covs, self.reference, metric="riemann")

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(super().arrays(), reference=self.reference)

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_arrays(arrays)
        self.reference = arrays["reference"]
