"""The benchmark CLI: one table over tasks × models × seeds, confusion plots, resolved configs, resume."""

from __future__ import annotations

import json

import numpy as np

from neurofm.cli import main

TASK = """\
description: "EEGMAT rest vs arithmetic, subjects 00 / 01 / 02"
dataset: eegmat
recipe: eeg-200hz
labels: [rest, arithmetic]
split: {by: subject, train: ["00"], val: ["01"], test: ["02"]}
"""


def test_benchmark_table_plots_and_resume(tmp_path, eegmat_three, task_cache, monkeypatch, capsys):
    task = tmp_path / "bench-task.yaml"
    task.write_text(TASK)
    monkeypatch.setenv("NEUROFM_DATA", str(eegmat_three.parents[1]))  # datasets resolve under DATA/eeg/eegmat
    out = tmp_path / "bench"
    argv = ["benchmark", "--tasks", str(task), "--models", "bandpower-lr", "eegnet",
            "bad=labram-braindecode", "--model-kwargs", 'bad={"patch_size": 300}', "--seeds", "2",
            "--out", str(out), "--cache", str(task_cache), "--max-epochs", "1", "--quiet"]
    assert main(argv) == 1  # one model cannot take 800-sample windows in 300-sample patches: reported, not fatal
    printed = capsys.readouterr()
    summary = json.loads((out / "results.json").read_text())
    rows = {r["model"]: r for r in summary["rows"]}
    assert set(rows) == {"bandpower-lr", "eegnet", "bad"}
    bp = rows["bandpower-lr"]
    assert bp["n_seeds"] == 2 and bp["metric"] == "balanced_accuracy" and bp["ratio_vs_baseline"] == 1.0
    assert bp["balanced_accuracy"]["std"] == 0.0  # deterministic given the data: same score for every seed
    eeg = rows["eegnet"]
    cells = [json.loads((out / "cells" / "bench-task" / "eegnet" / f"seed{s}.json").read_text()) for s in (0, 1)]
    values = [c["test"]["balanced_accuracy"] for c in cells]
    assert eeg["balanced_accuracy"]["mean"] == np.mean(values)
    assert eeg["balanced_accuracy"]["ci_low"] <= np.mean(values) <= eeg["balanced_accuracy"]["ci_high"]
    assert rows["bad"]["n_seeds"] == 0 and "do not divide 800-sample windows" in rows["bad"]["failed"][0]
    md = (out / "results.md").read_text()
    assert md.count("| bench-task |") == 3 and "failed: " in md and "95 % CI" in md
    assert "| bench-task | bandpower-lr | bal. acc. |" in md and "1.00×" in md
    assert md in printed.out
    for model in ("bandpower-lr", "eegnet"):
        png = out / "confusion" / f"bench-task__{model}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((out / "config.json").read_text())
    assert config["tasks"]["bench-task"]["recipe"]["name"] == "eeg-200hz" and config["seeds"] == 2
    assert config["train"]["max_epochs"] == 1 and config["models"][2]["model_kwargs"] == {"patch_size": 300}
    # Resume: finished cells are not rerun; the failed model alone is retried.
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("seed*.json")}
    assert main(argv) == 1
    again = json.loads((out / "results.json").read_text())
    assert (again["ran"], again["skipped"], again["failed"]) == (0, 4, 2)
    for p, t in mtimes.items():
        assert (p.stat().st_mtime_ns == t) == ("/bad/" not in str(p)), p
