"""``make demo``: the platform on the embedded sample, one command, a few minutes on a laptop CPU.

preprocess (QC report) → tokenize with the shipped pretrained tokenizer (rate–distortion + report) →
fine-tune a decoder on the pretrained encoder beside a classical baseline → dynamic connectome →
``OUT/index.html`` linking every report. Prints what each step produced.

    python scripts/demo/run.py [--out out/demo] [--weights neurorvq-tiny.eeg]
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SAMPLE = REPO / "data" / "sample" / "eegmat"
TASK = HERE / "eegmat-sample.yaml"


def _step(title: str, argv: list[str]) -> float:
    from neurofm.cli import main

    print(f"\n== {title}\n$ neurofm {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    rc = main(argv)
    if rc:
        raise SystemExit(f"demo: step '{title}' failed (exit {rc}); see the message above.")
    return time.perf_counter() - t0


def _weights(name: str) -> Path:
    from neurofm._errors import NeurofmError
    from neurofm.models._pretrained import resolve

    try:
        return resolve(name)
    except NeurofmError as err:
        raise SystemExit(f"demo: the pretrained tokenizer '{name}' is not installed ({err.args[0] if err.args else err}).\n"
                         f"HINT: install neurofm with its shipped weights (neurofm/weights/{name}/), or pass "
                         "--weights DIR with a directory written by `neurofm pretrain ... --export DIR`.") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/demo")
    p.add_argument("--weights", default="neurorvq-tiny.eeg", help="shipped tokenizer name or exported directory")
    p.add_argument("--n-jobs", type=int, default=2)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)  # libraries' deprecation notices: not the user's business
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    out = Path(args.out)
    weights = _weights(args.weights)  # fail before any work if the shipped tokenizer is missing
    out.mkdir(parents=True, exist_ok=True)
    store, cache = out / "store", out / "cache"
    t: dict[str, float] = {}
    t["preprocess"] = _step("1/4 preprocess the sample into a window store (+ QC report)",
                            ["preprocess", "--dataset", "eegmat", "--root", str(SAMPLE), "--pipeline", "eeg-200hz",
                             "--out", str(store), "--n-jobs", str(args.n_jobs)])
    t["tokenize"] = _step(f"2/4 tokenize with the pretrained tokenizer {weights.name}: rate-distortion per level",
                          ["evaluate", "tokenizer", "--checkpoint", str(weights), "--store", str(store),
                           "--out", str(out / "tokenizer" / "tokenizer.json")])
    common = ["--task", str(TASK), "--root", str(SAMPLE), "--cache", str(cache), "--quiet"]
    t["decoder"] = _step("3/4 fine-tune a decoder: pretrained encoder (frozen) + linear head",
                         ["finetune", *common, "--model", "neurorvq-tiny", "--init", str(weights), "--freeze",
                          "--head", "linear", "--max-epochs", "15", "--patience", "5", "--out", str(out / "decoder")])
    t["baseline"] = _step("3/4 the classical baseline on the same split: band power + logistic regression",
                          ["finetune", *common, "--model", "bandpower-lr", "--out", str(out / "baseline")])
    t["connectome"] = _step("4/4 dynamic functional connectome (alpha co-derivative → NTF → communities)",
                            ["connectome", "--store", str(store), "--out", str(out / "connectome"), "--ranks", "2", "3",
                             "--replicates", "2", "--surrogates", "3", "--max-seconds", "60"])
    index = write_index(out, weights, t)
    summary(out, weights, t, index)
    return 0


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _scores(out: Path) -> list[tuple[str, str, dict]]:
    rows = []
    for label, sub in (("decoder (pretrained encoder + linear head)", "decoder"), ("baseline (band power + LR)", "baseline")):
        rec = _load(out / sub / "results.json")
        rows.append((label, sub, rec))
    return rows


def write_index(out: Path, weights: Path, t: dict[str, float]) -> Path:
    """``OUT/index.html``: every report and result of the run, with the numbers that matter."""
    tok = _load(out / "tokenizer" / "tokenizer.json")
    con = _load(out / "connectome" / "connectome.json")
    info = _load(out / "store" / "manifest.json")
    links = [("QC report (preprocessing)", "store/qc/report.html"), ("Tokenizer report", "tokenizer/tokenizer.html"),
             ("Connectome report", "connectome/report.html")]
    items = "".join(f"<li><a href='{h}'>{html.escape(n)}</a>{'' if (out / h).is_file() else ' (missing)'}</li>"
                    for n, h in links)
    score_rows = ""
    for label, sub, rec in _scores(out):
        m = {k: rec.get(k, {}) for k in ("val", "test")}
        metric = rec.get("metric", "balanced_accuracy")
        score_rows += (f"<tr><td>{html.escape(label)}</td><td>{m.get('val', {}).get(metric, float('nan')):.3f}</td>"
                       f"<td>{m.get('test', {}).get(metric, float('nan')):.3f}</td>"
                       f"<td><a href='{sub}/results.json'>results.json</a></td></tr>")
    tok_rows = "".join(f"<tr><td>{p['levels']}</td><td>{p['bits_nominal']:.0f}</td><td>{p['zmse']:.4f}</td>"
                       f"<td>{p['r']:.3f}</td></tr>" for p in tok.get("points", []))
    comps = "".join(f"<li>component {c.get('index')}: weight {float(c.get('weight', 'nan')):.3g}, "
                    f"{c.get('n_communities', '?')} communities, modularity {float(c.get('modularity', 'nan')):.3f}</li>"
                    for c in con.get("components", []))
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>neurofm demo</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .8em;text-align:right}}
td:first-child{{text-align:left}}table{{border-collapse:collapse}}tr:nth-child(even){{background:#f3f3f3}}</style></head>
<body><h1>neurofm demo</h1>
<p>Embedded sample: {info.get('n_recordings', '?')} EEGMAT recordings, {info.get('n_windows', '?')} windows of 4 s at
200 Hz. Pretrained tokenizer: <code>{html.escape(str(weights))}</code>.</p>
<h2>Reports</h2><ul>{items}</ul>
<h2>Decoding: rest vs mental arithmetic (train 00, val 01, test 21)</h2>
<table><tr><th>model</th><th>val bal. acc.</th><th>test bal. acc.</th><th></th></tr>{score_rows}</table>
<p>One subject per split: a demonstration of the pipeline, not a benchmark.</p>
<h2>Tokenizer rate–distortion (z-scored MSE and correlation per number of residual levels)</h2>
<table><tr><th>levels</th><th>bits/token</th><th>z-MSE</th><th>r</th></tr>{tok_rows}</table>
<h2>Connectome</h2><p>rank {con.get('rank', '?')}</p><ul>{comps}</ul>
<h2>Timing</h2><p>{', '.join(f'{k} {v:.0f} s' for k, v in t.items())}</p>
</body></html>"""
    path = out / "index.html"
    path.write_text(body)
    return path


