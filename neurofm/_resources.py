"""Where shipped recipes, task YAMLs, configs and weights live: a checkout or the installed package.

In a source checkout (or an editable install) the repository folders ``pipelines/`` and ``configs/`` are used
directly. A wheel carries copies of them under ``neurofm/_data/`` (copied by ``setup.py`` at build time) and
they are found with :mod:`importlib.resources`, from any working directory. User folders come first:
``$NEUROFM_PIPELINES`` (recipes) and ``$NEUROFM_TASKS`` (task YAMLs), each an ``os.pathsep``-separated list.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_ROOT.parent

# Shipped resource name -> folder relative to the repository root (and to neurofm/_data/ in a wheel).
SHIPPED = {
    "pipelines": "pipelines",
    "tasks": "configs/tasks",
    "pretrain": "configs/pretrain",
    "trainer": "configs/trainer",
    "preprocess": "configs/preprocess",
}
USER_ENV = {"pipelines": "NEUROFM_PIPELINES", "tasks": "NEUROFM_TASKS"}


def shipped_dir(kind: str) -> Path:
    """The folder holding the shipped ``kind`` files (checkout first, then the package data)."""
    rel = SHIPPED[kind]
    checkout = _REPO_ROOT / rel
    if checkout.is_dir() and (_REPO_ROOT / "pyproject.toml").is_file():
        return checkout
    return Path(str(resources.files("neurofm") / "_data" / rel))


def user_dirs(kind: str) -> list[Path]:
    """Folders named by the user's environment variable for ``kind`` (searched before the shipped one)."""
    env = os.environ.get(USER_ENV.get(kind, ""), "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]


def yaml_files(kind: str) -> list[Path]:
    """Every ``*.yaml`` of ``kind``: user folders first; a user file shadows a shipped one of the same name."""
    seen: dict[str, Path] = {}
    for folder in [*user_dirs(kind), shipped_dir(kind)]:
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                seen.setdefault(path.stem, path)
    return list(seen.values())


def resolve_config(path: str) -> str:
    """A ``--config`` path as given if it exists, else the shipped copy of ``configs/...`` / ``pipelines/...``.

    So ``neurofm pretrain --config configs/pretrain/neurorvq-tiny.yaml`` works from any folder once installed.
    """
    if Path(path).exists():
        return path
    norm = Path(path).as_posix().lstrip("./")
    for kind, rel in SHIPPED.items():
        if norm.startswith(rel + "/"):
            candidate = shipped_dir(kind) / norm[len(rel) + 1:]
            if candidate.is_file():
                return str(candidate)
    return path


def weights_dir() -> Path:
    """Folder of shipped pretrained weights (``neurofm/weights/<name>/``); ``$NEUROFM_WEIGHTS`` overrides it."""
    env = os.environ.get("NEUROFM_WEIGHTS")
    return Path(env) if env else Path(str(resources.files("neurofm") / "weights"))


def pretrain_init_args(name: str) -> dict:
    """The model's ``init_args`` in the shipped ``configs/pretrain/<name>.yaml`` (what ``neurofm pretrain`` builds
    it with), or ``{}`` when there is no such config. The release script and the tokenizer benchmark read the
    learning rate and model keywords from here, so a model's recipe is set in one place."""
    import yaml

    path = shipped_dir("pretrain") / f"{name}.yaml"
    if not path.is_file():
        return {}
    return dict(yaml.safe_load(path.read_text())["model"].get("init_args") or {})


def pretrain_lr(name: str) -> float | None:
    """The learning rate of :func:`pretrain_init_args` (None when the config sets none)."""
    lr = pretrain_init_args(name).get("lr")
    return None if lr is None else float(lr)
