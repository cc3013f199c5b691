"""braindecode without glue: a store as a BaseConcatDataset and back, EEGClassifier on neurofm encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofm.data.braindecode import from_braindecode, to_braindecode
from neurofm.data.dataset import WindowStore


@pytest.fixture(scope="module")
def bd(eegmat_store):
    return to_braindecode(eegmat_store, target="label")


@pytest.fixture(scope="module")
def small(bd):
    """Subject 00's rest and arithmetic recordings, 6 windows each: a few windows of both classes."""
    from braindecode.datasets import BaseConcatDataset

    subs = bd.split("subject")["00"].datasets
    assert {d.description["label"] for d in subs} == {"rest", "arithmetic"}
    return BaseConcatDataset([_first(d, 6) for d in subs])


def _first(ds, n):
    from braindecode.datasets import WindowsDataset

    return WindowsDataset(ds.windows[:n], description=ds.description)


def test_store_as_braindecode_dataset(eegmat_store, bd):
    store = WindowStore(eegmat_store)
    assert len(bd.datasets) == len(store.recordings) and len(bd) == len(store)
    desc = bd.description
    for col in ("subject", "session", "run", "label", "dataset"):
        assert col in desc.columns
    assert sorted(desc["subject"].unique()) == ["00", "01", "02"]
    assert bd.label_map == {"arithmetic": 0, "rest": 1}
    x, y, inds = bd[0]
    np.testing.assert_allclose(x, store[0], rtol=1e-6)  # µV, as in the store
    rec = store.recordings[0]
    assert y == bd.label_map[rec["label"]] and x.shape == (len(rec["channels"]), rec["n_times"])
    assert list(inds[1:]) == [rec["starts"][0], rec["starts"][0] + rec["n_times"]]
    info = bd.datasets[0].windows.info
    assert info["ch_names"] == [c["name"] for c in rec["channels"]]
    np.testing.assert_allclose(info["chs"][0]["loc"][:3], rec["channels"][0]["pos"], atol=1e-6)
    # braindecode's own split by subject and its preprocessors work on it
    splits = bd.split("subject")
    assert set(splits) == {"00", "01", "02"}
    from braindecode.preprocessing import Preprocessor, preprocess

    one = to_braindecode(eegmat_store)
    one = type(one)(one.datasets[:1])
    preprocess(one, [Preprocessor("pick", picks=["Fp1", "Fp2", "Cz"])], n_jobs=1)
    assert one[0][0].shape == (3, rec["n_times"])


def test_braindecode_dataset_round_trips_into_a_store(eegmat_store, bd, tmp_path):
    out = from_braindecode(bd, tmp_path / "rt")
    a, b = WindowStore(eegmat_store), WindowStore(out)
    assert len(a) == len(b) and [r["subject"] for r in a.recordings] == [r["subject"] for r in b.recordings]
    assert list(a.labels) == list(b.labels)  # label names come back through ds.label_map
    for i in (0, len(a) - 1):
        np.testing.assert_allclose(a[i], b[i], rtol=1e-6, atol=1e-4)
    ra, rb = a.recordings[0], b.recordings[0]
    assert [c["name"] for c in ra["channels"]] == [c["name"] for c in rb["channels"]]
    np.testing.assert_allclose(ra["channels"][3]["pos"], rb["channels"][3]["pos"], atol=1e-6)
    assert rb["sfreq"] == ra["sfreq"] and rb["starts"] == ra["starts"]
    # and the written store feeds neurofm's own reader
    from neurofm.data.dataset import WindowDataset

    assert WindowDataset(out)[0]["x"].shape == tuple(ra["shape"][1:])


def _fit(module_or_class, ds, **kwargs):
    from braindecode import EEGClassifier

    torch.manual_seed(0)
    clf = EEGClassifier(module_or_class, max_epochs=2, batch_size=4, train_split=None, verbose=0,
                        optimizer=torch.optim.AdamW, lr=1e-3, **kwargs)
    clf.fit(ds, y=None)
    losses = clf.history[:, "train_loss"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    proba = clf.predict_proba(ds)
    assert proba.shape == (len(ds), 2)
    return clf


def test_eegclassifier_fits_braindecode_model_on_store(small):
    from braindecode.augmentation import AugmentedDataLoader, FTSurrogate
    from braindecode.models import ShallowFBCSPNet

    # the class is given: EEGClassifier infers n_chans/n_times/n_outputs/chs_info from the dataset
    _fit(ShallowFBCSPNet, small, iterator_train=AugmentedDataLoader,
         iterator_train__transforms=[FTSurrogate(probability=0.5, random_state=0)])


@pytest.mark.parametrize("name", ["neurorvq-tiny", "labram-vq-tiny", "lbm-tiny", "duin-mcm-tiny",
                                  "duin-classifier-tiny"])
def test_eegclassifier_trains_each_neurofm_encoder_family(small, name):
    from neurofm.registry import create_model

    info = small.datasets[0].windows.info
    n_times = small[0][0].shape[-1]
    kwargs = dict(depth=1) if name.startswith("duin") else {}
    module = create_model(name, n_chans=len(info["chs"]), n_outputs=2, n_times=n_times, sfreq=info["sfreq"],
                          chs_info=info["chs"], **kwargs)
    assert isinstance(module, torch.nn.Module)
    x = torch.as_tensor(np.stack([small[i][0] for i in range(3)]), dtype=torch.float32)
    assert module(x).shape == (3, 2)  # forward(X) on (B, C, T) gives logits, mask all true
    _fit(module, small)


def test_from_pretrained_checks_contract_and_trains_in_eegclassifier(small, tmp_path):
    from neurofm._errors import ContractError
    from neurofm.models._braindecode import from_pretrained
    from neurofm.models._contract import SignalContract
    from neurofm.models._hub import save_pretrained
    from neurofm.registry import create_model

    info = small.datasets[0].windows.info
    n_times = small[0][0].shape[-1]
    encoder = create_model("neurorvq-tiny")
    contract = SignalContract(sfreq=200.0, n_times=n_times, patch_size=200, units="uV", positions_required=True,
                              ch_names=list(info["ch_names"]), recipe="eeg-200hz")
    save_pretrained(encoder, tmp_path / "tok", name="neurorvq-tiny", kwargs={}, contract=contract)
    model = from_pretrained(tmp_path / "tok", n_outputs=2, chs_info=info["chs"], sfreq=info["sfreq"], n_times=n_times)
    loaded = model.encoder.state_dict()
    for key, value in encoder.state_dict().items():  # the weights are the exported ones
        torch.testing.assert_close(loaded[key], value)
    _fit(model, small)
    with pytest.raises(ContractError, match="sampling rate 250 Hz"):
        from_pretrained(tmp_path / "tok", n_outputs=2, chs_info=info["chs"], sfreq=250.0, n_times=n_times)
