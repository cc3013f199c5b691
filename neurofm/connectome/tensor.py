"""Stack per-recording affinities into the (pairs × windows × subjects) tensor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def build_tensor(affinities: Sequence[np.ndarray], *, scale: bool = True, out: np.ndarray | None = None) -> np.ndarray:
    """Stack ``affinities`` (each (n_windows, n_pairs)) into float32 (n_pairs, n_windows, n_subjects).

    Recordings with more windows are cut to the shortest (the caller reports it). With ``scale``
    the tensor is divided by its maximum so that it lies in [0, 1]. ``out`` may be a preallocated
    (e.g. memory-mapped) array of the final shape.
    """
    if not affinities:
        raise ValueError("no affinities to stack")
    n_pairs = {a.shape[1] for a in affinities}
    if len(n_pairs) != 1:
        raise ValueError(f"recordings have different channel pairs {sorted(n_pairs)}; use a common channel set")
    n_win = min(a.shape[0] for a in affinities)
    shape = (n_pairs.pop(), n_win, len(affinities))
    tensor = np.empty(shape, dtype=np.float32) if out is None else out
    if tensor.shape != shape:
        raise ValueError(f"out has shape {tensor.shape}, expected {shape}")
    for k, a in enumerate(affinities):
        tensor[:, :, k] = np.asarray(a[:n_win], dtype=np.float32).T
    np.maximum(tensor, 0.0, out=tensor)
    if scale:
        peak = float(tensor.max())
        if peak > 0:
            tensor /= peak
    return tensor
