"""Speech-data loaders on small files written in the Du-IN release and BIDS (SingleWordProductionDutch) layouts.

No such recordings are in ../shared/data; the files hold real sEEG samples from ieeg/epilepsy-seeg.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import types

import numpy as np
import pytest

from neurofm._errors import CorruptFileError, DatasetRootError, EventsError
from neurofm.data.dataset import WindowStore
from neurofm.datasets.speech import DuINRelease, SpeechBIDS, read_word_events, restricted_load, word_recipe
from neurofm.preprocessing.recipe import resolve_recipe
from neurofm.preprocessing.run import preprocess
from tests.models.duin.conftest import SEEG_ELECTRODES

WORDS = ["boat", "cloud", "apple", "boat", "river", "cloud"]


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_objects_that_are_not_plain_data(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps([{"data_s": np.zeros(3), "name": _Evil(str(marker))}]))
    with pytest.raises(CorruptFileError, match=r"refused to unpickle: global '(posix|os|nt)\.system'.*HINT"):
        restricted_load(evil)
    assert not marker.exists()  # refused before anything ran

    import collections

    other = tmp_path / "counter.pkl"
    other.write_bytes(pickle.dumps({"ch_names": collections.Counter("ab")}))
    with pytest.raises(CorruptFileError, match="collections.Counter' is not plain data"):
        restricted_load(other)
    builtin = tmp_path / "eval.pkl"
    builtin.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")  # protocol 0: builtins.eval('1+1')
    with pytest.raises(CorruptFileError, match="builtins.eval"):
        restricted_load(builtin)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_loads_plain_data(tmp_path, protocol):
    obj = [{"data_s": np.arange(6, dtype=np.float32).reshape(2, 3), "name": "boat", "n": np.int64(3)},
           {"data_s": np.ones((2, 3)), "name": "cloud", "tags": {"a", "b"}, "t": (1.5, None)}]
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    out = restricted_load(path)
    assert out[0]["name"] == "boat" and out[1]["tags"] == {"a", "b"} and out[1]["t"] == (1.5, None)
    np.testing.assert_array_equal(out[0]["data_s"], obj[0]["data_s"])


def _epochs(seeg_recording, n_chans=5, n_epochs=6):
    raw = seeg_recording.raw
    names = [n for n, t in zip(seeg_recording.channels.names, seeg_recording.channels.types, strict=True)
             if t == "seeg"][:n_chans]
    x = raw.get_data(picks=names)[:, : n_epochs * 3000] * 1e6  # µV
    return names, x.reshape(len(names), n_epochs, 3000).transpose(1, 0, 2).astype(np.float32)


def _write_duin_release(root, subject, names, epochs, *, dotdict=False):
    folder = root / subject / "word-recitation" / "run1" / "dataset.bipolar.default.aligned"
    folder.mkdir(parents=True)
    data = [{"data_s": ep, "name": w} for ep, w in zip(epochs, WORDS, strict=True)]
    info = {"ch_names": names}
    if dotdict:  # the reference code's utils.DotDict (a dict subclass) in the pickle
        mod = types.ModuleType("utils")

        class DotDict(dict):
            pass

        DotDict.__module__, DotDict.__qualname__ = "utils", "DotDict"
        mod.DotDict = DotDict
        sys.modules["utils"] = mod
        try:
            data = [DotDict(d) for d in data]
            (folder / "data").write_bytes(pickle.dumps(data, protocol=4))
        finally:
            del sys.modules["utils"]
    else:
        (folder / "data").write_bytes(pickle.dumps(data, protocol=4))
    (folder / "info").write_bytes(pickle.dumps(info, protocol=4))
    return folder


def test_duin_release_layout_to_store(tmp_path, seeg_recording):
    names, epochs = _epochs(seeg_recording)
    root = tmp_path / "duin"
    _write_duin_release(root, "001", names, epochs)
    _write_duin_release(root, "002", names[:3], epochs[:, :3], dotdict=True)
    ds = DuINRelease(root)
    refs = ds.recordings()
    assert [(r.subject, r.run) for r in refs] == [("001", "run1"), ("002", "run1")]
    ep = ds.epochs(refs[1])
    assert ep.words == WORDS and ep.ch_names == names[:3] and ep.x.shape == (6, 3, 3000)
    rec = ds.load(refs[0])
    assert [e.label for e in rec.events] == WORDS and rec.events[1].onset == 3.0

    out = tmp_path / "store"
    res = preprocess(ds, resolve_recipe("duin-release"), out, report=False, verbose=False)
    assert not res.failed, res.failed
    store = WindowStore(out)
    assert list(store.labels[:6]) == WORDS and store.array(0).shape == (6, 5, 3000)
    np.testing.assert_allclose(store.array(0), epochs, rtol=1e-5, atol=1e-3)  # the epochs, unchanged, in µV


def test_duin_release_bad_layouts(tmp_path, seeg_recording):
    names, epochs = _epochs(seeg_recording)
    folder = _write_duin_release(tmp_path / "r", "001", names, epochs)
    (folder / "info").unlink()
    with pytest.raises(DatasetRootError, match="missing 'info'.*HINT"):
        DuINRelease(tmp_path / "r").epochs(DuINRelease(tmp_path / "r").recordings()[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetRootError, match="no recordings matching.*HINT"):
        DuINRelease(empty).recordings()
    with pytest.raises(DatasetRootError, match="dataset root does not exist.*HINT"):
        DuINRelease(tmp_path / "missing").recordings()


def _write_nwb(path, data_v, sfreq):
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["neurodata_type"] = "NWBFile"
        g = f.create_group("acquisition/iEEG")
        g.attrs["neurodata_type"] = "ElectricalSeries"
        d = g.create_dataset("data", data=(data_v.T / 1e-6).astype(np.float32))  # (n_samples, n_chans), µV units
        d.attrs.update(conversion=1e-6, unit="volts")
        st = g.create_dataset("starting_time", data=0.0)
        st.attrs.update(rate=sfreq, unit="seconds")


def test_bids_word_onsets_nwb_to_store(tmp_path, seeg_recording):
    import mne

    rows = [r for r in (ln.split("\t") for ln in SEEG_ELECTRODES.read_text().splitlines())]
    header, table = rows[0], {r[0]: r for r in rows[1:]}
    names = ["X'9", "X'10", "X'11", "X'12"]
    sfreq = 1024.0  # as in SingleWordProductionDutch
    x = mne.filter.resample(seeg_recording.raw.get_data(picks=names)[:, :12000], up=1.024, verbose="error")
    root = tmp_path / "SingleWordProductionDutch-iBIDS"
    ieeg = root / "sub-01" / "ieeg"
    ieeg.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.8.0"}))
    (root / "participants.tsv").write_text("participant_id\nsub-01\n")
    base = "sub-01_task-wordProduction"
    _write_nwb(ieeg / f"{base}_ieeg.nwb", x, sfreq)
    (ieeg / f"{base}_ieeg.json").write_text(json.dumps({"SamplingFrequency": sfreq, "PowerLineFrequency": 50}))
    (ieeg / f"{base}_channels.tsv").write_text("name\ttype\tunits\tstatus\n" +
                                               "".join(f"{n}\tSEEG\tV\tgood\n" for n in names))
    (ieeg / f"{base}_space-ACPC_electrodes.tsv").write_text("\t".join(header) + "\n" +
                                                            "".join("\t".join(table[n]) + "\n" for n in names))
    (ieeg / f"{base}_space-ACPC_coordsystem.json").write_text(json.dumps({"iEEGCoordinateSystem": "ACPC",
                                                                          "iEEGCoordinateUnits": "mm"}))
    onsets = [1.0, 3.5, 6.0, 8.5, 10.8]  # the recording lasts 12 s: no full window around the last word
    (ieeg / f"{base}_events.tsv").write_text("onset\tduration\ttrial_type\n" + "".join(
        f"{o}\t2.0\t{w}\n" for o, w in zip(onsets, WORDS, strict=False)))

    ds = SpeechBIDS(root)
    ref, = ds.recordings()
    assert ref.subject == "01" and ds.words(ref) == ["apple", "boat", "cloud", "river"]
    rec = ds.load(ref)
    assert rec.raw.info["sfreq"] == sfreq and rec.raw.ch_names == names
    np.testing.assert_allclose(rec.raw.get_data(), x, rtol=1e-5, atol=1e-9)  # Volts, as written
    assert rec.channels.atlas["destriuex"][2] == "ctx_lh_S_precentral-sup-part"

    recipe = word_recipe(ds.words(ref), "seeg-1000hz", tmin=-0.5, window_s=2.0)
    out = tmp_path / "store"
    res = preprocess(ds, recipe, out, report=False, verbose=False)
    assert not res.failed, res.failed
    store = WindowStore(out)
    assert list(store.labels) == WORDS[:4] and store.array(0).shape == (4, 3, 2000)  # 4 contacts → 3 bipolar
    assert store.recordings[0]["starts"][0] == 500  # 1.0 s − 0.5 s at 1000 Hz


def test_events_tsv_without_words(tmp_path):
    path = tmp_path / "sub-01_task-x_events.tsv"
    path.write_text("onset\tduration\tsample\n1.0\t0\t1000\n")
    with pytest.raises(EventsError, match="no word column.*HINT"):
        read_word_events(path)
    assert [e.label for e in read_word_events(path, column="sample")] == ["1000"]
