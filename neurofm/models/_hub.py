"""Saving and loading weights: safetensors + config.json with the signal contract and sha256.

Layout of an exported model directory::

    DIR/model.safetensors   the state dict (tensors only: no pickle, no code)
    DIR/config.json         {"model": registered name, "kwargs": {...}, "contract": {...},
                             "sha256": hex digest of model.safetensors, "neurofm_version": ...}

A name of weights shipped in the package (``neurofm list models --pretrained``) stands for its directory.
Only safetensors are loaded. Pickled checkpoints (``.pt``/``.ckpt``) are refused with a hint on how
to export them; a digest mismatch is refused too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from neurofm._errors import ContractError, StoreError
from neurofm.data.store import verify_sha256
from neurofm.models._contract import SignalContract

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


RUNTIME_KWARGS = ("sync_codebook",)  # set by the trainer at run time, never saved


def build(cls: type, config: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """Instantiate ``cls`` from a named config plus overrides, remembering the resolved config.

    The resolved config (``model.init_config``) is what ``save_pretrained`` writes, so an export
    rebuilds exactly, even after the named config changes.
    """
    resolved = {**config, **kwargs}
    model = cls(**resolved)
    model.init_config = {k: v for k, v in resolved.items() if k not in RUNTIME_KWARGS}
    return model


def save_pretrained(model: Any, directory: str | os.PathLike, *, name: str, kwargs: dict[str, Any],
                    contract: SignalContract, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and config to ``directory`` (atomically per file)."""
    from safetensors.torch import save_file

    from neurofm import __version__
    from neurofm.data.store import atomic_path, sha256_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS) as tmp:
        # One metadata key only: safetensors writes metadata in hash-map order, so several keys would make
        # the bytes (and the sha256) of the same weights differ between processes. The name is in config.json.
        save_file(state, str(tmp), metadata={"format": "pt"})
    kwargs = {**getattr(model, "init_config", {}), **{k: v for k, v in kwargs.items() if k not in RUNTIME_KWARGS}}
    config = dict(model=name, kwargs=kwargs, contract=contract.to_dict(), sha256=sha256_file(directory / WEIGHTS),
                  neurofm_version=__version__, **(extra or {}))
    with atomic_path(directory / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=2, default=_jsonable))
    return directory


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _refuse_pickle(path: Path) -> None:
    head = path.read_bytes()[:4] if path.is_file() else b""
    if head[:2] == b"\x80\x02" or head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
        raise StoreError("this is a pickled checkpoint (torch.save/zip), which can run arbitrary code when loaded.",
                         source=path, hint="export it to safetensors with `neurofm export --checkpoint CKPT --out DIR` "
                                           "on a machine you trust, then load DIR.")


def read_config(directory: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """Validate an exported directory (or a shipped name, see :mod:`neurofm.models._pretrained`) and return
    (weights path, config) after checking the sha256."""
    from neurofm.models._pretrained import resolve

    directory = resolve(directory)
    if directory.is_file():
        _refuse_pickle(directory)
        if directory.suffix == ".safetensors":
            directory = directory.parent
        else:
            raise StoreError("not a neurofm model directory.", source=directory,
                             hint=f"pass the directory holding {WEIGHTS} and {CONFIG}.")
    weights, cfg_path = directory / WEIGHTS, directory / CONFIG
    if not weights.exists() or not cfg_path.exists():
        pickles = sorted(p.name for p in directory.glob("*") if p.suffix in (".pt", ".pth", ".ckpt", ".bin", ".pkl"))
        raise StoreError(f"no {WEIGHTS} + {CONFIG}{f' (found pickles {pickles})' if pickles else ''}.", source=directory,
                         hint="load only exported safetensors: `neurofm export --checkpoint CKPT --out DIR`.")
    try:
        config = json.loads(cfg_path.read_text())
    except ValueError as err:
        raise StoreError(f"config.json is not valid JSON ({err}).", source=cfg_path, hint="export the model again.") from None
    if not (isinstance(config, dict) and isinstance(config.get("model"), str) and isinstance(config.get("contract"), dict)
            and isinstance(config.get("kwargs", {}), dict)):
        raise StoreError("config.json lacks the model name, its kwargs or its signal contract.", source=cfg_path,
                         hint="export the model again with `neurofm export`; never edit config.json by hand.")
    verify_sha256(weights, config.get("sha256"), recorded_in="config.json",
                  hint="download/copy the weights again, or re-export them; never edit them by hand.")
    return weights, config


def from_pretrained(directory: str | os.PathLike, **overrides: Any) -> Any:
    """Build the registered model named in ``config.json`` and load its safetensors weights strictly.

    The returned module has a ``contract`` attribute (:class:`SignalContract`).
    """
    from safetensors.torch import load_file

    from neurofm.registry import create_model

    weights, config = read_config(directory)
    kwargs = dict(config.get("kwargs", {}))
    kwargs.update(overrides)
    model = create_model(config["model"], **kwargs)
    try:
        state = load_file(str(weights))
    except Exception as err:  # SafetensorError (header too large, truncated, ...): a damaged file, not a bug
        raise StoreError(f"model.safetensors is damaged and cannot be read ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:160]}); its config.json digest was updated to match it.",
                         source=weights, hint="copy or download the weights again, or re-export them with "
                         "`neurofm export`; never edit model.safetensors or its digest by hand.") from None
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ContractError(f"weights do not fit model '{config['model']}' built from config.json "
                            f"({str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err}).",
                            source=weights, hint="export again with this neurofm version; kwargs in config.json "
                                                 "must describe the saved architecture.") from None
    if result.missing_keys or result.unexpected_keys:
        raise ContractError(f"weights do not fit model '{config['model']}': missing {result.missing_keys[:5]}, "
                            f"unexpected {result.unexpected_keys[:5]}.", source=weights,
                            hint="load with the same model name and kwargs it was exported with (config.json).")
    model.contract = SignalContract.from_dict(config["contract"])
    model.eval()
    return model
