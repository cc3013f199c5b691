"""Task definitions: dataset + recording filter + label mapping + window + split protocol + metric.

A task is a YAML mapping (or the same dict in Python), validated strictly::

    name: eegmmidb-real-lr
    description: one line
    dataset: eegmmidb                 # registered dataset name
    recipe: eeg-200hz-events          # registered pipeline, a recipe YAML (relative to this file), or a mapping
    window: {window_s: 4.0}           # optional: overrides keys of the recipe's window step
    recordings: {run: ["03", "07"]}   # optional: keep recordings whose field matches one of the globs
    kind: classification              # or regression
    labels: [left_fist, right_fist]   # class order; or {store_label: class_name} to merge labels
    split: {by: run, train: ["03"], val: ["07"], test: ["11"]}
    metric: balanced_accuracy
    subject_level: false              # true: also score subjects (mean of their windows' probabilities)

Unknown keys are rejected with the nearest valid key, ids must be quoted strings, and the
split protocol is checked against the data when the task is prepared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from neurofm._errors import ConfigError, suggest
from neurofm.evaluation.metrics import CLASSIFICATION, REGRESSION

Metric = Literal["balanced_accuracy", "auroc", "kappa", "accuracy", "pearson_r", "r2", "rmse"]
RECORDING_FIELDS = ("id", "subject", "session", "run", "label")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class WindowOverride(_Strict):
    """Keys that replace those of the recipe's ``window`` step (a new recipe hash, so a new cached store)."""

    window_s: float | None = Field(None, gt=0)
    stride_s: float | None = Field(None, gt=0)
    tmin: float | None = None
    events: list[str] | None = None


class Split(_Strict):
    """Split protocol.

    ``by``: ``subject`` (default); ``recording``, ``run`` or ``session`` where the task's data hold one
    subject; ``time``: contiguous blocks inside every labelled segment of every recording (train first,
    then val, then test), windows overlapping a neighbouring block are dropped.
    ``train``/``val``/``test``: explicit ids, or fractions of the units (``train`` defaults to the rest).
    """

    by: Literal["subject", "recording", "run", "session", "time"] = "subject"
    train: list[str] | None = None
    val: list[str] | float = 0.15
    test: list[str] | float = 0.15
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> Split:
        for name in ("val", "test"):
            v = getattr(self, name)
            if isinstance(v, float) and not 0 < v < 1:
                raise ValueError(f"{name} fraction must be in (0, 1), got {v}")
        if isinstance(self.val, float) and isinstance(self.test, float) and self.val + self.test >= 1:
            raise ValueError(f"val + test fractions ({self.val} + {self.test}) leave nothing to train on")
        if self.by == "time" and (self.train is not None or not isinstance(self.val, float)
                                  or not isinstance(self.test, float)):
            raise ValueError("a time split takes fractions only: {by: time, val: 0.2, test: 0.2}")
        lists = [set(v) for v in (self.train, self.val, self.test) if isinstance(v, list)]
        for i, a in enumerate(lists):
            for b in lists[i + 1:]:
                if a & b:
                    raise ValueError(f"ids {sorted(a & b)} are in two splits")
        return self


class TaskSpec(_Strict):
    name: str
    description: str = ""
    dataset: str
    recipe: str | dict[str, Any]
    window: WindowOverride | None = None
    recordings: dict[str, list[str]] | None = None
    kind: Literal["classification", "regression"] = "classification"
    labels: list[str] | dict[str, str] | None = None
    target: Literal["mean", "median", "last"] = "mean"
    split: Split = Split()
    metric: Metric | None = None
    #: also score whole subjects: each subject's class = argmax of the mean of its windows' probabilities
    #: (tasks whose label belongs to the subject, e.g. a diagnosis); reported beside window-level scores.
    subject_level: bool = False

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if self.kind == "classification":
            if not self.labels:
                raise ValueError("a classification task needs 'labels': the store labels of each class")
            if len(self.classes) < 2:
                raise ValueError(f"labels define {len(self.classes)} class(es); a classifier needs at least 2")
            if self.metric is not None and self.metric not in CLASSIFICATION:
                raise ValueError(f"metric '{self.metric}' is for regression; use one of {', '.join(CLASSIFICATION)}")
            if self.subject_level and self.split.by != "subject":
                raise ValueError("subject_level scoring needs a split by subject")
        else:
            if self.subject_level:
                raise ValueError("subject_level scoring applies to classification tasks")
            if self.labels:
                raise ValueError("a regression task takes no 'labels': its target is the store's continuous target")
            if self.metric is not None and self.metric not in REGRESSION:
                raise ValueError(f"metric '{self.metric}' is for classification; use one of {', '.join(REGRESSION)}")
        return self

    # -- derived ---------------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        if self.labels is None:
            return []
        values = self.labels if isinstance(self.labels, list) else list(self.labels.values())
        return list(dict.fromkeys(values))

    @property
    def label_map(self) -> dict[str, int]:
        """Store label → class index (labels not in the map are left out of the task)."""
        if self.labels is None:
            return {}
        classes = self.classes
        pairs = {v: v for v in self.labels} if isinstance(self.labels, list) else self.labels
        return {src: classes.index(dst) for src, dst in pairs.items()}

    @property
    def primary_metric(self) -> str:
        return self.metric or ("balanced_accuracy" if self.kind == "classification" else "pearson_r")

    @property
    def metrics(self) -> list[str]:
        """Metrics reported for this task, the primary one first."""
        names = CLASSIFICATION if self.kind == "classification" else REGRESSION
        return [self.primary_metric] + [m for m in names if m != self.primary_metric]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def resolve_recipe(self, base_dir: Path | None = None):
        """The preprocessing recipe with the task's window overrides applied."""
        from neurofm.preprocessing.recipe import load_yaml, parse_recipe

        if isinstance(self.recipe, dict):
            data, source = dict(self.recipe), f"task '{self.name}': recipe"
        else:
            path = Path(self.recipe)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            if self.recipe.endswith((".yaml", ".yml")):
                data, source = dict(load_yaml(path)), str(path)
            else:
                from neurofm import registry

                entry = registry.get_entry("pipelines", self.recipe)
                data, source = dict(load_yaml(entry.meta["path"])), entry.meta["path"]
        if self.window is not None:
            override = self.window.model_dump(exclude_none=True)
            steps = []
            for step in data.get("steps") or []:
                if isinstance(step, dict) and "window" in step:
                    step = {"window": dict(step["window"] or {}, **override)}
                steps.append(step)
            data["steps"] = steps
            source = f"{source} (window overridden by task '{self.name}')"
        return parse_recipe(data, source=source)

    def frozen(self, base_dir: Path | None = None) -> TaskSpec:
        """The same task with its recipe inlined (window override applied): independent of pipelines/ files."""
        recipe = self.resolve_recipe(base_dir)
        return TaskSpec(**{**self.model_dump(exclude={"recipe", "window"}), "recipe": recipe.to_dict()})


