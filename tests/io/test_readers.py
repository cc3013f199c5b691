"""Every format in shared/data reads, with types, canonical names and positions set."""

from collections import Counter

import numpy as np
import pytest

from neurofm.io import Sidecars, canonical_scalp_name, read_raw, standardize_channels
from tests.conftest import EEGMAT, FORMATS, IEEG, MMIDB

FILES = {
    "edf": (EEGMAT / "rest" / "Subject00_1_first62s.edf", 21, 500.0),
    "bdf": (FORMATS / "bdf" / "multiple_annotation_chans.bdf", 19, 125.0),
    "brainvision": (FORMATS / "brainvision" / "test_CA_208.vhdr", 88, 1000.0),
    "eeglab": (FORMATS / "eeglab" / "test_raw.set", 32, 128.0),
    "fif": (FORMATS / "fif" / "data_resting_EO_200Hz_raw.fif", 2, 200.0),
    "nihonkohden": (FORMATS / "nihonkohden" / "MB0400FU.EDF", 25, 200.0),
}


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_every_format_reads(fmt):
    path, n_chans, sfreq = FILES[fmt]
    raw = read_raw(path)
    table = standardize_channels(raw, sidecars=Sidecars.find(path))
    assert len(raw.ch_names) == n_chans and raw.info["sfreq"] == sfreq
    assert np.isfinite(raw.get_data()).all()
    assert len(table) == n_chans and set(table.types) <= {"eeg", "eog", "ecg", "emg", "stim", "misc"}


def test_canonical_scalp_names():
    cases = {"EEG Fp1": "Fp1", "Fc5.": "FC5", "Fcz.": "FCz", "EEG Fp2-Ref": "Fp2", "CZ-A2": "Cz", "T3": "T7",
             "Iz..": "Iz", "EEG A2-A1": None, "C3-C4": None, "POL X1": None}
    assert {k: canonical_scalp_name(k) for k in cases} == cases


def test_eegmat_names_types_positions():
    raw = read_raw(EEGMAT / "task" / "Subject03_2.edf")
    table = standardize_channels(raw)
    assert raw.ch_names[:3] == ["Fp1", "Fp2", "F3"]
    kinds = dict(zip(table.original, table.types, strict=True))
    assert kinds["ECG ECG"] == "ecg" and kinds["EEG A2-A1"] == "misc"
    eeg = [i for i, t in enumerate(table.types) if t == "eeg"]
    assert len(eeg) == 19 and table.has_position()[eeg].all()
    # head-frame positions: Cz on top (largest z), Fp1 frontal-left (y > 0, x < 0)
    pos = dict(zip(table.names, table.positions, strict=True))
    assert pos["Cz"][2] > pos["O1"][2] and pos["Fp1"][1] > 0 > pos["Fp1"][0]


def test_eegmmidb_dotted_names():
    raw = read_raw(MMIDB / "S001" / "S001R04.edf")
    table = standardize_channels(raw)
    assert {"FC5", "FCz", "Iz", "O1"} <= set(raw.ch_names)
    assert table.has_position().all() and set(table.types) == {"eeg"}


def test_seeg_types_positions_and_atlas_from_electrodes_tsv():
    path = IEEG / "epilepsy-seeg" / "sub-pat01_ses-test_acq-seeg_ieeg.edf"
    raw = read_raw(path)  # MNE alone reads every channel as eeg
    assert set(raw.get_channel_types()) == {"eeg"}
    table = standardize_channels(raw, sidecars=Sidecars.find(path))
    counts = Counter(table.types)
    assert counts == {"seeg": 88, "misc": 8, "ecg": 2}
    assert set(raw.get_channel_types()) == {"seeg", "misc", "ecg"}
    rec = {r["name"]: r for r in table.to_records()}
    assert rec["L'2"]["destriuex"] == "ctx_rh_G_front_sup"
    assert rec["L'2"]["desikan-killiany"] == "ctx-rh-superiorfrontal"
    assert rec["L'1"]["destriuex"] == "Right-Cerebral-White-Matter"
    # electrodes.tsv is in mm (coordsystem.json): stored in metres
    np.testing.assert_allclose(rec["L'1"]["pos"], [0.00452, 0.06173, 0.0665], atol=1e-5)
    assert rec["DC01"]["type"] == "misc" and rec["EKG1"]["type"] == "ecg"


