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


def _decoders_bench():
    from tests.bench_scripts import load_bench

    return load_bench("decoders")


def test_decoders_bench_takes_shipped_weights_name_and_adds_paired_probes():
    """Regression: ``--init lbm-pre=lbm-tiny.eeg`` read ``lbm-tiny.eeg/config.json`` relative to the cwd and crashed;
    a pretrained LBM also lacked lbm-rand's alignment and train-kwargs (an unfair comparison), and the LBM columns
    kept the mean-pooling head after the channels head had replaced it in scripts/bench/pretraining.py."""
    import pytest

    from neurofm._errors import StoreError
    from neurofm.decoding.benchmark import parse_models
    from neurofm.models._pretrained import resolve

    bench = _decoders_bench()
    extra, init, freeze, align, adapt, head, kwargs = bench.init_columns(["lbm-pre=lbm-tiny.eeg"], linear_probe=True)
    names = bench.models_for("eegmat-arithmetic", extra)
    labels = {n.partition("=")[0] for n in names}
    assert {"lbm-rand", "lbm-pre", "lbm-rand-lp", "lbm-pre-lp"} <= labels
    keep = lambda items: [i for i in items if i.partition("=")[0] in labels]  # noqa: E731
    specs = {s.label: s for s in parse_models(names, init=init, freeze=freeze, align=keep(align), adapt=keep(adapt),
                                               head=keep(head),
                                               train_kwargs=[t for t in kwargs if t.partition("=")[0] in labels])}
    weights = str(resolve("lbm-tiny.eeg"))
    assert specs["lbm-pre"].init == weights and specs["lbm-pre-lp"].init == weights
    assert specs["lbm-rand"].init is None and specs["lbm-rand-lp"].init is None
    assert specs["lbm-pre"].model == specs["lbm-rand"].model == "lbm-tiny"
    # full fine-tuning: pretrained and random differ only in their init
    assert specs["lbm-pre"].align == specs["lbm-rand"].align == "subject"
    assert specs["lbm-pre"].train_kwargs == specs["lbm-rand"].train_kwargs == {"max_epochs": 4, "patience": 2}
    assert not specs["lbm-pre"].freeze and not specs["lbm-rand"].freeze
    # every LBM column: one pooled vector per channel, standardised per subject (the pretraining bench's recipe)
    for label in ("lbm-rand", "lbm-pre", "lbm-rand-lp", "lbm-pre-lp"):
        assert specs[label].head == "channels" and specs[label].adapt == "adabn-features", label
    # linear probes: frozen encoder, same alignment and training for both inits
    for label in ("lbm-rand-lp", "lbm-pre-lp"):
        assert specs[label].freeze and specs[label].align == "subject"
        assert specs[label].train_kwargs == {}
    with pytest.raises(StoreError, match="lbm-tiny.eeg"):
        bench.init_columns(["lbm-pre=lbm-tyni.eeg"])


