"""Regions from the real electrodes.tsv of ieeg/epilepsy-seeg and from store manifests."""

from __future__ import annotations

import json

import pytest

from neurofm._errors import ConfigError, ContractError
from neurofm.models.duin.regions import (
    RegionSpec,
    contact_label,
    read_electrodes_tsv,
    regions_from_electrodes,
    subject_channels,
)
from tests.models.duin.conftest import SEEG_ELECTRODES

SHAFTS = {"L'": 14, "N'": 12, "F'": 14, "O'": 16, "G'": 16, "X'": 16}


def test_electrodes_tsv_has_88_depth_contacts_on_6_shafts():
    regions = regions_from_electrodes(SEEG_ELECTRODES, RegionSpec(by="shaft"))
    assert {k: len(v) for k, v in regions.items()} == SHAFTS
    assert sum(len(v) for v in regions.values()) == 88  # the file has 88 (the data README says 86)
    assert regions["L'"][:3] == ["L'1", "L'2", "L'3"]
    assert "DC01" not in {n for v in regions.values() for n in v}  # no coordinates: not a contact


def test_known_contacts_atlas_labels():
    rows = {r["name"]: r for r in read_electrodes_tsv(SEEG_ELECTRODES)}
    assert contact_label(rows["L'2"], "destriuex") == "ctx_rh_G_front_sup"
    assert contact_label(rows["X'11"], "destriuex") == "ctx_lh_S_precentral-sup-part"
    assert contact_label(rows["X'11"], "desikan-killiany") == "ctx-lh-precentral"
    assert contact_label(rows["O'15"], "desikan-killiany") == "ctx-lh-parsopercularis"
    assert contact_label(rows["N'5"], "destriuex") == "Unknown"

    by_atlas = regions_from_electrodes(SEEG_ELECTRODES, RegionSpec(by="atlas"))  # Destrieux column picked
    assert by_atlas["ctx_lh_G_front_inf-Triangul"] == ["O'15", "O'16"]
    assert "L'2" in by_atlas["ctx_rh_G_front_sup"]
    dk = regions_from_electrodes(SEEG_ELECTRODES, RegionSpec(by="atlas", atlas="dk", drop_unknown=True))
    assert dk["ctx-lh-precentral"] == ["X'11"] and "Unknown" not in dk


def test_user_selection_by_regex_and_preset():
    motor = regions_from_electrodes(SEEG_ELECTRODES, RegionSpec(by="selection", select="sensorimotor"))
    assert motor == {"sensorimotor": ["X'11"]}
    frontal = regions_from_electrodes(SEEG_ELECTRODES, RegionSpec(by="shaft", select=r"G_front_sup|superiorfrontal"))
    assert set(frontal) <= set(SHAFTS) and "L'2" in frontal["L'"] and "L'3" not in frontal["L'"]


def test_bad_specs_name_the_key_and_hint():
    with pytest.raises(ConfigError, match="regions.by 'shafts'.*Did you mean 'shaft'.*HINT"):
        RegionSpec(by="shafts")
    with pytest.raises(ConfigError, match="needs regions.select"):
        RegionSpec(by="selection")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        RegionSpec(select="G_front(")
    with pytest.raises(ContractError, match="atlas column 'aal' not found.*HINT"):
        regions_from_electrodes(SEEG_ELECTRODES, RegionSpec(by="atlas", atlas="aal"))
    with pytest.raises(ContractError, match="no contact is left"):
        regions_from_electrodes(SEEG_ELECTRODES, RegionSpec(by="selection", select="hippocampus"))


def test_regions_from_store_manifest_bipolar(seeg_store):
    manifest = json.loads((seeg_store / "manifest.json").read_text())
    subjects, regions = subject_channels(manifest, RegionSpec(by="shaft"))
    assert list(subjects) == ["pat01"] and len(subjects["pat01"]) == 82  # 88 contacts → 82 bipolar pairs
    assert {k: len(v) for k, v in regions["pat01"].items()} == {k: n - 1 for k, n in SHAFTS.items()}
    # a pair takes its first informative label: F'2-F'3 is labelled "ctx_rh_G_front_sup/Unknown"
    by_atlas = subject_channels(manifest, RegionSpec(by="atlas"))[1]["pat01"]
    assert "F'2-F'3" in by_atlas["ctx_rh_G_front_sup"] and "F'3-F'4" in by_atlas["ctx_lh_G_front_sup"]
