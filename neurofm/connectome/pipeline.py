"""The connectome pipeline: sources → affinities → tensor → NTF (rank scan) → communities → statistics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from neurofm._errors import ConfigError
from neurofm.connectome.affinity import pairs_to_matrix, windowed_affinity
from neurofm.connectome.communities import Communities, leiden_consensus
from neurofm.connectome.tensor import build_tensor


@dataclass
class ConnectomeConfig:
    """Every choice of a connectome run (saved beside its outputs)."""

    method: str = "coderivative"
    band: tuple[float, float] | None = (8.0, 13.0)
    window_s: float = 2.0
    step_s: float = 1.0
    rank: int | None = None  # fixed rank; None: choose by a rank scan
    ranks: tuple[int, ...] = (2, 3, 4, 5, 6)
    n_replicates: int = 4
    min_similarity: float = 0.9
    flat_peak_ratio: float = 2.0  # a time course whose peak stays below this × its median is the flat baseline
    tol: float = 1e-6
    n_iter_max: int = 500
    n_seeds: int = 20
    resolution: float = 1.0
    n_surrogates: int = 5
    seed: int = 0


@dataclass
class Source:
    """One slice of the tensor's third mode: a recording of a subject (in a condition)."""

    name: str
    subject: str
    x: np.ndarray  # (n_chans, n_times)
    sfreq: float
    ch_names: list[str]
    condition: str | None = None
    events: list = field(default_factory=list)  # neurofm.datasets.Event
    positions: np.ndarray | None = None


@dataclass
class Component:
    index: int
    weight: float
    flat: bool
    pair_factor: np.ndarray
    time_course: np.ndarray
    loadings: np.ndarray
    communities: Communities
    p_value: float | None = None
    contrast: dict | None = None


@dataclass
class ConnectomeResult:
    config: ConnectomeConfig
    sources: list[Source]
    ch_names: list[str]
    times: np.ndarray
    tensor_shape: tuple[int, int, int]
    rank: int
    fit: float
    components: list[Component]
    scan: dict | None = None
    null_modularity: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        out = dict(config=asdict(self.config), ch_names=self.ch_names, tensor_shape=list(self.tensor_shape),
                   rank=self.rank, fit=round(self.fit, 5), scan=self.scan, notes=self.notes,
                   sources=[dict(name=s.name, subject=s.subject, condition=s.condition) for s in self.sources],
                   components=[])
        for c in self.components:
            out["components"].append(dict(
                index=c.index, weight=round(float(c.weight), 6), flat=bool(c.flat),
                peak_time_s=float(self.times[int(np.argmax(c.time_course))]),
                communities=c.communities.membership.tolist(), n_communities=c.communities.n_communities,
                modularity=round(c.communities.modularity, 5), p_value=c.p_value, contrast=c.contrast,
                loadings={s.name: round(float(v), 6) for s, v in zip(self.sources, c.loadings, strict=True)}))
        return out


def common_channels(sources: list[Source]) -> tuple[list[Source], list[str]]:
    """Restrict every source to the channels all of them have (in the first source's order)."""
    common = [c for c in sources[0].ch_names if all(c in s.ch_names for s in sources[1:])]
    notes = []
    if len(common) < 2:
        raise ConfigError("the recordings share fewer than 2 channels.", hint="use recordings with one montage.")
    out = []
    for s in sources:
        idx = [s.ch_names.index(c) for c in common]
        if len(idx) < len(s.ch_names):
            notes.append(f"{s.name}: {len(s.ch_names) - len(idx)} channel(s) not shared by all recordings left out")
        pos = None if s.positions is None else s.positions[idx]
        out.append(Source(s.name, s.subject, s.x[idx], s.sfreq, common, s.condition, s.events, pos))
    return out, notes


def affinity_tensor(sources: list[Source], cfg: ConnectomeConfig) -> tuple[np.ndarray, np.ndarray]:
    """(n_pairs, n_windows, n_sources) float32 tensor in [0, 1] and window centre times."""
    rates = {s.sfreq for s in sources}
    if len(rates) != 1:
        raise ConfigError(f"recordings have different sampling rates {sorted(rates)}.",
                          hint="preprocess them with one recipe (resample step) first.")
    affs = [windowed_affinity(s.x, s.sfreq, method=cfg.method, band=cfg.band, window_s=cfg.window_s,
                              step_s=cfg.step_s) for s in sources]
    tensor = build_tensor([a.values for a in affs])
    return tensor, affs[0].times[: tensor.shape[1]]