def test_decoders_bench_paired_gain_is_per_fold_and_seed(tmp_path):
    """Pretrained − random is taken on the same fold and seed; cells on other folds are refused."""
    import pytest

    bench = _decoders_bench()

    def cell(label, seed, scores, tests=(["00"], ["01"], ["02"])):
        folds = [dict(fold=i, subjects=dict(test=t), test=dict(balanced_accuracy=v)) for i, (t, v) in enumerate(zip(tests, scores, strict=True))]
        path = tmp_path / "cells" / "t" / label / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(status="done", metric="balanced_accuracy", folds=folds,
                                        per_subject={"02": dict(balanced_accuracy=scores[2])})))

    cell("pre", 0, [0.6, 0.7, 0.8])
    cell("rand", 0, [0.5, 0.5, 0.5])
    cell("pre", 1, [0.6, 0.6, 0.6])
    cell("rand", 1, [0.5, 0.5, 0.5])
    cell("pre", 2, [0.9, 0.9, 0.9])  # no random cell for seed 2: left out
    g = bench.paired_gains(tmp_path, "t", pairs=[("pre", "rand")], held_out=("02",))["pre − rand"]
    assert g["n"] == 6 and np.isclose(g["mean"], np.mean([0.1, 0.2, 0.3, 0.1, 0.1, 0.1]))
    assert g["ci_low"] > 0 and g["held_out"]["n"] == 2 and np.isclose(g["held_out"]["mean"], 0.2)
    rows = [dict(task="t", model=m, family="neurofm-encoder", metric="balanced_accuracy",
                 balanced_accuracy=dict(mean=v)) for m, v in (("pre", 0.75), ("rand", 0.5))]
    line = bench.goals(rows, {"t": {"pre − rand": g}})
    assert any("pre − rand = +0.150" in x and x.endswith("met") for x in line)
    cell("rand", 0, [0.5, 0.5, 0.5], tests=(["01"], ["00"], ["02"]))
    with pytest.raises(ValueError, match="other subjects"):
        bench.paired_gains(tmp_path, "t", pairs=[("pre", "rand")])
    # cells of one column computed with different configurations (e.g. seeds left from another init) are refused
    cell("rand", 0, [0.5, 0.5, 0.5])
    for seed, chash in ((0, "h-new"), (1, "h-old")):
        path = tmp_path / "cells" / "t" / "pre" / f"seed{seed}.json"
        path.write_text(json.dumps(dict(json.loads(path.read_text()), config_hash=chash)))
    with pytest.raises(ValueError, match="different configurations"):
        bench.paired_gains(tmp_path, "t", pairs=[("pre", "rand")])


def test_pretraining_bench_columns_differ_only_in_their_init():
    """scripts/bench/pretraining.py: random and pretrained LBM columns (fine-tuned and probed) share head,
    alignment, adaptation and training settings, so a paired gain measures the init alone."""
    from pathlib import Path

    from neurofm.cli import build_parser
    from neurofm.decoding.benchmark import parse_models
    from tests.bench_scripts import load_bench

    bench = load_bench("pretraining")
    argv = bench.benchmark_args("eegmat-arithmetic", 6, ["classical", "rand", "pre"], init="lbm-tiny.eeg", seeds=2,
                                ft_epochs=4, out=Path("unused"))
    a = build_parser().parse_args(argv)
    specs = {s.label: s for s in parse_models(a.models, init=a.init, head=a.head, freeze=a.freeze, align=a.align,
                                              adapt=a.adapt, train_kwargs=a.train_kwargs)}
    for pre, rand in bench.PAIRS:
        p, r = specs[pre].to_dict(), specs[rand].to_dict()
        assert p.pop("init") == "lbm-tiny.eeg" and r.pop("init", None) is None
        p.pop("label"), r.pop("label")
        assert p == r and p["head"] == "channels" and p["adapt"] == "adabn-features" and p["align"] == "subject"
    assert specs["lbm-pre-ch-lp"].freeze and not specs["lbm-pre-ch"].freeze
    assert {"bandpower-lr", "bp-subj", "ts-subj"} <= set(specs) and a.cv == 6 and a.seeds == 2
    # --feature-layer: every LBM column, pretrained and random, reads the same layer; the classical ones are untouched
    argv = bench.benchmark_args("eegmat-arithmetic", 6, ["classical", "rand", "pre"], init="lbm-tiny.eeg", seeds=2,
                                ft_epochs=4, out=Path("unused"), feature_layer=2)
    a = build_parser().parse_args(argv)
    specs = {s.label: s for s in parse_models(a.models, init=a.init, head=a.head, freeze=a.freeze, align=a.align,
                                              adapt=a.adapt, train_kwargs=a.train_kwargs, model_kwargs=a.model_kwargs)}
    for pre, rand in bench.PAIRS:
        assert specs[pre].model_kwargs == specs[rand].model_kwargs == {"feature_layer": 2}
    assert not specs["ts-subj"].model_kwargs


