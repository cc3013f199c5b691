"""Exception types for user-facing problems.

A :class:`NeurofmError` is a problem with the user's input (a file, a config
key, a dataset root), not a bug. The CLI prints its message on one line and
exits non-zero without a traceback. Every message names the offending input
and ends in a concrete ``HINT``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NeurofmError(Exception):
    """Base class for errors caused by user input rather than by a bug."""

    def __init__(self, message: str, *, source: str | None = None, hint: str | None = None):
        self.source = None if source is None else str(source)
        self.hint = hint
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        msg = self.detail
        if self.source:
            msg = f"{self.source}: {msg}"
        if self.hint:
            msg = f"{msg} HINT: {self.hint}"
        return msg


class RecordingError(NeurofmError):
    """A recording cannot be read or is not usable as it is."""


class UnknownFormatError(RecordingError):
    """No reader knows the file's extension."""


class CorruptFileError(RecordingError):
    """The file is empty, truncated or its header disagrees with its size."""


class ChannelError(RecordingError):
    """Channels are duplicated, missing or unusable."""


class SignalQualityError(RecordingError):
    """The samples are not usable: non-finite, flat, or at an implausible scale."""


class EventsError(RecordingError):
    """An event-locked recipe met a recording without the requested events."""


class ConfigError(NeurofmError):
    """A YAML config or recipe is invalid."""


class RegistryError(NeurofmError, KeyError):
    """A name is unknown to the registry, or registered twice."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class DatasetRootError(NeurofmError):
    """A dataset root does not exist or does not have the expected layout."""


class StoreError(NeurofmError):
    """A store on disk is missing, incomplete or inconsistent."""


class ContractError(NeurofmError):
    """Data does not match a model's signal contract (rate, channels, units)."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""