def summary(out: Path, weights: Path, t: dict[str, float], index: Path) -> None:
    from neurofm._logging import kmeans_summary

    info = _load(out / "store" / "manifest.json")
    tok = _load(out / "tokenizer" / "tokenizer.json")
    con = _load(out / "connectome" / "connectome.json")
    print("\n== summary")
    print(f"  preprocess  {info.get('n_recordings')} recordings → {info.get('n_windows')} windows; "
          f"QC: {out / 'store' / 'qc' / 'report.html'}  ({t['preprocess']:.0f} s)")
    pts = tok.get("points", [])
    if pts:
        print(f"  tokenize    {weights.name}: {pts[0]['bits_nominal']:.0f}→{pts[-1]['bits_nominal']:.0f} bits/token, "
              f"z-MSE {pts[0]['zmse']:.3f}→{pts[-1]['zmse']:.3f}; report: {out / 'tokenizer' / 'tokenizer.html'}  "
              f"({t['tokenize']:.0f} s)")
    for label, sub, rec in _scores(out):
        m = {k: rec.get(k, {}) for k in ("val", "test")}
        metric = rec.get("metric", "balanced_accuracy")
        print(f"  {sub:<10}  {label}: test {metric} {m.get('test', {}).get(metric, float('nan')):.3f} "
              f"(val {m.get('val', {}).get(metric, float('nan')):.3f})  ({t[sub]:.0f} s)")
    print(f"  connectome  rank {con.get('rank')}, {len(con.get('components', []))} components; "
          f"report: {out / 'connectome' / 'report.html'}  ({t['connectome']:.0f} s)")
    if kmeans_summary():
        print(f"  note        {kmeans_summary()}")
    print(f"  index       {index}  (open it in a browser)  total {sum(t.values()):.0f} s")


if __name__ == "__main__":
    sys.exit(main())
