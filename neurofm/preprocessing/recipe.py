"""Preprocessing recipes: YAML lists of named steps, validated strictly.

A recipe is::

    name: eeg-200hz
    description: one line
    steps:
      - pick: {types: [eeg]}
      - bandpass: {l_freq: 0.5, h_freq: 75.0}
      - ...
      - window: {kind: fixed, window_s: 4.0, stride_s: 4.0}
      - patch: {patch_s: 1.0}
    mode: fast        # or exact: today's bit-for-bit MNE filters and FFT resampling, whole recording in memory

Unknown step names and unknown keys are rejected with the nearest valid name.
The recipe hash (sha256 of its canonical JSON) decides whether a store entry
is up to date.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from neurofm._errors import ConfigError, suggest

STORE_FORMAT = 1


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pick(_Step):
    """Keep channels of these types (and drop the rest, reported)."""

    types: list[Literal["eeg", "seeg", "ecog", "dbs", "eog", "ecg", "emg", "misc"]] = ["eeg"]
    require_positions: bool = False


class Montage(_Step):
    """Electrode positions for the recording's channels: an MNE built-in montage (``name``) or an electrodes
    file (``file``: .elc, .sfp, .loc, .bvef, ...), after renaming file labels (``rename``: label → electrode).

    Needed for caps whose labels are not 10-05 names (BioSemi ``A1…D32``, EGI ``E1…E256``, numbered) when the
    file carries no positions.
    """

    name: str | None = None
    file: str | None = None
    rename: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_source(self) -> Montage:
        if self.name and self.file:
            raise ValueError("give either 'name' or 'file', not both")
        if not (self.name or self.file or self.rename):
            raise ValueError("give 'name' (a built-in montage), 'file' (an electrodes file) or 'rename'")
        if self.name:
            import mne

            builtin = mne.channels.get_builtin_montages()
            if self.name not in builtin:
                raise ValueError(f"unknown montage name '{self.name}'.{suggest(self.name, builtin)} "
                                 f"Built-in: {', '.join(builtin)}")
        if self.file and not Path(self.file).is_file():
            raise ValueError(f"montage file '{self.file}' not found")
        return self


class Rescale(_Step):
    """Multiply the data by ``factor`` (fix a unit error declared in the header)."""

    factor: float


class AmplitudeCheck(_Step):
    """Refuse data whose median channel amplitude (robust std) is outside [min_uv, max_uv]."""

    min_uv: float = 0.1
    max_uv: float = 5000.0


class BadChannels(_Step):
    """Mark non-finite, flat and noisy channels; interpolate them for scalp EEG, drop them otherwise."""

    flat_uv: float = 0.05
    noisy_z: float = 6.0
    max_bad_fraction: float = Field(0.5, gt=0, le=1)
    interpolate: Literal["auto", True, False] = "auto"


class Notch(_Step):
    """Notch the power line (``freqs: line`` uses the dataset's line frequency) and its harmonics."""

    freqs: Literal["line"] | list[float] = "line"
    harmonics: bool = True


class Bandpass(_Step):
    l_freq: float | None = Field(None, ge=0)
    h_freq: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _order(self) -> Bandpass:
        if self.l_freq is not None and self.h_freq is not None and self.l_freq >= self.h_freq:
            raise ValueError(f"l_freq ({self.l_freq}) must be below h_freq ({self.h_freq})")
        return self


class Rereference(_Step):
    """average (scalp or ECoG), bipolar along shafts (sEEG), laplacian along shafts (sEEG), or none."""

    kind: Literal["average", "bipolar", "laplacian", "none"] = "average"


class Resample(_Step):
    sfreq: float = Field(gt=0)


class Window(_Step):
    """Fixed-length windows, or windows locked to labelled events."""

    kind: Literal["fixed", "events"] = "fixed"
    window_s: float = Field(gt=0)
    stride_s: float | None = Field(None, gt=0)
    events: list[str] | None = None
    tmin: float = 0.0

    @model_validator(mode="after")
    def _events(self) -> Window:
        if self.kind == "events" and not self.events:
            raise ValueError("kind 'events' needs 'events': the labels to lock windows to")
        return self


class Patch(_Step):
    patch_s: float = Field(gt=0)


class Output(_Step):
    """Units written to the store (µV; z-scoring happens at the tensor boundary with training statistics)."""

    units: Literal["uV"] = "uV"
    dtype: Literal["float32", "float16"] = "float32"


STEPS: dict[str, type[_Step]] = {
    "montage": Montage, "pick": Pick, "rescale": Rescale, "amplitude_check": AmplitudeCheck, "bad_channels": BadChannels,
    "notch": Notch, "bandpass": Bandpass, "rereference": Rereference, "resample": Resample,
    "window": Window, "patch": Patch, "output": Output,
}
_TOP_KEYS = ("name", "description", "modality", "mode", "steps")
MODES = ("fast", "exact")


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    modality: Literal["eeg", "seeg", "ecog", "any"] = "any"
    mode: Literal["fast", "exact"] = "fast"  # fast: streamed, fused FIR, polyphase resampling (neurofm.preprocessing.stream)
    steps: list[tuple[str, Annotated[Any, Field()]]]

    @property
    def window(self) -> Window:
        return next(s for n, s in self.steps if n == "window")

    @property
    def patch(self) -> Patch | None:
        return next((s for n, s in self.steps if n == "patch"), None)

    @property
    def output(self) -> Output:
        return next((s for n, s in self.steps if n == "output"), Output())

    @property
    def target_sfreq(self) -> float | None:
        return next((s.sfreq for n, s in self.steps if n == "resample"), None)

    def to_dict(self) -> dict:
        return dict(name=self.name, description=self.description, modality=self.modality, mode=self.mode,
                    steps=[{n: s.model_dump(mode="json")} for n, s in self.steps])

    @property
    def hash(self) -> str:
        blob = json.dumps(dict(recipe=self.to_dict(), store_format=STORE_FORMAT), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _loc(source: str, where: str) -> str:
    return f"{source}: {where}" if where else source


def parse_recipe(data: Any, source: str = "<recipe>") -> Recipe:
    """Validate a recipe mapping (as loaded from YAML); raise :class:`ConfigError` naming the key."""
    if not isinstance(data, dict):
        raise ConfigError("a recipe must be a mapping with 'name' and 'steps'.", source=source,
                          hint="see pipelines/eeg-200hz.yaml for the layout.")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"unknown key '{key}'.{suggest(str(key), _TOP_KEYS)}", source=source,
                              hint=f"valid top-level keys: {', '.join(_TOP_KEYS)}.")
    if "name" not in data or "steps" not in data:
        raise ConfigError("a recipe needs 'name' and 'steps'.", source=source, hint="see pipelines/eeg-200hz.yaml.")
    if data.get("modality", "any") not in ("eeg", "seeg", "ecog", "any"):
        raise ConfigError(f"modality {data['modality']!r} is not one of eeg, seeg, ecog, any.", source=source,
                          hint="set 'modality' to eeg, seeg, ecog or any (or leave it out).")
    if data.get("mode", "fast") not in MODES:
        raise ConfigError(f"mode {data['mode']!r} is not one of {', '.join(MODES)}.", source=source,
                          hint="mode: fast (streamed, default) or mode: exact (bit-for-bit MNE, whole recording in memory).")
    if not isinstance(data["steps"] or [], list):
        raise ConfigError(f"'steps' must be a list of steps, got {type(data['steps']).__name__}.", source=source,
                          hint="write each step as a list item: '- bandpass: {h_freq: 40}'.")
    steps = []
    for i, item in enumerate(data["steps"] or []):
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"steps[{i}] must be a single-key mapping like '- bandpass: {{h_freq: 40}}'.",
                              source=source, hint="one step per list item.")
        (step, params), = item.items()
        if step not in STEPS:
            raise ConfigError(f"steps[{i}]: unknown step '{step}'.{suggest(str(step), STEPS)}", source=source,
                              hint=f"valid steps: {', '.join(STEPS)}.")
        model = STEPS[step]
        params = params or {}
        if not isinstance(params, dict):
            raise ConfigError(f"steps[{i}].{step}: parameters must be a mapping, got {params!r}.", source=source,
                              hint=f"valid keys: {', '.join(model.model_fields)}.")
        for key in params:
            if key not in model.model_fields:
                raise ConfigError(f"steps[{i}].{step}: unknown key '{key}'.{suggest(str(key), model.model_fields)}",
                                  source=source, hint=f"valid keys for '{step}': {', '.join(model.model_fields)}.")
        try:
            steps.append((step, model(**params)))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ConfigError(f"steps[{i}].{step}{'.' + where if where else ''}: {first['msg']}.", source=source,
                              hint=f"fix the value; valid keys for '{step}': {', '.join(model.model_fields)}.") from None
    names = [n for n, _ in steps]
    if names.count("window") != 1:
        raise ConfigError("a recipe needs exactly one 'window' step.", source=source,
                          hint="add e.g. '- window: {kind: fixed, window_s: 4.0}'.")
    for once in ("patch", "output", "resample"):
        if names.count(once) > 1:
            raise ConfigError(f"step '{once}' appears {names.count(once)} times.", source=source, hint="keep one.")
    tail = [n for n in names[names.index("window"):] if n not in ("window", "patch", "output")]
    if tail:
        raise ConfigError(f"step(s) {tail} come after 'window'; only 'patch' and 'output' may follow it.",
                          source=source, hint="move signal steps before the window step.")
    recipe = Recipe(name=str(data["name"]), description=str(data.get("description", "")),
                    modality=data.get("modality", "any"), mode=data.get("mode", "fast"), steps=steps)
    win, patch = recipe.window, recipe.patch
    if patch is not None:
        ratio = win.window_s / patch.patch_s
        if abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError(f"window_s ({win.window_s}) is not a whole number of patches of {patch.patch_s} s.",
                              source=source, hint="make window_s a multiple of patch_s.")
    return recipe


