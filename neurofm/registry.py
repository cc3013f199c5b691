"""The single registry of neurofm names: datasets, pipelines, models and tasks.

Modelled on timm's registry: ``register_*`` adds an entry, ``list_*(pattern)``
lists names matching a glob, ``create_*`` builds the object. Entries may point
at their implementation through a lazy import string (``"pkg.mod:attr"``), so
that listing names never imports torch.

Registering the same name twice is an error.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from neurofm._errors import RegistryError, suggest

KINDS = ("datasets", "pipelines", "models", "tasks")


@dataclass(frozen=True)
class Entry:
    """One registered name.

    Parameters
    ----------
    name : str
        The unique name within its kind.
    target : str | Callable
        The factory, or a lazy import string ``"package.module:attribute"``.
    description : str
        One line shown by ``neurofm list``.
    meta : dict
        Free-form metadata (licence, channels, sfreq, labels, ...).
    """

    kind: str
    name: str
    target: str | Callable[..., Any]
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Any]:
        """Import and return the factory."""
        if callable(self.target):
            return self.target
        module, _, attr = self.target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        return obj


_REGISTRY: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
_BUILTINS_LOADED = False


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise RegistryError(
            f"unknown registry kind '{kind}'.{suggest(kind, KINDS)}", hint=f"use one of {', '.join(KINDS)}"
        )


def register(kind: str, name: str, target: str | Callable[..., Any], description: str = "", **meta: Any) -> Entry:
    """Register ``name`` under ``kind``; a duplicate name raises :class:`RegistryError`."""
    _check_kind(kind)
    table = _REGISTRY[kind]
    if name in table:
        raise RegistryError(
            f"{kind[:-1]} '{name}' is already registered (by {table[name].target!r}).",
            hint="pick another name, or unregister the existing entry first.",
        )
    entry = Entry(kind, name, target, description, dict(meta))
    table[name] = entry
    return entry


def unregister(kind: str, name: str) -> None:
    """Remove an entry (mainly for tests and plugins replacing a built-in)."""
    _check_kind(kind)
    _REGISTRY[kind].pop(name, None)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        importlib.import_module("neurofm._builtins")


def entries(kind: str, pattern: str = "*") -> list[Entry]:
    """Entries of ``kind`` whose names match the glob ``pattern``, sorted by name."""
    _check_kind(kind)
    _load_builtins()
    return [e for n, e in sorted(_REGISTRY[kind].items()) if fnmatch.fnmatchcase(n, pattern)]


def get_entry(kind: str, name: str) -> Entry:
    """The entry called ``name``; an unknown name raises with the nearest suggestion."""
    _check_kind(kind)
    _load_builtins()
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise RegistryError(
            f"unknown {kind[:-1]} '{name}'.{suggest(name, _REGISTRY[kind])}",
            hint=f"run `neurofm list {kind}` to see what is registered.",
        ) from None


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Build the object registered as ``name``."""
    entry = get_entry(kind, name)
    return entry.resolve()(**kwargs)


# timm-style shorthands -------------------------------------------------------------------------
def register_dataset(name: str, target: str | Callable[..., Any], description: str = "", **meta: Any) -> Entry:
    return register("datasets", name, target, description, **meta)


def register_pipeline(name: str, target: str | Callable[..., Any], description: str = "", **meta: Any) -> Entry:
    return register("pipelines", name, target, description, **meta)


def register_model(name: str, target: str | Callable[..., Any], description: str = "", **meta: Any) -> Entry:
    return register("models", name, target, description, **meta)


def register_task(name: str, target: str | Callable[..., Any], description: str = "", **meta: Any) -> Entry:
    return register("tasks", name, target, description, **meta)


def list_datasets(pattern: str = "*") -> list[str]:
    return [e.name for e in entries("datasets", pattern)]


def list_pipelines(pattern: str = "*") -> list[str]:
    return [e.name for e in entries("pipelines", pattern)]


def list_models(pattern: str = "*") -> list[str]:
    return [e.name for e in entries("models", pattern)]


def list_tasks(pattern: str = "*") -> list[str]:
    return [e.name for e in entries("tasks", pattern)]


def create_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model. With ``n_outputs`` and ``chs_info`` or ``n_chans`` (braindecode's contract:
    ``n_chans, n_outputs, n_times, sfreq, chs_info``), a neurofm encoder comes back with a head as
    ``forward(X) -> logits`` (``neurofm.models._braindecode``).
    """
    entry = get_entry("models", name)
    # braindecode's contract is recognised by its channel arguments: a model's own n_outputs (Du-IN classifier with
    # subjects/regions) keeps the native constructor.
    contract = "n_outputs" in kwargs and ("chs_info" in kwargs or "n_chans" in kwargs)
    if contract and str(entry.meta.get("family", "")).startswith("neurofm-"):
        from neurofm.models._braindecode import build

        return build(entry.resolve(), **kwargs)
    return entry.resolve()(**kwargs)
