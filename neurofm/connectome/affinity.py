"""Windowed channel-pair affinities, vectorised over pairs.

``coderivative`` (default) follows Dyballa et al. (ICLR 2024): each channel's band envelope is
normalised to [0, 1] over the recording, differentiated and rectified (only rises count); the
affinity of two channels in a window is the cosine similarity of their rectified derivatives, in
[0, 1]. It is one matrix product per window. The spectral measures (``plv``, ``wpli``, ``coh``) and
the orthogonalised amplitude-envelope correlation (``aec``) come from mne-connectivity, computed on
the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurofm._errors import ConfigError, suggest

METHODS = ("coderivative", "aec", "plv", "wpli", "coh")


@dataclass
class Affinity:
    """Affinities of one recording: ``values`` (n_windows, n_pairs) float32 in [0, 1]."""

    values: np.ndarray
    times: np.ndarray  # window centres, seconds from the first sample
    pairs: np.ndarray  # (n_pairs, 2) channel indices, i < j (upper triangle, row-major)
    method: str
    band: tuple[float, float] | None
    window_s: float
    step_s: float


def pair_index(n_chans: int) -> np.ndarray:
    """(n_pairs, 2) indices of the upper triangle, the order of every pair vector in neurofm."""
    i, j = np.triu_indices(n_chans, k=1)
    return np.stack([i, j], axis=1)


def pairs_to_matrix(vector: np.ndarray, n_chans: int) -> np.ndarray:
    """Symmetric (n_chans, n_chans) matrix from a pair vector (zero diagonal)."""
    out = np.zeros((n_chans, n_chans), dtype=np.float64)
    i, j = np.triu_indices(n_chans, k=1)
    out[i, j] = vector
    out[j, i] = vector
    return out


def window_starts(n_times: int, sfreq: float, window_s: float, step_s: float) -> np.ndarray:
    n_win = int(round(window_s * sfreq))
    step = max(1, int(round(step_s * sfreq)))
    if n_win < 4 or n_win > n_times:
        raise ConfigError(f"window_s={window_s} gives {n_win} samples for a {n_times / sfreq:.2f}-s recording.",
                          hint="choose window_s shorter than the recording and at least 4 samples long.")
    return np.arange(0, n_times - n_win + 1, step)


def band_filter(x: np.ndarray, sfreq: float, band: tuple[float, float]) -> np.ndarray:
    """Zero-phase band-pass of ``x`` (n_chans, n_times), MNE's FIR; no low-pass at or above Nyquist."""
    from neurofm.preprocessing._fir import filter_zero_phase, fir_kernel

    l_freq, h_freq = band
    return filter_zero_phase(x, fir_kernel(float(sfreq), l_freq, h_freq if h_freq < sfreq / 2 else None))


def band_envelope(x: np.ndarray, sfreq: float, band: tuple[float, float] | None) -> np.ndarray:
    """Amplitude envelope of ``x`` (n_chans, n_times) in ``band``, min-max normalised to [0, 1] per channel."""
    from scipy.signal import hilbert

    x = np.asarray(x, dtype=np.float64)
    if band is not None:
        x = band_filter(x, sfreq, band)
    env = np.abs(hilbert(x, axis=-1))
    lo = env.min(axis=-1, keepdims=True)
    span = env.max(axis=-1, keepdims=True) - lo
    return ((env - lo) / np.where(span > 0, span, 1.0)).astype(np.float32)


def _coderivative(env: np.ndarray, starts: np.ndarray, n_win: int, out: np.ndarray) -> None:
    rise = np.maximum(np.diff(env, axis=-1, prepend=env[:, :1]), 0.0)
    iu = np.triu_indices(env.shape[0], k=1)
    for w, s in enumerate(starts):
        r = rise[:, s: s + n_win]
        gram = r @ r.T
        norm = np.sqrt(np.diag(gram))
        denom = np.outer(norm, norm)
        cos = np.divide(gram, denom, out=np.zeros_like(gram), where=denom > 0)
        out[w] = cos[iu]