def test_ecog_types_and_contacts_without_coordinates_reported():
    path = IEEG / "epilepsy-ecog" / "sub-pat01_ses-test_acq-ecog_ieeg.edf"
    raw = read_raw(path)
    table = standardize_channels(raw, sidecars=Sidecars.find(path))
    assert Counter(table.types) == {"ecog": 76, "ecg": 2}
    assert table.has_position().sum() == 64
    assert any(n.startswith("BTM1:") for n in table.notes)



def test_electrodes_in_metres_declared_as_mm_are_read_as_metres():
    """Regression (issue 13): the ECoG coordsystem.json says mm but its electrodes.tsv holds metres (C1 at
    -0.0132, -0.0654, 0.0702); scaling by 1e-3 put all 64 contacts within 0.1 mm of each other."""
    path = IEEG / "epilepsy-ecog" / "sub-pat01_ses-test_acq-ecog_ieeg.edf"
    table = standardize_channels(read_raw(path, preload=False), sidecars=Sidecars.find(path))
    c1 = table.positions[table.names.index("C1")]
    assert np.allclose(c1, [-0.0132, -0.0654, 0.0702])
    assert any("declares coordinates in mm" in n and "read as m" in n for n in table.notes)


def test_mixed_fif_keeps_reader_types_and_positions():
    raw = read_raw(IEEG / "epilepsy-ecog" / "sample_ecog_ieeg.fif")
    table = standardize_channels(raw)
    assert Counter(table.types) == {"ecog": 320, "seeg": 74}
    assert table.has_position().all()
    assert any(n == "DC11 and ID1 share one position" for n in table.notes)   # intracranial: noted, not refused


def test_bids_tree_via_mne_bids_with_scale_fix():
    from neurofm.datasets import get_dataset

    ds = get_dataset("gripforce")
    (ref,) = ds.recordings()
    rec = ds.load(ref)
    kinds = dict(zip(rec.channels.names, rec.channels.types, strict=True))
    assert kinds["ECOG_RIGHT_0"] == "ecog" and kinds["LFP_RIGHT_0"] == "dbs" and kinds["MOV_RIGHT"] == "misc"
    assert rec.target == "MOV_RIGHT"
    ecog = rec.raw.get_data(picks=["ECOG_RIGHT_0"])
    assert 1e-7 < ecog.std() < 1e-3  # Volts after the 10^6 correction (tens of µV), not tens of V
    assert rec.channels.has_position().sum() == 9


def test_montage_families_are_told_apart_from_10_05_names():
    from neurofm.io.montage import detect_family

    mmidb = read_raw(MMIDB / "S001" / "S001R03.edf", preload=False).ch_names   # C1…C6, F1…F8 are 10-05 names here
    eegmat = read_raw(EEGMAT / "rest" / "Subject00_1_first62s.edf", preload=False).ch_names
    strip = [c.replace("EEG ", "").rstrip(".") for c in mmidb + eegmat]
    assert detect_family(strip) is None
    assert detect_family([f"{x}{k}" for x in "ABCD" for k in range(1, 33)])[0] == "BioSemi"
    assert detect_family(["A1", "A2", "C3", "F7", "A3"]) == ("BioSemi", ["A1", "A2", "C3", "F7", "A3"])
    assert detect_family([f"E{k}" for k in range(1, 129)] + ["Cz"])[0] == "EGI"
    assert detect_family([str(k) for k in range(1, 9)])[0] == "numbered"
