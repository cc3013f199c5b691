"""Task definitions: built-ins, YAML tasks from configs/tasks/, strict validation with hints."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from neurofm import registry
from neurofm._errors import ConfigError, RegistryError
from neurofm.tasks.spec import get_task, load_task_file, parse_task
from tests.conftest import REPO

BUILTIN = ("eegmat-arithmetic", "eegmmidb-imagery-lr", "eegmmidb-imagery-ff", "bonn-3class", "ecog-seizure-onset",
           "gripforce-regression")


def test_builtin_tasks_are_registered_and_valid():
    assert set(BUILTIN) <= set(registry.list_tasks())
    for name in BUILTIN:
        task = get_task(name)
        assert task.name == name and task.dataset in registry.list_datasets()
        assert task.resolve_recipe().window.window_s > 0
        lists = [set(v) for v in (task.split.train, task.split.val, task.split.test) if isinstance(v, list)]
        assert all(not (a & b) for i, a in enumerate(lists) for b in lists[i + 1:])
    eegmat = get_task("eegmat-arithmetic")
    assert eegmat.split.train == [f"{i:02d}" for i in range(18)]
    assert (eegmat.split.val, eegmat.split.test) == (["18", "19", "20"], ["21", "22", "23"])
    assert eegmat.resolve_recipe().window.window_s == 4.0 and eegmat.classes == ["rest", "arithmetic"]
    lr = get_task("eegmmidb-imagery-lr")
    assert lr.recordings == {"subject": ["S001"], "run": ["04", "08", "12"]} and lr.split.by == "run"
    assert get_task("gripforce-regression").primary_metric == "pearson_r"
    grip = get_task("gripforce-regression")
    assert grip.resolve_recipe().window.stride_s == 0.25  # window override applied
    frozen = parse_task(grip.frozen().to_dict())  # as stored in a decoder checkpoint: recipe inlined
    assert isinstance(frozen.recipe, dict) and frozen.window is None
    assert frozen.resolve_recipe().hash == grip.resolve_recipe().hash  # same store, same windows


def test_yaml_tasks_in_configs_are_registered():
    entry = registry.get_entry("tasks", "eegmmidb-real-lr")
    assert entry.meta["path"].endswith("configs/tasks/eegmmidb-real-lr.yaml")
    task = get_task("eegmmidb-real-lr")
    assert task.labels == ["left_fist", "right_fist"] and task.split.test == ["11"]
    assert entry.description.startswith("EEGMMIDB S001 executed")


def _write(tmp_path, text: str):
    path = tmp_path / "my-task.yaml"
    path.write_text(text)
    return path


GOOD = textwrap.dedent("""\
    dataset: eegmat
    recipe: eeg-200hz
    labels: [rest, arithmetic]
    split: {by: subject, val: ["01"], test: ["02"]}
""")


def test_yaml_task_takes_its_name_from_the_file_and_a_label_mapping(tmp_path):
    task = load_task_file(_write(tmp_path, GOOD))
    assert task.name == "my-task" and task.primary_metric == "balanced_accuracy"
    merged = parse_task(dict(name="m", dataset="eegmmidb", recipe="eeg-200hz-events",
                             labels={"left_fist": "fist", "right_fist": "fist", "both_feet": "feet"}))
    assert merged.classes == ["fist", "feet"] and merged.label_map == {"left_fist": 0, "right_fist": 0, "both_feet": 1}


@pytest.mark.parametrize("text, match, hint", [
    (GOOD + "splt: {by: subject}\n", "unknown key 'splt'. Did you mean 'split'", "valid keys"),
    (GOOD.replace("by: subject", "bye: subject"), "split: unknown key 'bye'. Did you mean 'by'", "valid keys for split"),
    (GOOD.replace('["01"]', "[1]"), "split.val", "quote ids"),
    (GOOD + "metric: pearson_r\n", "metric 'pearson_r' is for regression", "fix the value"),
    (GOOD + "kind: regression\n", "regression task takes no 'labels'", "fix the value"),
    (GOOD.replace("labels: [rest, arithmetic]", "labels: [rest]"), "at least 2", "fix the value"),
    (GOOD.replace("{by: subject,", "{by: time,"), "time split takes fractions only", "fix the value"),
    (GOOD.replace('test: ["02"]', 'test: ["01"]'), r"ids \['01'\] are in two splits", "fix the value"),
    (GOOD + "recordings: {run: '04'}\n", "give a list of globs", "recordings: {run: ['04']}"),
    (GOOD + "window: {window: 2}\n", "window: unknown key 'window'", "window_s"),
])
def test_bad_task_yaml_is_one_clear_error(tmp_path, text, match, hint):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as info:
        load_task_file(path)
    assert str(path) in str(info.value) and "HINT:" in str(info.value) and hint in str(info.value)


def test_unknown_task_and_recipe_names_suggest_the_nearest(tmp_path):
    with pytest.raises(RegistryError, match="Did you mean 'eegmat-arithmetic'"):
        get_task("eegmat-arithmatic")
    task = load_task_file(_write(tmp_path, GOOD.replace("eeg-200hz", "eeg-200hx")))
    with pytest.raises(RegistryError, match="Did you mean 'eeg-200hz'"):
        task.resolve_recipe()


def test_listing_tasks_imports_neither_torch_nor_pydantic():
    code = ("import sys; from neurofm.cli import main; main(['list', 'tasks']); "
            "assert not {'torch', 'mne', 'pydantic'} & set(sys.modules), 'heavy import'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    names = [ln.split()[0] for ln in proc.stdout.strip().splitlines()]
    assert set(BUILTIN) | {"eegmmidb-real-lr"} <= set(names)
