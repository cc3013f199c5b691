"""Pretrained weights shipped inside the package, found by name (no torch import here).

Each ``neurofm/weights/<name>/`` holds an export (``model.safetensors`` + ``config.json`` written by
:func:`neurofm.models._hub.save_pretrained`, sha256 inside) and a ``MODEL_CARD.md``. Everything that loads
an exported directory resolves its argument through :func:`resolve`, so a shipped name works wherever a
directory does: ``neurofm.models.from_pretrained("neurorvq-tiny.eeg")``, ``--checkpoint``, ``--init``.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

from neurofm._errors import StoreError, suggest
from neurofm._resources import weights_dir

WEIGHTS_ROOT = weights_dir()  # neurofm/weights inside the installed package, or $NEUROFM_WEIGHTS


def shipped(pattern: str = "*") -> dict[str, Path]:
    """Shipped weights whose name matches the glob ``pattern``: {name: directory}."""
    if not WEIGHTS_ROOT.is_dir():
        return {}
    return {d.name: d for d in sorted(WEIGHTS_ROOT.iterdir())
            if (d / "config.json").is_file() and fnmatch.fnmatch(d.name, pattern)}


def describe(directory: Path) -> dict[str, Any]:
    """One-line facts of a shipped export: model, contract summary, size, steps (from config.json)."""
    cfg = json.loads((directory / "config.json").read_text())
    contract = cfg.get("contract", {})
    size_mb = (directory / "model.safetensors").stat().st_size / 1e6 if (directory / "model.safetensors").exists() else 0
    return dict(model=cfg.get("model"), sfreq=contract.get("sfreq"), n_times=contract.get("n_times"),
                modality=contract.get("modality"), size_mb=round(size_mb, 2), release=cfg.get("release", {}))


def resolve(name_or_path: str | os.PathLike) -> Path:
    """An existing path as is; otherwise the directory of the shipped weights of that name.

    Raises
    ------
    StoreError
        Neither an existing path nor a shipped name (the message lists the shipped names).
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    found = shipped()
    if str(name_or_path) in found:
        return found[str(name_or_path)]
    names = sorted(found)
    close = suggest(str(name_or_path), names) if names else ""
    raise StoreError(f"no such model directory, and no shipped weights of that name (shipped: {', '.join(names) or 'none'}).",
                     source=str(name_or_path),
                     hint=f"{close.strip() + ' ' if close else ''}pass an exported directory (model.safetensors + config.json) "
                          "or a name from `neurofm list models --pretrained`.")
