import pytest

from neurofm._errors import ConfigError
from neurofm.preprocessing.recipe import parse_recipe, resolve_recipe

BASE = {"name": "t", "steps": [{"bandpass": {"l_freq": 1.0, "h_freq": 40.0}}, {"window": {"window_s": 4.0}},
                               {"patch": {"patch_s": 1.0}}]}


def test_shipped_recipes_validate():
    for name in ("eeg-200hz", "eeg-200hz-events", "seeg-1000hz", "single-channel-200hz"):
        recipe = resolve_recipe(name)
        assert recipe.window.window_s > 0
    assert resolve_recipe("eeg-200hz").target_sfreq == 200.0
    seeg = resolve_recipe("seeg-1000hz")
    assert seeg.target_sfreq == 1000.0 and seeg.patch.patch_s == 0.1


@pytest.mark.parametrize("steps, message", [
    ([{"bandpas": {}}, {"window": {"window_s": 1}}], "unknown step 'bandpas'. Did you mean 'bandpass'?"),
    ([{"window": {"window_s": 1, "strid_s": 1}}], "unknown key 'strid_s'. Did you mean 'stride_s'?"),
    ([{"bandpass": {"l_freq": 40, "h_freq": 1}}, {"window": {"window_s": 1}}], "must be below h_freq"),
    ([{"bandpass": {}}], "exactly one 'window' step"),
    ([{"window": {"window_s": 1}}, {"bandpass": {}}], "come after 'window'"),
    ([{"window": {"window_s": 2.5}}, {"patch": {"patch_s": 1.0}}], "not a whole number of patches"),
    ([{"window": {"kind": "events", "window_s": 2}}], "needs 'events'"),
])
def test_invalid_recipes_name_the_key(steps, message):
    with pytest.raises(ConfigError) as err:
        parse_recipe({"name": "x", "steps": steps}, source="my.yaml")
    assert message in str(err.value) and str(err.value).startswith("my.yaml:")


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="unknown key 'step'. Did you mean 'steps'"):
        parse_recipe({"name": "x", "step": []})


def test_hash_is_stable_and_changes_with_parameters():
    a, b = parse_recipe(BASE), parse_recipe(BASE)
    assert a.hash == b.hash
    changed = {**BASE, "steps": [{"bandpass": {"l_freq": 1.0, "h_freq": 45.0}}, *BASE["steps"][1:]]}
    assert parse_recipe(changed).hash != a.hash


def test_config_file_overrides_named_recipe(tmp_path):
    cfg = tmp_path / "o.yaml"
    cfg.write_text("name: custom\nsteps:\n  - resample: {sfreq: 100}\n  - window: {window_s: 2.0}\n")
    recipe = resolve_recipe("eeg-200hz", cfg)
    assert recipe.name == "custom" and recipe.target_sfreq == 100.0


def test_example_configs_validate():
    from pathlib import Path

    from neurofm.preprocessing.recipe import load_recipe_file

    configs = sorted((Path(__file__).resolve().parents[2] / "configs" / "preprocess").glob("*.yaml"))
    assert configs
    for path in configs:
        assert load_recipe_file(path).window.window_s > 0
