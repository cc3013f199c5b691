"""Which tokenizer codes are enriched in which condition (after "Codebook Features", Tamkin et al. 2023).

For a labelled store, every token gets its codes; for one residual level and every (scale, code), the
frequency of the code in each condition is compared with its frequency in the other conditions.

* When every subject has every condition (e.g. EEGMAT rest vs arithmetic), the unit is the subject:
  the per-subject frequencies are compared with a paired Wilcoxon signed-rank test.
* Otherwise tokens are pooled and a one-sided Fisher exact test is used; tokens of one recording are
  not independent, so these p-values are optimistic, and the result says so.

p-values are corrected over all codes tested (Benjamini–Hochberg) into q-values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    ranked = p[order] * len(p) / (np.arange(len(p)) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.clip(q, 0, 1)
    return out


def code_enrichment(codes: np.ndarray, labels: np.ndarray, subjects: np.ndarray, codebook_size: int,
                    min_count: int = 20, top: int = 10) -> dict[str, Any]:
    """codes (n_tokens, n_scales) of one level; labels and subjects per token."""
    from scipy.stats import fisher_exact, wilcoxon

    conds = sorted(set(labels.tolist()))
    subs = sorted(set(subjects.tolist()))
    n_scales = codes.shape[1]
    paired = all(((subjects == s) & (labels == c)).any() for s in subs for c in conds) and len(subs) >= 5
    result: dict[str, Any] = dict(conditions=conds, n_subjects=len(subs), n_tokens=int(len(codes)),
                                  test="paired Wilcoxon over subjects" if paired else
                                  "Fisher exact on pooled tokens (tokens are not independent: optimistic)",
                                  enriched={})
    for cond in conds:
        rows = []
        for s in range(n_scales):
            counts_in = np.bincount(codes[labels == cond, s], minlength=codebook_size)
            counts_out = np.bincount(codes[labels != cond, s], minlength=codebook_size)
            n_in, n_out = counts_in.sum(), counts_out.sum()
            candidates = np.flatnonzero(counts_in + counts_out >= min_count)
            if paired:
                f_in = np.stack([np.bincount(codes[(labels == cond) & (subjects == u), s], minlength=codebook_size)
                                 / max(((labels == cond) & (subjects == u)).sum(), 1) for u in subs])
                f_out = np.stack([np.bincount(codes[(labels != cond) & (subjects == u), s], minlength=codebook_size)
                                  / max(((labels != cond) & (subjects == u)).sum(), 1) for u in subs])
            for k in candidates:
                ratio = (counts_in[k] / max(n_in, 1)) / max(counts_out[k] / max(n_out, 1), 1e-12)
                if paired:
                    d = f_in[:, k] - f_out[:, k]
                    p = 1.0 if not np.any(d) else float(wilcoxon(f_in[:, k], f_out[:, k], alternative="greater").pvalue)
                else:
                    table = [[counts_in[k], n_in - counts_in[k]], [counts_out[k], n_out - counts_out[k]]]
                    p = float(fisher_exact(table, alternative="greater")[1])
                rows.append(dict(scale=s, code=int(k), ratio=float(ratio), count=int(counts_in[k]), p_value=p))
        if rows:
            q = _bh(np.array([r["p_value"] for r in rows]))
            for r, qv in zip(rows, q, strict=True):
                r["q_value"] = float(qv)
        result["enriched"][cond] = sorted((r for r in rows if r["q_value"] < 0.05 and r["ratio"] > 1),
                                          key=lambda r: (r["q_value"], -r["ratio"]))[:top]
        result.setdefault("n_tested", {})[cond] = len(rows)
    return result


def run_code_enrichment(checkpoint: str | os.PathLike, store: str | os.PathLike, out: str | os.PathLike, *,
                        level: int = 0, top: int = 10, batch_size: int = 32) -> dict[str, Any]:
    """Encode a labelled store with an exported tokenizer and test code enrichment; JSON + PNG."""
    import torch

    from neurofm._errors import StoreError
    from neurofm.data.dataset import WindowDataset, WindowStore, collate
    from neurofm.data.store import atomic_path
    from neurofm.evaluation.tokenizer import load_tokenizer

    model = load_tokenizer(checkpoint)
    ws = WindowStore(store)
    labelled = np.flatnonzero(np.array([bool(v) for v in ws.labels]))
    if len(set(ws.labels[labelled].tolist())) < 2:
        raise StoreError("the store has fewer than two labelled conditions.", source=store,
                         hint="use a store of a dataset with labels (e.g. eegmat: rest vs arithmetic).")
    if not 0 <= level < model.n_levels:
        raise StoreError(f"level {level} does not exist (the tokenizer has {model.n_levels}).", source=checkpoint,
                         hint=f"pass --level between 0 and {model.n_levels - 1}.")
    ds = WindowDataset(ws, labelled)
    codes, labels, subjects = [], [], []
    with torch.inference_mode():
        for start in range(0, len(ds), batch_size):
            b = collate([ds[k] for k in range(start, min(start + batch_size, len(ds)))])
            enc = model.encode(b["x"], pos=b["pos"], mask=b["mask"], ch_names=b["ch_names"])
            c = enc["codes"][..., level].numpy()                        # (B, C, P, S)
            valid = enc["valid"].numpy()
            for i in range(c.shape[0]):
                tok = c[i][valid[i]].reshape(-1, c.shape[-1])
                codes.append(tok)
                w = int(b["index"][i])
                labels += [str(ws.labels[w])] * len(tok)
                subjects += [str(ws.subjects[w])] * len(tok)
    res = code_enrichment(np.concatenate(codes), np.array(labels), np.array(subjects), model.codebook_size, top=top)
    res.update(checkpoint=str(checkpoint), store=str(store), level=level)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(res, indent=1))
    _plot(res, out.with_suffix(".png"))
    return res


def _plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = res["conditions"]
    fig, axes = plt.subplots(1, len(conds), figsize=(4.5 * len(conds), 3.5), squeeze=False)
    for ax, cond in zip(axes[0], conds, strict=True):
        rows = res["enriched"].get(cond, [])
        if rows:
            ax.barh([f"s{r['scale']}:{r['code']}" for r in rows][::-1], [np.log2(r["ratio"]) for r in rows][::-1])
        ax.set(title=f"enriched in {cond}", xlabel="log2 enrichment (q < 0.05)")
    fig.suptitle(f"level {res['level']} codes — {res['test']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
