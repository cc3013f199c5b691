"""Property-based fuzzing: damaged EDF files and random recipes only ever end in a NeurofmError (or success).

The EDF is a real EEGMAT recording cut to its first records (header rewritten to match), then damaged
by random byte flips, header-field overwrites and truncations, written to a temporary file and read
through :func:`neurofm.io.read_raw` + :func:`neurofm.io.standardize_channels`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from neurofm._errors import ConfigError, NeurofmError
from tests.conftest import EEGMAT

SOURCE = EEGMAT / "rest" / "Subject00_1_first62s.edf"
N_RECORDS = 3


def _small_edf() -> bytes:
    data = SOURCE.read_bytes()
    header_bytes = int(data[184:192].decode())
    ns = int(data[252:256].decode())
    spr = [int(data[256 + 216 * ns + 8 * i: 256 + 216 * ns + 8 * (i + 1)].decode()) for i in range(ns)]
    record = 2 * sum(spr)
    head = bytearray(data[:header_bytes])
    head[236:244] = f"{N_RECORDS:<8d}".encode()
    return bytes(head) + data[header_bytes: header_bytes + N_RECORDS * record]


BASE = _small_edf()
NS = int(BASE[252:256].decode())
HEADER = 256 * (NS + 1)
# (offset, width) of numeric header fields: header bytes, records, record duration, signals, then per signal
# physical min/max, digital min/max and samples per record.
FIELDS = [(184, 8), (236, 8), (244, 8), (252, 4)] + [
    (256 + NS * off + 8 * i, 8) for off in (104, 112, 120, 128, 216) for i in range(NS)]
NUMBERISH = st.text(alphabet="0123456789-+.eEnaif x", min_size=0, max_size=8)

flips = st.lists(st.tuples(st.one_of(st.integers(0, HEADER - 1), st.integers(0, len(BASE) - 1)),
                           st.integers(1, 255)), max_size=6)
overwrites = st.lists(st.tuples(st.sampled_from(FIELDS), NUMBERISH), max_size=3)
truncations = st.one_of(st.none(), st.integers(0, len(BASE) - 1))


def damage(base: bytes, flips, overwrites, truncate) -> bytes:
    data = bytearray(base)
    for pos, value in flips:
        data[pos] ^= value
    for (offset, width), text in overwrites:
        data[offset: offset + width] = text.encode("ascii").ljust(width)[:width]
    return bytes(data if truncate is None else data[:truncate])


def read_or_refuse(data: bytes) -> None:
    from neurofm.io import read_raw, standardize_channels

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed.edf"
        path.write_bytes(data)
        try:
            raw = read_raw(path)
            standardize_channels(raw)
        except NeurofmError as err:
            assert str(path) in str(err) and "HINT:" in str(err), str(err)


def test_the_small_edf_is_a_valid_recording():
    from neurofm.io import read_raw

    raw = read_raw(_write(BASE))
    assert raw.n_times == N_RECORDS * int(raw.info["sfreq"]) and len(raw.ch_names) == NS - 1   # + EDF Annotations


def _write(data: bytes) -> Path:
    path = Path(tempfile.mkdtemp()) / "base.edf"
    path.write_bytes(data)
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=flips, overwrites=overwrites, truncate=truncations)
@example(flips=[], overwrites=[((236, 8), "1e999")], truncate=None)        # regression: OverflowError in the header parser
@example(flips=[], overwrites=[((252, 4), "nan")], truncate=None)
@example(flips=[], overwrites=[((256 + NS * 216, 8), "-5")], truncate=None)
@example(flips=[], overwrites=[((184, 8), "inf")], truncate=None)
@example(flips=[], overwrites=[((244, 8), "0")], truncate=None)
@example(flips=[], overwrites=[], truncate=HEADER + 3)
def test_damaged_edf_is_read_or_refused_cleanly(flips, overwrites, truncate):
    read_or_refuse(damage(BASE, flips, overwrites, truncate))


# -- recipes ----------------------------------------------------------------------------------------------

STEP_NAMES = ["pick", "rescale", "amplitude_check", "bad_channels", "notch", "bandpass", "rereference", "resample",
              "window", "patch", "output", "bandpas"]
KEYS = ["types", "factor", "l_freq", "h_freq", "sfreq", "kind", "window_s", "stride_s", "patch_s", "events", "tmin",
        "freqs", "units", "dtype", "interpolate", "h_frq"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=6), st.sampled_from(["eeg", "fixed", "events", "line", "average", "uV", "auto"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=6)
params = st.one_of(st.dictionaries(st.sampled_from(KEYS), values, max_size=3), values)
steps = st.lists(st.one_of(st.dictionaries(st.sampled_from(STEP_NAMES), params, min_size=1, max_size=2),
                           st.sampled_from(STEP_NAMES), values), max_size=5)
recipes = st.one_of(
    st.fixed_dictionaries({"name": values, "steps": st.one_of(steps, values)},
                          optional={"description": values, "modality": values, "extra": values}),
    values)


def test_the_fuzzed_recipe_grammar_reaches_valid_recipes():
    from neurofm.preprocessing.recipe import parse_recipe

    recipe = parse_recipe({"name": "x", "steps": [{"bandpass": {"l_freq": 1, "h_freq": 40}},
                                                  {"window": {"window_s": 2.0}}, "output"]})
    assert recipe.window.window_s == 2.0


@settings(max_examples=40, deadline=None)
@given(data=recipes)
@example(data={"name": "x", "steps": 5})                                     # regression: TypeError
@example(data={"name": "x", "steps": [{1: {}}]})                              # regression: non-string step name (TypeError)
@example(data={"name": "x", "modality": "meg", "steps": [{"window": {"window_s": 1}}]})   # regression: pydantic ValidationError
@example(data={"name": "x", "steps": [{"window": {"window_s": 1, "kind": "events", "events": 3}}]})
def test_random_recipe_mappings_are_accepted_or_refused_with_a_config_error(data):
    from neurofm.preprocessing.recipe import parse_recipe

    try:
        parse_recipe(data, source="fuzz.yaml")
    except ConfigError as err:
        assert "fuzz.yaml" in str(err) and "HINT:" in str(err), str(err)


@settings(max_examples=40, deadline=None)
@given(text=st.one_of(st.text(max_size=80), recipes.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
                      st.sampled_from(["!!python/object/apply:os.system ['echo pwned']", "a: [1, 2", "\t- x",
                                       "name: x\nsteps: !!binary aGVsbG8=", "&a [*a]", "{{{{"])))
def test_random_recipe_files_are_accepted_or_refused_with_a_config_error(text):
    from neurofm.preprocessing.recipe import load_recipe_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.yaml"
        path.write_text(text)
        try:
            load_recipe_file(path)
        except ConfigError as err:
            assert str(path) in str(err) and "HINT:" in str(err), str(err)


@pytest.mark.parametrize("text", ["!!python/object/apply:os.system ['echo pwned']",
                                  "name: !!python/name:os.system\nsteps: []"])
def test_yaml_tags_that_run_code_are_refused(text, tmp_path, capfd):
    from neurofm.preprocessing.recipe import load_recipe_file

    path = tmp_path / "evil.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="invalid YAML.*HINT"):
        load_recipe_file(path)
    assert "pwned" not in capfd.readouterr().out