def _spectral(x: np.ndarray, sfreq: float, starts: np.ndarray, n_win: int, method: str,
              band: tuple[float, float], out: np.ndarray, chunk: int = 64) -> None:
    from mne_connectivity import envelope_correlation, spectral_connectivity_time
    from scipy.signal import hilbert

    iu = np.triu_indices(x.shape[0], k=1)
    if method == "aec":
        analytic = hilbert(band_filter(x, sfreq, band), axis=-1)
    for c0 in range(0, len(starts), chunk):  # chunks of windows bound the memory of the epochs array
        idx = starts[c0: c0 + chunk]
        if method == "aec":
            epochs = np.stack([analytic[:, s: s + n_win] for s in idx])
            dense = envelope_correlation(epochs, orthogonalize="pairwise", verbose="error").get_data("dense")[..., 0]
        else:
            epochs = np.stack([x[:, s: s + n_win] for s in idx])
            freqs = np.arange(band[0], band[1] + 1e-9, max((band[1] - band[0]) / 8, 0.5))
            conn = spectral_connectivity_time(
                epochs, freqs=freqs, method=method, sfreq=sfreq, fmin=band[0], fmax=band[1], faverage=True,
                mode="multitaper", average=False, verbose="error")
            dense = conn.get_data("dense")[..., 0]
            dense = np.maximum(dense, np.transpose(dense, (0, 2, 1)))  # MNE fills one triangle
        out[c0: c0 + len(idx)] = np.clip(np.abs(dense[:, iu[0], iu[1]]), 0.0, 1.0)


def windowed_affinity(x: np.ndarray, sfreq: float, *, method: str = "coderivative",
                      band: tuple[float, float] | None = (8.0, 13.0), window_s: float = 2.0, step_s: float = 1.0,
                      out: np.ndarray | None = None) -> Affinity:
    """Affinity between every channel pair in sliding windows.

    Parameters
    ----------
    x : ndarray, shape (n_chans, n_times)
        Signals (any unit; affinities are scale-free).
    sfreq : float
        Sampling rate in Hz.
    method : str
        One of ``coderivative``, ``aec``, ``plv``, ``wpli``, ``coh``.
    band : (float, float) | None
        Frequency band in Hz (``None``: broadband envelope; coderivative only).
    window_s, step_s : float
        Window length and step in seconds.
    out : ndarray | None
        Optional preallocated (n_windows, n_pairs) float32 array (e.g. a ``np.memmap`` for long
        recordings, so memory stays bounded).

    Returns
    -------
    Affinity
    """
    if method not in METHODS:
        raise ConfigError(f"unknown affinity method '{method}'.{suggest(method, METHODS)}",
                          hint=f"use one of {', '.join(METHODS)}.")
    if method != "coderivative" and band is None:
        raise ConfigError(f"method '{method}' needs a frequency band.", hint="pass band=(l_freq, h_freq).")
    x = np.asarray(x, dtype=np.float64)
    n_chans, n_times = x.shape
    if n_chans < 2:
        raise ConfigError(f"a connectome needs at least 2 channels, got {n_chans}.", hint="pick more channels.")
    starts = window_starts(n_times, sfreq, window_s, step_s)
    n_win = int(round(window_s * sfreq))
    n_pairs = n_chans * (n_chans - 1) // 2
    if out is None:
        out = np.empty((len(starts), n_pairs), dtype=np.float32)
    elif out.shape != (len(starts), n_pairs):
        raise ValueError(f"out has shape {out.shape}, expected {(len(starts), n_pairs)}")
    if method == "coderivative":
        _coderivative(band_envelope(x, sfreq, band), starts, n_win, out)
    else:
        _spectral(x, sfreq, starts, n_win, method, band, out)
    times = (starts + n_win / 2) / sfreq
    return Affinity(out, times, pair_index(n_chans), method, None if band is None else tuple(band), window_s, step_s)
