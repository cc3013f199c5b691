"""A task defined only in YAML runs end to end; its decoder is scored on another root (--root)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from neurofm.cli import main
from tests.conftest import copy_eegmat

TASK = textwrap.dedent("""\
    # rest vs arithmetic on three subjects, written by a user: no code
    description: "EEGMAT rest vs arithmetic, subjects 00 / 01 / 02"
    dataset: eegmat
    recipe: eeg-200hz
    labels: {rest: rest, arithmetic: counting}
    split: {by: subject, train: ["00"], val: ["01"], test: ["02"]}
    metric: balanced_accuracy
""")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, eegmat_three, task_cache):
    tmp = tmp_path_factory.mktemp("yaml-task")
    task = tmp / "my-arithmetic.yaml"
    task.write_text(TASK)
    out = tmp / "run"
    code = main(["finetune", "--task", str(task), "--model", "eegnet", "--root", str(eegmat_three), "--out", str(out),
                 "--cache", str(task_cache), "--max-epochs", "2", "--seed", "3", "--quiet"])
    assert code == 0
    return task, out


def test_yaml_task_trains_a_decoder_end_to_end(trained, capsys):
    _, out = trained
    res = json.loads((out / "results.json").read_text())
    assert res["task"] == "my-arithmetic" and res["model"] == "eegnet" and res["seed"] == 3
    assert res["n"] == {"train": 30, "val": 30, "test": 30} and res["classes"] == ["rest", "counting"]
    assert 0 <= res["test"]["balanced_accuracy"] <= 1 and np.sum(res["confusion"]) == 30
    cfg = json.loads((out / "decoder" / "decoder.json").read_text())
    assert cfg["task"]["recipe"]["name"] == "eeg-200hz"  # the recipe is inlined: independent of pipelines/
    assert cfg["splits"]["train"]["subjects"] == ["00"] and cfg["splits"]["test"]["subjects"] == ["02"]
    assert [h["epoch"] for h in cfg["train"]["history"]] == [0, 1]  # --max-epochs 2, validated every epoch
    assert (out / "config.json").is_file() and (out / "decoder" / "decoder.safetensors").is_file()
    for path in out.rglob("*"):  # nothing pickled anywhere
        if path.is_file():
            assert path.suffix in (".json", ".safetensors", ".csv", ".yaml"), path
            assert path.read_bytes()[:1] != b"\x80", path


def test_decoder_checkpoint_evaluates_on_another_root(trained, tmp_path, task_cache, eegmat_three, capsys):
    _, out = trained
    other = copy_eegmat(tmp_path / "eegmat-new", ("03", "04"))
    result_file = tmp_path / "scores.json"
    code = main(["evaluate", "decoder", "--checkpoint", str(out), "--root", str(other), "--out", str(result_file),
                 "--cache", str(task_cache), "--quiet"])
    assert code == 0
    res = json.loads(result_file.read_text())
    assert res["subjects"] == ["03", "04"] and res["n_windows"] == 60 and res["trained_on"] == ["00"]
    assert set(res["per_subject"]) == {"03", "04"} and np.sum(res["confusion"]) == 60
    assert 0 <= res["metrics"]["balanced_accuracy"] <= 1
    printed = capsys.readouterr().out
    assert "on eegmat (2 subject(s), 60 windows)" in printed
    # On its own root with --split test, the decoder reproduces the test score finetune reported.
    again = tmp_path / "again.json"
    assert main(["evaluate", "decoder", "--checkpoint", str(out / "decoder"), "--root", str(eegmat_three),
                 "--split", "test", "--out", str(again), "--cache", str(task_cache), "--quiet"]) == 0
    res_test = json.loads(again.read_text())
    reported = json.loads((out / "results.json").read_text())["test"]
    assert res_test["subjects"] == ["02"]
    assert res_test["metrics"]["balanced_accuracy"] == pytest.approx(reported["balanced_accuracy"])
    assert res_test["metrics"]["auroc"] == pytest.approx(reported["auroc"])


def test_bad_checkpoint_and_root_are_one_line_errors(trained, tmp_path, capsys, task_cache):
    _, out = trained
    code = main(["evaluate", "decoder", "--checkpoint", str(out), "--root", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "x.json"), "--cache", str(task_cache), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "dataset root does not exist" in err and "HINT:" in err and len(err.strip().splitlines()) == 1
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x04\x95" + b"\x00" * 16)
    assert main(["evaluate", "decoder", "--checkpoint", str(pickle), "--out", str(tmp_path / "y.json")]) == 2
    assert "pickled checkpoint" in capsys.readouterr().err
    bad = tmp_path / "tampered"
    bad.mkdir()
    for f in ("decoder.json", "decoder.safetensors"):
        (bad / f).write_bytes((out / "decoder" / f).read_bytes())
    blob = bytearray((bad / "decoder.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (bad / "decoder.safetensors").write_bytes(bytes(blob))
    assert main(["evaluate", "decoder", "--checkpoint", str(bad), "--out", str(tmp_path / "z.json")]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