def load_yaml(path: str | Path) -> Any:
    """Safe-load a YAML file, turning syntax errors into :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found.", source=path, hint="check the path.")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML ({' '.join(str(err).split())[:200]}).", source=path,
                          hint="fix the syntax; indentation must use spaces.") from None


def load_recipe_file(path: str | Path) -> Recipe:
    return parse_recipe(load_yaml(path), source=str(path))


def resolve_recipe(pipeline: str | None, config: str | Path | None = None) -> Recipe:
    """The recipe named ``pipeline`` (registry) or read from ``config``; ``config`` overrides the named one's keys."""
    from neurofm import registry

    if pipeline is None and config is None:
        raise ConfigError("no recipe given.", hint="pass --pipeline NAME (see `neurofm list pipelines`) or --config FILE.")
    data: dict = {}
    source = "<recipe>"
    if pipeline is not None:
        entry = registry.get_entry("pipelines", pipeline)
        source = entry.meta["path"]
        data = dict(load_yaml(source))
    if config is not None:
        from neurofm._resources import resolve_config

        config = resolve_config(str(config))  # configs/... also found in the installed package
        override = load_yaml(config)
        if not isinstance(override, dict):
            raise ConfigError("a recipe file must be a mapping.", source=config, hint="see pipelines/eeg-200hz.yaml.")
        data.update(override)
        source = str(config)
    return parse_recipe(data, source=source)
