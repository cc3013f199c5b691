"""The wheel carries the recipes, tasks and configs; user folders come first; `neurofm --version`."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli


def _run(args: list[str], cwd: Path, pythonpath: str, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": pythonpath, **env}
    return subprocess.run([sys.executable, "-m", "neurofm.cli", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the environment's setuptools builds it (no network); setup.py copies the data in.
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = out.glob("neurofm-*.whl")
    return whl


def test_wheel_ships_recipes_tasks_and_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("pipelines", "configs/tasks", "configs/pretrain", "configs/trainer"):
        for path in sorted((REPO / folder).glob("*.yaml")):
            assert f"neurofm/_data/{folder}/{path.name}" in names, path
    assert "neurofm/cli.py" in names


def test_wheel_installs_and_lists_from_another_folder(wheel, tmp_path):
    target = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                          str(wheel)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = _run(["list", "pipelines"], elsewhere, str(target))
    assert out.returncode == 0, out.stderr
    shipped = sorted(p.stem for p in (REPO / "pipelines").glob("*.yaml"))
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert listed == shipped
    # the installed copy is the one imported, and a YAML task and a pretrain config resolve from it
    out = _run(["list", "tasks", "eegmmidb-real-lr"], elsewhere, str(target))
    assert "eegmmidb-real-lr" in out.stdout, out.stderr
    code = ("import neurofm, neurofm._resources as r; print(neurofm.__file__); "
            "print(r.resolve_config('configs/pretrain/neurorvq-tiny.yaml'))")
    res = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(target)})
    module, config = res.stdout.split()
    assert Path(module).is_relative_to(target)
    assert Path(config).is_relative_to(target) and Path(config).is_file()


def test_user_pipeline_folder_is_searched_first(tmp_path):
    user = tmp_path / "recipes"
    user.mkdir()
    text = (REPO / "pipelines" / "eeg-200hz.yaml").read_text()
    (user / "eeg-200hz.yaml").write_text(text.replace("description:", "description: MINE", 1))
    (user / "my-recipe.yaml").write_text(text.replace("name: eeg-200hz", "name: my-recipe", 1))
    out = _run(["list", "pipelines"], tmp_path, str(REPO), NEUROFM_PIPELINES=str(user))
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "my-recipe" in lines
    assert "MINE" in lines["eeg-200hz"]  # the user's copy shadows the shipped one


def test_version():
    from neurofm import __version__

    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"neurofm {__version__}"


def test_release_and_benchmark_read_the_recipe_of_the_shipped_pretrain_config():
    """The release script and the tokenizer bench take a model's rate and keywords from configs/pretrain, so the
    shipped weights are trained as `neurofm pretrain --config configs/pretrain/<name>.yaml` would train them."""
    import yaml

    from neurofm._resources import pretrain_init_args, pretrain_lr, shipped_dir

    for name in ("neurorvq-tiny", "lbm-tiny"):
        cfg = yaml.safe_load((shipped_dir("pretrain") / f"{name}.yaml").read_text())["model"]["init_args"]
        assert pretrain_init_args(name) == cfg
        assert pretrain_lr(name) == float(cfg["lr"])
    assert pretrain_init_args("lbm-tiny")["model_kwargs"]["target_levels"] >= 1
    assert pretrain_init_args("no-such-model") == {} and pretrain_lr("no-such-model") is None


def test_every_shipped_pretrain_config_parses(capsys):
    """A module moved or renamed breaks a config only when LightningCLI parses it: parse every one here
    (`neurofm pretrain --config X --print_config`: jsonargparse imports each class_path and checks its init_args)."""
    import yaml

    from neurofm.training.cli import main

    configs = sorted((REPO / "configs" / "pretrain").glob("*.yaml"))
    assert len(configs) >= 11
    for path in configs:
        with pytest.raises(SystemExit) as done:
            main(["--config", str(path), "--print_config"])
        assert done.value.code in (0, None), path.name
        printed, written = yaml.safe_load(capsys.readouterr().out), yaml.safe_load(path.read_text())
        for part in ("model", "data"):
            if isinstance(written.get(part), dict) and "class_path" in written[part]:
                assert printed[part]["class_path"] == written[part]["class_path"], (path.name, part)
