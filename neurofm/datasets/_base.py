"""Dataset descriptions: where recordings are, who they belong to, what they are labelled.

A dataset lists :class:`RecordingRef` entries (cheap: no file is read) and
loads one at a time into a :class:`Recording` (an MNE Raw in Volts with its
channel table and labelled events). Every dataset's root can be overridden;
the default is ``$NEUROFM_DATA/<subdir>``, else ``../shared/data/<subdir>``
beside the repository.
"""

from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from neurofm._errors import DatasetRootError

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_root() -> Path:
    """``$NEUROFM_DATA`` if set, else ``../shared/data`` next to the repository."""
    env = os.environ.get("NEUROFM_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


@dataclass(frozen=True)
class Event:
    """A labelled span of a recording (seconds from the first sample)."""

    onset: float
    duration: float
    label: str


@dataclass
class RecordingRef:
    """One recording of a dataset, before it is read."""

    id: str
    path: Path
    subject: str
    session: str | None = None
    run: str | None = None
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # How to read it, set by the run (the recipe's montage step, --sfreq); not part of the recording's identity.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recording:
    """A loaded recording: data in Volts, channel decisions, labelled events."""

    ref: RecordingRef
    raw: Any  # mne.io.BaseRaw
    channels: Any  # neurofm.io.ChannelTable
    events: list[Event] = field(default_factory=list)
    target: str | None = None  # name of a continuous target channel (regression), kept out of the inputs


class Dataset:
    """Base class for datasets. Subclasses set the class attributes and implement ``recordings``/``load``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    licence: ClassVar[str] = ""
    subdir: ClassVar[str] = ""
    modality: ClassVar[str] = "eeg"
    line_freq: ClassVar[float | None] = None
    sfreq: ClassVar[float | None] = None
    labels: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_data_root() / self.subdir
        self.root_given = root is not None

    def check_root(self) -> None:
        if not self.root.is_dir():
            how = "--root PATH" if not self.root_given else "a path that exists"
            raise DatasetRootError(
                f"dataset root does not exist for '{self.name}'.", source=self.root,
                hint=f"pass {how} pointing at a copy of the dataset with the same layout, "
                "or set NEUROFM_DATA to the folder holding eeg/ and ieeg/.")

    def recordings(self) -> list[RecordingRef]:
        raise NotImplementedError

    def load(self, ref: RecordingRef) -> Recording:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return dict(name=self.name, description=self.description, licence=self.licence, modality=self.modality,
                    sfreq=self.sfreq, line_freq=self.line_freq, labels=list(self.labels), root=str(self.root))

    def _empty(self, pattern: str) -> DatasetRootError:
        return DatasetRootError(
            f"no recordings matching '{pattern}' under the root of dataset '{self.name}'.", source=self.root,
            hint="check that --root points at the dataset folder itself (same layout as ../shared/data).")


PRELOAD: contextvars.ContextVar[bool] = contextvars.ContextVar("neurofm_preload", default=True)
"""Whether :func:`read_standard` loads samples when not told; the streaming engine sets it False while loading."""


def read_standard(ref: RecordingRef, *, modality: str | None = None, preload: bool | None = None):
    """Read ``ref.path`` with MNE and make its channels canonical (BIDS sidecars beside it are used).

    ``preload=None`` follows :data:`PRELOAD` (True unless the streaming engine is reading lazily).
    """
    from neurofm.io import Sidecars, read_raw, standardize_channels

    raw = read_raw(ref.path, preload=PRELOAD.get() if preload is None else preload, sfreq=ref.options.get("sfreq"))
    table = standardize_channels(raw, sidecars=Sidecars.find(ref.path), modality=modality,
                                 montage=ref.options.get("montage"))
    return raw, table


def annotation_events(raw, mapping: dict[str, str] | None = None) -> list[Event]:
    """Events from ``raw.annotations``; with ``mapping``, keep only mapped descriptions, renamed."""
    out = []
    for onset, duration, desc in zip(raw.annotations.onset, raw.annotations.duration, raw.annotations.description,
                                     strict=True):
        if mapping is None:
            out.append(Event(float(onset - raw.first_time), float(duration), str(desc)))
        elif desc in mapping:
            out.append(Event(float(onset - raw.first_time), float(duration), mapping[desc]))
    return out