def test_pretraining_bench_builds_a_tokenizer_encoders_random_twin_with_the_pretrained_architecture():
    """--encoder neurorvq-tiny: the columns are tok-*, the pretrained ones start from the shipped tokenizer, and
    the random ones are built with the constructor arguments it was exported with (its registered defaults have
    other levels and codebooks), so the paired gain still measures the init alone."""
    from pathlib import Path

    from neurofm.cli import build_parser
    from neurofm.decoding.benchmark import parse_models
    from neurofm.models._hub import read_config
    from tests.bench_scripts import load_bench

    bench = load_bench("pretraining")
    kwargs = bench.random_init_kwargs("neurorvq-tiny", "neurorvq-tiny.eeg")
    assert kwargs == read_config("neurorvq-tiny.eeg")[1]["kwargs"] and kwargs["n_levels"] == 10
    assert bench.random_init_kwargs("lbm-tiny", "lbm-tiny.eeg") == {}
    argv = bench.benchmark_args("eegmmidb-imagery-lr-xsubj", 4, ["rand", "pre"], init="neurorvq-tiny.eeg", seeds=4,
                                ft_epochs=4, out=Path("unused"), encoder="neurorvq-tiny", rand_kwargs=kwargs)
    a = build_parser().parse_args(argv)
    specs = {s.label: s for s in parse_models(a.models, init=a.init, head=a.head, freeze=a.freeze, align=a.align,
                                              adapt=a.adapt, train_kwargs=a.train_kwargs,
                                              model_kwargs=a.model_kwargs)}
    pairs = bench.pairs_of("neurorvq-tiny")
    assert pairs == [("tok-pre-ch", "tok-rand-ch"), ("tok-pre-ch-lp", "tok-rand-ch-lp")]
    for pre, rand in pairs:
        assert specs[pre].model == specs[rand].model == "neurorvq-tiny"
        assert specs[pre].init == "neurorvq-tiny.eeg" and specs[rand].init is None
        assert specs[rand].model_kwargs == kwargs and not specs[pre].model_kwargs
        assert specs[pre].head == specs[rand].head == "channels" and specs[pre].freeze == specs[rand].freeze


def test_pretraining_bench_pools_pretraining_runs_on_their_common_pairs(tmp_path):
    """--pool: each pretraining run's gain on the fold × seed pairs all runs finished, and the interval over the
    runs' means (the pretraining run's own variance), which a single run's interval over pairs does not hold."""
    import pytest

    from tests.bench_scripts import load_bench

    bench = load_bench("pretraining")

    def cell(run, label, seed, scores):
        folds = [dict(fold=i, subjects=dict(test=[f"{i:02d}"]), test=dict(balanced_accuracy=v))
                 for i, v in enumerate(scores)]
        path = tmp_path / run / "t" / "cells" / "t" / label / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(status="done", metric="balanced_accuracy", folds=folds)))

    for run, gain in (("r0", 0.10), ("r1", -0.02), ("r2", 0.04)):
        for seed in (0, 1):
            cell(run, "lbm-rand-ch", seed, [0.5, 0.6])
            cell(run, "lbm-pre-ch", seed, [0.5 + gain, 0.6 + gain])
    cell("r0", "lbm-rand-ch", 2, [0.5, 0.5])  # a third seed in one run only: not a common pair
    cell("r0", "lbm-pre-ch", 2, [0.9, 0.9])
    runs = [tmp_path / r for r in ("r0", "r1", "r2")]
    g = bench.pooled_gains(runs, "t")["lbm-pre-ch − lbm-rand-ch"]
    assert g["pairs"] == ["seed0/fold0", "seed0/fold1", "seed1/fold0", "seed1/fold1"]
    assert [round(r["mean"], 6) for r in g["runs"]] == [0.10, -0.02, 0.04]
    o = g["over_runs"]
    assert o["n"] == 3 and o["mean"] == pytest.approx(0.04) and o["ci_low"] < 0 < o["ci_high"]
    # every pair gains the same +0.04 on average over runs: the pairs' interval collapses, the runs' does not
    assert g["over_pairs"]["mean"] == pytest.approx(0.04) and g["over_pairs"]["std"] == pytest.approx(0, abs=1e-12)
    assert bench.main(["--pool", *map(str, runs), "--tasks", "t", "--out", str(tmp_path / "pooled")]) == 0
    saved = json.loads((tmp_path / "pooled" / "pooled.json").read_text())
    assert saved["tasks"]["t"]["lbm-pre-ch − lbm-rand-ch"]["over_runs"]["n"] == 3
    assert saved["tasks"]["t"]["lbm-pre-ch − lbm-rand-ch"]["goal_met"] is False


