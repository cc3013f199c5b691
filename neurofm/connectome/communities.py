"""Community detection on a component's pair factor: weighted Leiden with seed consensus.

Dyballa et al. use graph-tool's nested SBM, which is not on PyPI; Leiden (leidenalg/igraph) with a
consensus over seeds is the practical substitute. Each seed's partition votes in a co-assignment
matrix; Leiden on that matrix (thresholded at ``threshold``) gives the consensus, repeated until
the runs agree (Lancichinetti & Fortunato 2012).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Communities:
    """Community id per channel (0 = largest community) and the partition's weighted modularity."""

    membership: np.ndarray
    modularity: float
    n_runs: int

    @property
    def n_communities(self) -> int:
        return int(self.membership.max()) + 1 if self.membership.size else 0


def _graph(adjacency: np.ndarray):
    import igraph as ig

    w = np.array(adjacency, dtype=float)
    np.fill_diagonal(w, 0.0)
    i, j = np.nonzero(np.triu(w, k=1) > 0)
    g = ig.Graph(n=w.shape[0], edges=list(zip(i.tolist(), j.tolist(), strict=True)), directed=False)
    g.es["weight"] = w[i, j].tolist()
    return g


def _leiden(g, resolution: float, seed: int) -> np.ndarray:
    import leidenalg

    part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                    resolution_parameter=resolution, seed=seed, n_iterations=-1)
    return np.asarray(part.membership)


def _relabel(membership: np.ndarray) -> np.ndarray:
    """Renumber communities by decreasing size (ties by first member)."""
    ids, counts = np.unique(membership, return_counts=True)
    order = sorted(ids, key=lambda c: (-counts[ids == c][0], np.flatnonzero(membership == c)[0]))
    mapping = {c: k for k, c in enumerate(order)}
    return np.array([mapping[c] for c in membership])


def weighted_modularity(adjacency: np.ndarray, membership: np.ndarray) -> float:
    g = _graph(adjacency)
    if g.ecount() == 0:
        return 0.0
    return float(g.modularity(membership.tolist(), weights="weight"))


def leiden_consensus(adjacency: np.ndarray, *, n_seeds: int = 20, resolution: float = 1.0,
                     threshold: float = 0.5, max_rounds: int = 10, seed: int = 0) -> Communities:
    """Consensus Leiden communities of a symmetric non-negative weighted adjacency matrix."""
    n = adjacency.shape[0]
    g = _graph(adjacency)
    if g.ecount() == 0:
        return Communities(np.arange(n), 0.0, 0)
    runs = [_leiden(g, resolution, seed + s) for s in range(n_seeds)]
    for _ in range(max_rounds):
        if all(np.array_equal(_relabel(r), _relabel(runs[0])) for r in runs[1:]):
            break
        co = np.mean([r[:, None] == r[None, :] for r in runs], axis=0)
        co[co < threshold] = 0.0
        gc = _graph(co)
        if gc.ecount() == 0:
            break
        runs = [_leiden(gc, 1.0, seed + s) for s in range(n_seeds)]
    membership = _relabel(runs[0])
    return Communities(membership, weighted_modularity(adjacency, membership), n_seeds)