def phase_randomised(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Same amplitude spectrum per channel, independent random phases: keeps spectra, removes coupling."""
    spec = np.fft.rfft(x, axis=-1)
    phases = np.exp(1j * rng.uniform(0, 2 * np.pi, spec.shape))
    phases[..., 0] = 1.0
    return np.fft.irfft(np.abs(spec) * phases, n=x.shape[-1], axis=-1)


def condition_contrast(loadings: np.ndarray, sources: list[Source]) -> dict | None:
    """Test whether a component's loadings differ between conditions.

    Two conditions with both present for every subject: paired Wilcoxon signed-rank test on the
    per-subject differences; otherwise Mann-Whitney U (two conditions) or Kruskal-Wallis (more).
    """
    from scipy import stats

    conds = sorted({s.condition for s in sources if s.condition is not None})
    if len(conds) < 2:
        return None
    by = defaultdict(dict)
    for s, v in zip(sources, loadings, strict=True):
        if s.condition is not None:
            by[s.subject][s.condition] = float(v)
    means = {c: float(np.mean([d[c] for d in by.values() if c in d])) for c in conds}
    if len(conds) == 2 and all(len(d) == 2 for d in by.values()) and len(by) >= 5:
        a = np.array([d[conds[0]] for d in by.values()])
        b = np.array([d[conds[1]] for d in by.values()])
        res = stats.wilcoxon(b, a)
        return dict(test="wilcoxon signed-rank (paired by subject)", conditions=conds, n=len(a),
                    statistic=float(res.statistic), p_value=float(res.pvalue), means=means,
                    higher=conds[1] if np.median(b - a) > 0 else conds[0])
    groups = [np.array([d[c] for d in by.values() if c in d]) for c in conds]
    if len(conds) == 2:
        res = stats.mannwhitneyu(*groups)
        name = "mann-whitney U"
    else:
        res = stats.kruskal(*groups)
        name = "kruskal-wallis"
    return dict(test=name, conditions=conds, n=[len(g) for g in groups], statistic=float(res.statistic),
                p_value=float(res.pvalue), means=means)


def run_connectome(sources: list[Source], cfg: ConnectomeConfig | None = None, verbose: bool = False) -> ConnectomeResult:
    """Run the whole pipeline on ``sources`` (one tensor slice each)."""
    from neurofm.connectome.ntf import ntf_hals
    from neurofm.connectome.rank import flat_components, rank_scan

    cfg = cfg or ConnectomeConfig()
    sources, notes = common_channels(sources)
    tensor, times = affinity_tensor(sources, cfg)
    n_chans = len(sources[0].ch_names)
    scan_info = None
    if cfg.rank is None:
        ranks = [r for r in cfg.ranks if r >= 1]
        scan = rank_scan(tensor, ranks, n_replicates=cfg.n_replicates, seed=cfg.seed, tol=cfg.tol,
                         n_iter_max=cfg.n_iter_max)
        rank = scan.choose(min_similarity=cfg.min_similarity)
        best = scan.best[rank]
        scan_info = dict(ranks=list(scan.ranks), errors=np.asarray(scan.errors).tolist(),
                         similarity=np.asarray(scan.similarity).tolist(), chosen=int(rank))
    else:
        rank = cfg.rank
        fits = [ntf_hals(tensor, rank, tol=cfg.tol, n_iter_max=cfg.n_iter_max, init="random",
                         random_state=cfg.seed + k) for k in range(max(cfg.n_replicates, 1))]
        best = max(fits, key=lambda r: r.fit)
    best = best.sort_by_weight()
    flat = flat_components(best, mode=1, peak_ratio=cfg.flat_peak_ratio)
    pair_f, time_f, subj_f = best.factors
    components = []
    for r in range(rank):
        adj = pairs_to_matrix(pair_f[:, r], n_chans)
        comm = leiden_consensus(adj, n_seeds=cfg.n_seeds, resolution=cfg.resolution, seed=cfg.seed)
        load = subj_f[:, r] * best.weights[r]
        components.append(Component(r, float(best.weights[r]), bool(flat[r]), pair_f[:, r], time_f[:, r], load,
                                    comm, contrast=condition_contrast(load, sources)))
    null = None
    if cfg.n_surrogates > 0:
        null = surrogate_modularity(sources, cfg, rank)
        for c in components:
            c.p_value = float((1 + np.sum(null >= c.communities.modularity)) / (1 + len(null)))
    return ConnectomeResult(cfg, sources, list(sources[0].ch_names), times, tensor.shape, rank, float(best.fit),
                            components, scan_info, null, notes)


def surrogate_modularity(sources: list[Source], cfg: ConnectomeConfig, rank: int) -> np.ndarray:
    """Modularity of the communities of every component fitted to phase-randomised surrogates."""
    from neurofm.connectome.ntf import ntf_hals

    rng = np.random.default_rng(cfg.seed + 1000)
    n_chans = len(sources[0].ch_names)
    null = []
    for _ in range(cfg.n_surrogates):
        surr = [Source(s.name, s.subject, phase_randomised(s.x, rng), s.sfreq, s.ch_names, s.condition)
                for s in sources]
        tensor, _ = affinity_tensor(surr, cfg)
        fit = ntf_hals(tensor, rank, tol=cfg.tol, n_iter_max=cfg.n_iter_max, init="svd")
        for r in range(rank):
            comm = leiden_consensus(pairs_to_matrix(fit.factors[0][:, r], n_chans), n_seeds=max(cfg.n_seeds // 4, 3),
                                    resolution=cfg.resolution, seed=cfg.seed)
            null.append(comm.modularity)
    return np.asarray(null)
