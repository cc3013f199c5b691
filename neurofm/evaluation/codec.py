"""A classical reference codec: DCT of each patch, uniform quantisation, entropy-coded rate estimate.

It gives the rate–distortion curve a learned tokenizer should be compared with. Each channel-window
is z-scored first (the same 2 × float16 side information the tokenizers send), each patch is
DCT-II transformed (orthonormal), every coefficient is rounded to a multiple of ``step``, and the
rate is the empirical entropy of the integers per coefficient index (what an ideal static entropy
coder fitted to the data would spend), plus the side information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import dct, idct

SIDE_BITS_PER_CHANNEL_WINDOW = 32


@dataclass
class CodecPoint:
    step: float
    bits_per_channel_second: float
    zmse: float
    recon: np.ndarray | None = None
    row_zmse: np.ndarray | None = None     # z-MSE of each channel-window (their mean is ``zmse``)


def _entropy_per_index(q: np.ndarray) -> np.ndarray:
    """Empirical entropy (bits) of the integers in each column of ``q`` (n, K)."""
    out = np.zeros(q.shape[1])
    for k in range(q.shape[1]):
        _, counts = np.unique(q[:, k], return_counts=True)
        p = counts / counts.sum()
        out[k] = -(p * np.log2(p)).sum()
    return out


def dct_codec(x: np.ndarray, sfreq: float, patch_size: int, step: float, keep_recon: bool = False) -> CodecPoint:
    """Code channel-windows ``x`` (n, T) at quantiser ``step`` (in z units); returns rate and z-MSE."""
    x = np.asarray(x, np.float64)
    n, t = x.shape
    mu, sd = x.mean(-1, keepdims=True), x.std(-1, keepdims=True) + 1e-12
    mu, sd = mu.astype(np.float16).astype(np.float64), sd.astype(np.float16).astype(np.float64)
    z = ((x - mu) / sd).reshape(n, t // patch_size, patch_size)
    coef = dct(z, type=2, norm="ortho", axis=-1)
    q = np.round(coef / step).astype(np.int64)
    bits_per_patch = _entropy_per_index(q.reshape(-1, patch_size)).sum()
    rec = idct(q * step, type=2, norm="ortho", axis=-1).reshape(n, t) * sd + mu
    zx = (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-12)
    zy = (rec - rec.mean(-1, keepdims=True)) / (rec.std(-1, keepdims=True) + 1e-12)
    seconds_per_patch = patch_size / sfreq
    window_s = t / sfreq
    rate = bits_per_patch / seconds_per_patch + SIDE_BITS_PER_CHANNEL_WINDOW / window_s
    rows = ((zx - zy) ** 2).mean(-1)
    return CodecPoint(step, float(rate), float(rows.mean()), rec if keep_recon else None, rows)


def dct_curve(x: np.ndarray, sfreq: float, patch_size: int, steps: np.ndarray | None = None) -> list[CodecPoint]:
    """Rate–distortion points over a range of quantiser steps (coarse → fine)."""
    steps = np.geomspace(4.0, 0.02, 24) if steps is None else steps
    return [dct_codec(x, sfreq, patch_size, float(s)) for s in steps]


def dct_at_rate(x: np.ndarray, sfreq: float, patch_size: int, bits: float, iters: int = 18) -> CodecPoint:
    """The DCT codec's point at (just under) ``bits`` per channel-second, by bisection on the step."""
    lo, hi = np.log(0.001), np.log(20.0)      # small step = high rate
    best = dct_codec(x, sfreq, patch_size, float(np.exp(hi)))
    for _ in range(iters):
        mid = (lo + hi) / 2
        point = dct_codec(x, sfreq, patch_size, float(np.exp(mid)))
        if point.bits_per_channel_second <= bits:
            best, hi = point, mid
        else:
            lo = mid
    return best
