"""Saving a connectome run: NPZ (factors, communities), JSON (summary, statistics, config) and an mne.Report."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from neurofm.connectome.affinity import pairs_to_matrix
from neurofm.connectome.pipeline import ConnectomeResult


def save(result: ConnectomeResult, out: str | Path, report: bool = True) -> dict[str, Path]:
    """Write ``connectome.npz``, ``connectome.json`` and (optionally) ``report.html`` into ``out``."""
    from neurofm.data.store import atomic_path, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    comps = result.components
    arrays = dict(
        pair_factors=np.stack([c.pair_factor for c in comps], axis=1),
        time_factors=np.stack([c.time_course for c in comps], axis=1),
        loadings=np.stack([c.loadings for c in comps], axis=1),
        weights=np.array([c.weight for c in comps]), flat=np.array([c.flat for c in comps]),
        communities=np.stack([c.communities.membership for c in comps], axis=1),
        times=result.times, ch_names=np.array(result.ch_names),
        sources=np.array([s.name for s in result.sources]),
    )
    if result.null_modularity is not None:
        arrays["null_modularity"] = result.null_modularity
    paths = {"npz": out / "connectome.npz", "json": out / "connectome.json"}
    with atomic_path(paths["npz"]) as tmp:
        with open(tmp, "wb") as fid:
            np.savez(fid, **arrays)
    write_json(paths["json"], result.summary())
    if report:
        paths["report"] = write_report(result, out / "report.html")
    return paths


def _fig_component(result: ConnectomeResult, c):
    import matplotlib.pyplot as plt

    n = len(result.ch_names)
    pos = result.sources[0].positions
    has_pos = pos is not None and bool(np.isfinite(pos).all())
    fig, axes = plt.subplots(1, 4 if has_pos else 3, figsize=(16 if has_pos else 12, 3.4))
    order = np.argsort(c.communities.membership, kind="stable")
    mat = pairs_to_matrix(c.pair_factor, n)[np.ix_(order, order)]
    ax = axes[0]
    ax.imshow(mat, cmap="magma")
    ax.set_title(f"pairs (reordered by community), {c.communities.n_communities} communities")
    if n <= 40:
        ax.set_xticks(range(n), [result.ch_names[i] for i in order], rotation=90, fontsize=6)
        ax.set_yticks(range(n), [result.ch_names[i] for i in order], fontsize=6)
    ax = axes[1]
    ax.plot(result.times, c.time_course, color="k")
    for e in result.sources[0].events if len(result.sources) == 1 else []:
        if e.duration > 0:
            ax.axvspan(e.onset, e.onset + e.duration, alpha=0.15, label=e.label)
        else:
            ax.axvline(e.onset, color="r", ls="--", label=e.label)
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        uniq = dict(zip(labels, handles, strict=True))
        ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    ax.set(title="time course", xlabel="s")
    ax = axes[2]
    conds = [s.condition or "" for s in result.sources]
    palette = {k: f"C{i}" for i, k in enumerate(sorted(set(conds)))}
    ax.bar(range(len(c.loadings)), c.loadings, color=[palette[k] for k in conds])
    if len(palette) > 1:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=col, label=k) for k, col in palette.items()], fontsize=7)
    ax.set(title="loadings per recording" + (f" (p={c.contrast['p_value']:.3g})" if c.contrast else ""))
    if has_pos:
        ax = axes[3]
        ax.scatter(pos[:, 0], pos[:, 1], c=c.communities.membership, cmap="tab10", s=40)
        ax.set(title="communities (top view)", aspect="equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def _fig_scan(scan: dict):
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    for r, errs in zip(scan["ranks"], scan["errors"], strict=True):
        a.scatter([r] * len(errs), errs, color="k", s=12)
    a.set(xlabel="rank", ylabel="relative error", title="error per replicate")
    b.plot(scan["ranks"], scan["similarity"], "o-")
    b.axhline(0.9, ls="--", color="gray")
    b.axvline(scan["chosen"], color="r")
    b.set(xlabel="rank", ylabel="replicate similarity (FMS)", title=f"chosen rank {scan['chosen']}")
    fig.tight_layout()
    return fig


def write_report(result: ConnectomeResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mne

    from neurofm.data.store import atomic_path

    rep = mne.Report(title="neurofm dynamic functional connectome", verbose="error")
    cfg = result.config
    summary = (f"<p>{len(result.sources)} recording(s), {len(result.ch_names)} channels, tensor "
               f"{result.tensor_shape} (pairs × windows × recordings), method {cfg.method}, band {cfg.band}, "
               f"window {cfg.window_s} s / step {cfg.step_s} s, rank {result.rank}, fit {result.fit:.4f}.</p>")
    rows = "".join(
        f"<tr><td>{c.index}</td><td>{c.weight:.4g}</td><td>{'flat baseline' if c.flat else ''}</td>"
        f"<td>{c.communities.n_communities}</td><td>{c.communities.modularity:.3f}</td>"
        f"<td>{'' if c.p_value is None else f'{c.p_value:.3g}'}</td>"
        f"<td>{'' if not c.contrast else html.escape(json.dumps({k: c.contrast[k] for k in ('test', 'statistic', 'p_value')}))}</td></tr>"
        for c in result.components)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    rep.add_html(summary + "<table class='table table-sm'><tr><th>component</th><th>weight</th><th></th>"
                 "<th>communities</th><th>modularity</th><th>surrogate p</th><th>condition contrast</th></tr>"
                 + rows + "</table>" + (f"<ul>{notes}</ul>" if notes else ""), title="Summary", section="Summary")
    if result.scan:
        fig = _fig_scan(result.scan)
        rep.add_figure(fig, title="Rank selection", section="Summary")
        plt.close(fig)
    for c in result.components:
        fig = _fig_component(result, c)
        rep.add_figure(fig, title=f"Component {c.index}", section=f"Component {c.index}")
        plt.close(fig)
        groups = {}
        for name, k in zip(result.ch_names, c.communities.membership, strict=True):
            groups.setdefault(int(k), []).append(name)
        rep.add_html("<ul>" + "".join(f"<li>community {k}: {html.escape(', '.join(v))}</li>" for k, v in sorted(groups.items()))
                     + "</ul>", title=f"Component {c.index} communities", section=f"Component {c.index}")
    with atomic_path(path) as tmp:
        target = tmp.with_suffix(".html")
        rep.save(target, overwrite=True, open_browser=False, verbose="error")
        target.replace(tmp)
    return path
