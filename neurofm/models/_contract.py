"""The signal contract of a model: what data its weights expect, and how to check a store against it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from neurofm._errors import ContractError


@dataclass
class SignalContract:
    """What a model was trained on.

    Parameters
    ----------
    sfreq : float
        Sampling rate in Hz.
    n_times : int
        Samples per window (0 = any multiple of ``patch_size``).
    patch_size : int
        Samples per patch (token).
    units : str
        Units of the tensors the model sees (``"uV"`` before its own normalisation).
    ch_names : list of str | None
        Channels seen in training. ``None`` = any channel; unknown channels are embedded by
        position when ``positions_required`` is true.
    modality : str
        ``"eeg"``, ``"seeg"``, ``"ecog"``...
    band : tuple of float | None
        (l_freq, h_freq) of the preprocessing band-pass.
    reference : str
        Re-reference of the training data (``"average"``, ``"bipolar"``...).
    recipe : str
        Name of the preprocessing recipe of the training store.
    normalization : str
        What the model does to its input first (e.g. ``"per-channel-window z-score"``).
    positions_required : bool
        True if unknown channels need positions.
    regions : dict | None
        For region-fused models: how contacts were grouped.
    """

    sfreq: float
    n_times: int = 0
    patch_size: int = 0
    units: str = "uV"
    ch_names: list[str] | None = None
    modality: str = "eeg"
    band: tuple[float, float] | None = None
    reference: str = ""
    recipe: str = ""
    normalization: str = ""
    positions_required: bool = False
    regions: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["band"] is not None:
            d["band"] = list(d["band"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignalContract:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ContractError(f"unknown contract keys {unknown}.", hint="the weights were written by a newer neurofm; upgrade.")
        d = dict(d)
        if d.get("band") is not None:
            d["band"] = tuple(d["band"])
        return cls(**d)

    @classmethod
    def from_manifests(cls, manifests: list[dict[str, Any]], **overrides: Any) -> SignalContract:
        """The contract of a model trained on several stores: the first store's signal format (the data module has
        checked that every store shares its rate, window and units) and every channel any store holds, so data from
        any training store is never reported as unseen. Recipes or references that differ are all named."""
        contracts = [cls.from_manifest(m) for m in manifests]
        first = contracts[0]
        names = list(dict.fromkeys(n for c in contracts for n in (c.ch_names or [])))  # in order of first appearance

        def joined(attr: str) -> str:
            values = list(dict.fromkeys(str(getattr(c, attr)) for c in contracts))
            if len(values) > 1:  # a store without that step is named, not joined as an empty string (" + average")
                values = [v or f"no {attr}" for v in values]
            return " + ".join(values)

        kw = dict(ch_names=names, recipe=joined("recipe"), reference=joined("reference"),
                  band=first.band if all(c.band == first.band for c in contracts) else None)
        kw.update(overrides)
        return replace(first, **kw)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], **overrides: Any) -> SignalContract:
        """The contract of a store made by ``neurofm preprocess``."""
        recs = manifest.get("recordings", [])
        if not recs:
            raise ContractError("the store has no recordings.", hint="run `neurofm preprocess` first.")
        r0 = recs[0]
        band, reference = None, ""
        for step in manifest.get("recipe", {}).get("steps", []):
            (name, params), = step.items()
            if name == "bandpass":
                band = (params.get("l_freq"), params.get("h_freq"))
            elif name == "rereference":
                reference = str(params.get("kind", ""))
        names = list(dict.fromkeys(ch["name"] for r in recs for ch in r["channels"]))  # in order of first appearance
        kw = dict(sfreq=float(r0["sfreq"]), n_times=int(r0["n_times"]), patch_size=int(r0.get("patch_size") or 0),
                  units=str(r0.get("units", "uV")), ch_names=names,
                  modality=str(manifest.get("dataset", {}).get("modality", "eeg")), band=band, reference=reference,
                  recipe=str(manifest.get("recipe", {}).get("name", "")))
        kw.update(overrides)
        return cls(**kw)

    def check(self, *, sfreq: float, n_times: int | None = None, ch_names: list[str] | None = None,
              units: str | None = None, has_positions: bool = True, source: str | None = None) -> list[str]:
        """Raise :class:`ContractError` if data with these properties cannot be fed to the model.

        Returns notes about channels the model has not seen (embedded by position, not dropped).
        """
        if not math.isclose(float(sfreq), self.sfreq, rel_tol=1e-6):
            raise ContractError(f"sampling rate {sfreq:g} Hz, but the model expects {self.sfreq:g} Hz.", source=source,
                                hint=f"preprocess with a recipe that ends in `resample: {{sfreq: {self.sfreq:g}}}`"
                                     f"{' (e.g. ' + self.recipe + ')' if self.recipe else ''}.")
        if units is not None and self.units and units != self.units:
            raise ContractError(f"data in {units}, but the model expects {self.units}.", source=source,
                                hint=f"set `output: {{units: {self.units}}}` in the recipe.")
        if n_times is not None:
            if self.n_times and n_times != self.n_times and not self.patch_size:
                raise ContractError(f"windows of {n_times} samples, but the model expects {self.n_times}.", source=source,
                                    hint=f"window with window_s={self.n_times / self.sfreq:g}.")
            if self.patch_size and n_times % self.patch_size:
                raise ContractError(f"windows of {n_times} samples are not a multiple of the {self.patch_size}-sample patch.",
                                    source=source, hint=f"use window_s as a multiple of {self.patch_size / self.sfreq:g} s.")
        notes: list[str] = []
        if ch_names is not None and self.ch_names is not None:
            unknown = [c for c in ch_names if c not in self.ch_names]
            missing = [c for c in self.ch_names if c not in ch_names]
            if missing and not unknown and not self.positions_required and self.regions is None:
                # A fixed montage (no embedding by position, no per-subject input layers): every channel
                # the weights were trained on must be present; a zero-filled channel would be silent garbage.
                raise ContractError(
                    f"channels {missing[:8]}{'...' if len(missing) > 8 else ''} of the model's montage are missing "
                    f"from the data ({len(ch_names)} of its {len(self.ch_names)} channels present).", source=source,
                    hint="record or interpolate the missing channels (e.g. mark them bad in a `bad_channels` step so "
                         "they are interpolated), or use a model that embeds channels by position.")
            if unknown:
                if not self.positions_required:
                    missing = [c for c in self.ch_names if c not in ch_names]
                    raise ContractError(
                        f"channels {unknown[:8]}{'...' if len(unknown) > 8 else ''} are unknown to the model"
                        f"{f' and {missing[:8]} are missing' if missing else ''}.", source=source,
                        hint="pick/rename channels to the model's montage (see its contract.ch_names), or interpolate "
                             "missing ones with a `bad_channels` step.")
                if not has_positions:
                    raise ContractError(f"channels {unknown[:8]} are unknown to the model and have no positions.",
                                        source=source, hint="give positions (electrodes.tsv or a montage) so they can be "
                                                            "embedded by position, or rename them to 10-05 names.")
                notes.append(f"{len(unknown)} channel(s) unseen in training, embedded by position: {unknown[:8]}")
        return notes