def test_the_pooled_pretraining_goal_needs_both_intervals_above_zero():
    """Regression: the pooled goal line read the interval over pretraining runs only, which holds the folds (the test
    subjects) fixed; eegmat's five runs cleared it ([+0.014, +0.055]) while the pairs' interval crossed 0."""
    from tests.bench_scripts import load_bench

    bench = load_bench("pretraining")

    def gain(mean, runs_low, pairs_low, n=5):
        return dict(over_runs=dict(n=n, mean=mean, ci_low=runs_low), over_pairs=dict(n=12, mean=mean, ci_low=pairs_low))

    assert bench.pooled_goal_met(gain(0.034, 0.014, 0.002))
    assert not bench.pooled_goal_met(gain(0.034, 0.014, -0.016))   # subjects' interval crosses 0
    assert not bench.pooled_goal_met(gain(0.034, -0.01, 0.005))    # runs' interval crosses 0
    assert not bench.pooled_goal_met(gain(0.025, 0.01, 0.01))      # below the +0.03 target
    assert not bench.pooled_goal_met(gain(0.05, 0.02, 0.02, n=1))  # one run: no interval over runs


def test_pretraining_bench_summary_keeps_the_tasks_run_before(tmp_path):
    """Regression: each run of scripts/bench/pretraining.py rewrote pretraining.json with its own tasks only, so
    eegmat run with 2 seeds and then imagery with 4 into the same --out left only imagery (fourteenth and fifteenth
    sessions). Tasks merge now, each with its own seeds and init; a task run again replaces its entry."""
    from tests.bench_scripts import load_bench

    bench = load_bench("pretraining")
    bench.write_summary(tmp_path, {"eegmat-arithmetic": dict(seeds=2, init="a", rows=[1])})
    bench.write_summary(tmp_path, {"eegmmidb-imagery-lr-xsubj": dict(seeds=4, init="a", rows=[2])})
    bench.write_summary(tmp_path, {"eegmat-arithmetic": dict(seeds=2, init="b", rows=[3])})
    tasks = json.loads((tmp_path / "pretraining.json").read_text())["tasks"]
    assert tasks == {"eegmat-arithmetic": dict(seeds=2, init="b", rows=[3]),
                     "eegmmidb-imagery-lr-xsubj": dict(seeds=4, init="a", rows=[2])}


def test_a_finished_cell_is_rerun_when_its_pretrained_weights_change(tmp_path):
    """Regression: the cell hash held the --init name or path only, so a benchmark rerun after the shipped LBM was
    retrained under the same name (or an export directory was overwritten) kept the old weights' scores as done."""
    from neurofm.decoding.benchmark import ModelSpec, _cell_hash

    export = tmp_path / "lbm-export"
    export.mkdir()
    spec = ModelSpec("lbm-pre", "lbm-tiny", init=str(export))
    hashes = []
    for sha in ("aa" * 32, "bb" * 32, "aa" * 32):
        (export / "config.json").write_text(json.dumps(dict(model="lbm-tiny", sha256=sha)))
        hashes.append(_cell_hash({"name": "t"}, spec, {"lr": 1e-3}))
    assert hashes[0] != hashes[1] and hashes[0] == hashes[2]
    # a column without an init hashes as before (finished baseline cells are kept)
    plain = ModelSpec("bp", "bandpower-lr")
    assert "init_sha256" not in plain.to_dict()
    from neurofm.decoding.benchmark import _init_sha256
    from neurofm.models._pretrained import resolve

    shipped = json.loads((resolve("lbm-tiny.eeg") / "config.json").read_text())["sha256"]
    assert _init_sha256("lbm-tiny.eeg") == shipped and len(shipped) == 64


