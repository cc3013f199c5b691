"""Synthetic recordings with planted, time-varying, overlapping communities (ground truth for tests).

Every channel carries 1/f background noise plus an alpha-band (10 Hz) oscillation whose amplitude
follows a slow random envelope. While a community is active, its members share one envelope, so
their band envelopes rise together; outside that interval each channel has its own envelope.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Planted:
    members: np.ndarray  # channel indices
    interval: tuple[float, float]  # seconds


def _slow_envelope(rng: np.random.Generator, n: int, sfreq: float, rate_hz: float = 1.0) -> np.ndarray:
    """Positive, smooth, random amplitude (~rate_hz bumps per second), mean ~1."""
    k = max(int(sfreq / rate_hz), 1)
    raw = rng.standard_normal(n + 4 * k)
    kernel = np.hanning(2 * k + 1)
    smooth = np.convolve(raw, kernel / kernel.sum(), mode="same")[2 * k: 2 * k + n]
    return np.exp(1.2 * smooth / (smooth.std() + 1e-12))


def _pink(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    f = np.arange(spec.shape[-1])
    spec /= np.sqrt(np.maximum(f, 1))
    x = np.fft.irfft(spec, n=shape[-1], axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def planted_recording(n_chans: int = 24, sfreq: float = 200.0, duration_s: float = 120.0,
                      planted: list[Planted] | None = None, noise: float = 1.0, alpha_amp: float = 1.5,
                      seed: int = 0) -> tuple[np.ndarray, list[Planted]]:
    """Return ``x`` (n_chans, n_times) and the planted communities.

    Default: three communities of 8-10 channels over 24, active in disjoint intervals, the first two
    sharing four channels (overlapping membership).
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sfreq))
    t = np.arange(n) / sfreq
    if planted is None:
        planted = [Planted(np.arange(0, 10), (10.0, 35.0)), Planted(np.arange(6, 16), (45.0, 70.0)),
                   Planted(np.arange(16, 24), (80.0, 105.0))]
    if any(p.members.max() >= n_chans for p in planted):
        raise ValueError(f"planted members must be < n_chans={n_chans}; pass `planted` for small montages")
    envelopes = np.stack([_slow_envelope(rng, n, sfreq) for _ in range(n_chans)])
    for p in planted:
        shared = _slow_envelope(rng, n, sfreq)
        mask = (t >= p.interval[0]) & (t < p.interval[1])
        envelopes[np.ix_(p.members, np.flatnonzero(mask))] = shared[mask]
    phases = rng.uniform(0, 2 * np.pi, (n_chans, 1))
    freqs = rng.uniform(9.5, 10.5, (n_chans, 1))
    x = alpha_amp * envelopes * np.sin(2 * np.pi * freqs * t + phases) + noise * _pink(rng, (n_chans, n))
    return x * 1e-5, planted  # ~10 µV in Volts
