"""The signal contract of a model trained on several stores."""

from neurofm.models._contract import SignalContract


def _manifest(recipe: str, steps: list[dict], channels: list[str]) -> dict:
    rec = dict(sfreq=200.0, n_times=800, patch_size=200, units="uV", channels=[{"name": c} for c in channels])
    return dict(recipe=dict(name=recipe, steps=steps), dataset=dict(modality="eeg"), recordings=[rec])


def test_a_multi_store_contract_names_a_store_without_a_rereference_step():
    band = {"bandpass": {"l_freq": 0.1, "h_freq": 75.0}}
    avg = _manifest("eeg-200hz", [band, {"rereference": {"kind": "average"}}], ["Fz", "Cz"])
    raw = _manifest("eeg-200hz-raw", [band], ["Cz", "Pz"])
    c = SignalContract.from_manifests([avg, raw])
    assert c.reference == "average + no reference"  # was " + average"-style joins of an empty string
    assert c.recipe == "eeg-200hz + eeg-200hz-raw"
    assert c.ch_names == ["Fz", "Cz", "Pz"] and c.band == (0.1, 75.0)
    # one store, or stores that agree: the value as is (an absent step stays the empty string)
    assert SignalContract.from_manifests([raw, raw]).reference == ""
    assert SignalContract.from_manifests([avg, avg]).reference == "average"
