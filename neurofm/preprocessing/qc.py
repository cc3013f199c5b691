"""Per-store QC: one mne.Report HTML (PSD before/after, bad channels, events) and a summary table."""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

import numpy as np

MAX_FIGURES = 60  # PSD figures; the summary table always lists every recording


def _summary_rows(manifest: dict) -> list[dict]:
    rows = []
    for r in manifest["recordings"]:
        rows.append(dict(id=r["id"], subject=r["subject"], label=r.get("label") or "",
                         windows=r["shape"][0], channels=r["shape"][1], sfreq=r["sfreq"],
                         bads=len(r["bads"]), interpolated=len(r["interpolated"]),
                         window_labels=", ".join(f"{k}:{v}" for k, v in sorted(Counter(r["labels"]).items()))))
    return rows


def write_report(root: Path, manifest: dict) -> Path:
    """Write ``qc/summary.tsv`` and ``qc/report.html`` for the store at ``root``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mne

    from neurofm.data.store import atomic_path

    root = Path(root)
    qc = root / "qc"
    qc.mkdir(exist_ok=True)
    rows = _summary_rows(manifest)
    cols = ["id", "subject", "label", "windows", "channels", "sfreq", "bads", "interpolated", "window_labels"]
    with atomic_path(qc / "summary.tsv") as tmp:
        tmp.write_text("\n".join(["\t".join(cols)] + ["\t".join(str(r[c]) for c in cols) for r in rows]) + "\n")

    report = mne.Report(title=f"neurofm QC — {manifest['dataset'].get('name', '')} / {manifest['recipe']['name']}",
                        verbose="error")
    table = "<table class='table table-sm'><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    for r in rows:
        table += "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>"
    table += "</table>"
    fails = manifest.get("failures", [])
    if fails:
        table += "<h4>Failed recordings</h4><ul>" + "".join(
            f"<li>{html.escape(f['error'])}</li>" for f in fails) + "</ul>"
    report.add_html(table, title="Summary", section="Summary")
    for r in manifest["recordings"][:MAX_FIGURES]:
        path = qc / f"{r['id']}.npz"
        if path.exists():
            with np.load(path) as z:
                fig, ax = plt.subplots(figsize=(6, 3))
                for key, style in (("before", "--"), ("after", "-")):
                    if f"{key}_freqs" in z:
                        ax.plot(z[f"{key}_freqs"], z[f"{key}_psd"], style, label=key)
                ax.set(xlabel="Hz", ylabel="log10 PSD (µV²/Hz)", title=r["id"])
                ax.legend()
                fig.tight_layout()
                report.add_figure(fig, title=f"{r['id']} PSD", section=r["id"])
                plt.close(fig)
        bads = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in r["bads"].items()) or "<li>none</li>"
        ev = Counter(e["label"] for e in r["events"])
        events = ", ".join(f"{html.escape(k)} × {v}" for k, v in sorted(ev.items())) or "none"
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in r["notes"]) or "<li>none</li>"
        report.add_html(f"<p>Source: {html.escape(r['source'])}</p><h5>Bad channels</h5><ul>{bads}</ul>"
                        f"<h5>Events</h5><p>{events}</p><h5>Notes</h5><ul>{notes}</ul>",
                        title=f"{r['id']} details", section=r["id"])
    if len(manifest["recordings"]) > MAX_FIGURES:
        report.add_html(f"<p>PSD figures shown for the first {MAX_FIGURES} of {len(manifest['recordings'])} "
                        "recordings; all are in the summary table and qc/summary.tsv.</p>", title="Note", section="Summary")
    out = qc / "report.html"
    with atomic_path(out) as tmp:
        report.save(tmp.with_suffix(".html"), overwrite=True, open_browser=False, verbose="error")
        tmp.with_suffix(".html").replace(tmp)
    return out