# -- parsing ------------------------------------------------------------------------------------------
_NESTED = {"window": WindowOverride, "split": Split}


def _check_keys(data: dict, model: type[BaseModel], where: str, source: str) -> None:
    valid = list(model.model_fields)
    for key in data:
        if key not in valid:
            raise ConfigError(f"{where}unknown key '{key}'.{suggest(str(key), valid)}", source=source,
                              hint=f"valid keys{' for ' + where.rstrip(': ') if where else ''}: {', '.join(valid)}.")


def parse_task(data: Any, source: str = "<task>") -> TaskSpec:
    """Validate a task mapping; raise :class:`ConfigError` naming the key and the fix."""
    if not isinstance(data, dict):
        raise ConfigError("a task must be a mapping with name, dataset, recipe, labels, split and metric.",
                          source=source, hint="see configs/tasks/eegmmidb-real-lr.yaml for the layout.")
    _check_keys(data, TaskSpec, "", source)
    for key, model in _NESTED.items():
        if isinstance(data.get(key), dict):
            _check_keys(data[key], model, f"{key}: ", source)
    rec = data.get("recordings")
    if isinstance(rec, dict):
        for key, values in rec.items():
            if isinstance(values, str):
                raise ConfigError(f"recordings.{key}: give a list of globs, not a string.", source=source,
                                  hint=f"write recordings: {{{key}: ['{values}']}}.")
    try:
        return TaskSpec(**data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        msg = first["msg"]
        hint = "fix the value; see the task layout in neurofm/tasks/spec.py."
        if first["type"] == "string_type" and where.startswith(("split", "recordings", "labels")):
            hint = "quote ids and labels in YAML so they stay strings: ['01', '02'] (01 would become the number 1)."
        elif first["type"] == "missing":
            hint = f"add '{where}'."
        elif first["type"] == "literal_error":
            hint = f"use one of the values listed ({msg.split('Input should be ', 1)[-1]})."
        raise ConfigError(f"{where + ': ' if where else ''}{msg}.", source=source, hint=hint) from None


def load_task_file(path: str | Path) -> TaskSpec:
    """Read a task YAML; its name must match the file name when it gives one."""
    from neurofm.preprocessing.recipe import load_yaml

    path = Path(path)
    data = load_yaml(path)
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
        recipe = data.get("recipe")
        if isinstance(recipe, str) and recipe.endswith((".yaml", ".yml")) and not Path(recipe).is_absolute():
            data["recipe"] = str((path.parent / recipe).resolve())
    return parse_task(data, source=str(path))


def get_task(spec: str | TaskSpec | dict) -> TaskSpec:
    """A registered task name, a task YAML path, a mapping, or a :class:`TaskSpec`."""
    if isinstance(spec, TaskSpec):
        return spec
    if isinstance(spec, dict):
        return parse_task(spec)
    if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
        return load_task_file(spec)
    from neurofm import registry

    entry = registry.get_entry("tasks", spec)
    if "path" in entry.meta:
        return load_task_file(entry.meta["path"])
    return get_task(entry.resolve()())


def task_json(task: TaskSpec) -> str:
    return json.dumps(task.to_dict(), sort_keys=True)