def test_aligned_store_copies_whiten_each_subject_and_leave_the_source_untouched(tmp_path, eegmat_store):
    """scripts/bench/aligned_stores.py: each subject's windows (all its recordings) come out with its shrunk mean
    covariance at the identity, labels and layout kept; the source store is not written to, nor written inside."""
    import numpy as np
    import pytest

    from neurofm.data.dataset import WindowStore
    from neurofm.decoding.align import SHRINK
    from tests.bench_scripts import load_bench

    bench = load_bench("aligned_stores")
    before = {p.name: p.read_bytes() for p in (eegmat_store / "shards").glob("*.npy")}
    assert bench.main([str(eegmat_store), "--dest", str(tmp_path / "aligned")]) == 0
    src, out = WindowStore(eegmat_store), WindowStore(tmp_path / "aligned" / eegmat_store.name)
    assert len(out) == len(src) and list(out.subjects) == list(src.subjects) and list(out.labels) == list(src.labels)
    for subject in sorted(set(out.subjects.tolist())):
        idx = np.flatnonzero(out.subjects == subject)
        x = np.stack([out[i] for i in idx]).astype(np.float64)
        x -= x.mean(-1, keepdims=True)
        c = np.einsum("nct,ndt->cd", x, x) / (x.shape[0] * x.shape[2])
        # whitened by the shrunk covariance: the shrunk version of the aligned covariance is the identity
        n = c.shape[0]
        raw = np.stack([src[i] for i in idx]).astype(np.float64)
        raw -= raw.mean(-1, keepdims=True)
        cr = np.einsum("nct,ndt->cd", raw, raw) / (raw.shape[0] * raw.shape[2])
        shrunk = (1 - SHRINK) * cr + SHRINK * np.trace(cr) / n * np.eye(n)
        w, v = np.linalg.eigh(shrunk)
        r = (v / np.sqrt(w)) @ v.T
        np.testing.assert_allclose(c, r @ cr @ r, atol=1e-4)
        # λ / ((1 − s) λ + s · mean λ): never above 1 / (1 − s), the bound of whitening by a shrunk covariance
        assert np.linalg.eigvalsh(c).max() <= 1 / (1 - SHRINK) + 1e-4
    assert {p.name: p.read_bytes() for p in (eegmat_store / "shards").glob("*.npy")} == before
    from neurofm._errors import ConfigError

    with pytest.raises(ConfigError, match="outside its source"):
        bench.align_store(eegmat_store, eegmat_store / "aligned")
    assert not (eegmat_store / "aligned").exists()


def test_aligned_stores_refuse_bad_input_in_one_line_and_write_nothing(tmp_path, eegmat_store, capsys):
    """A folder that is not a store, or a destination inside its source: exit 2, one line naming the path and the
    fix, and nothing written at the destination."""
    from tests.bench_scripts import load_bench

    bench = load_bench("aligned_stores")
    (tmp_path / "not-a-store").mkdir()
    assert bench.main([str(tmp_path / "not-a-store"), "--dest", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not-a-store" in err and "HINT" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "not-a-store").exists()
    assert bench.main([str(eegmat_store), "--dest", str(eegmat_store / "inside")]) == 2
    err = capsys.readouterr().err.strip()
    assert "outside its source" in err and len(err.splitlines()) == 1 and not (eegmat_store / "inside").exists()
