"""Du-IN models on the real sEEG depth contacts: forward passes, input layers, registry, encoder protocol."""

from __future__ import annotations

import pytest
import torch

from neurofm import registry
from neurofm._errors import ContractError
from neurofm.models.duin.regions import RegionSpec, regions_from_electrodes
from tests.models.duin.conftest import SEEG_ELECTRODES, tiny_kwargs


def test_registered_names_and_family():
    names = registry.list_models("duin-*")
    for kind in ("vqvae", "mcm", "classifier"):
        assert {f"duin-{kind}", f"duin-{kind}-tiny", f"duin-{kind}-base"} <= set(names)
        assert registry.get_entry("models", f"duin-{kind}-tiny").meta["family"] == "neurofm-encoder"


@pytest.mark.parametrize("fusion", ["subject", "region"])
def test_forward_on_88_depth_contacts(depth_segment, fusion):
    names, x = depth_segment
    assert len(names) == 88
    regions = regions_from_electrodes(SEEG_ELECTRODES, RegionSpec(by="shaft"), channels=names)
    model = registry.create_model("duin-classifier-tiny", n_outputs=5, fusion=fusion, subjects={"pat01": names},
                                  regions={"pat01": regions})
    batch = torch.from_numpy(x)[None].repeat(2, 1, 1)
    tokens, token_mask = model.forward_features(batch, ch_names=[names] * 2, subject=["pat01"] * 2)
    assert tokens.shape == (2, 30, model.num_features) and token_mask.all()
    assert torch.isfinite(tokens).all()
    assert model(batch, subject="pat01", ch_names=names).shape == (2, 5)
    if fusion == "region":  # each shaft feeds only its own hidden channels
        layer = model.encoder.inputs.layers["k_pat01"]
        assert layer.block.shape == (16, 88)
        rows = {shaft: {tuple(layer.block[:, names.index(c)].nonzero().flatten().tolist()) for c in members}
                for shaft, members in regions.items()}
        assert all(len(r) == 1 for r in rows.values())  # a shaft's contacts feed the same hidden channels...
        hidden = [set(next(iter(r))) for r in rows.values()]
        assert sum(len(h) for h in hidden) == 16 and set().union(*hidden) == set(range(16))  # ...and only those
        grads = torch.autograd.grad(model(batch[:1], subject="pat01", ch_names=names).sum(), layer.weight)[0]
        assert (grads[layer.block == 0] == 0).all()


def test_channels_matched_by_name_any_order(depth_segment):
    names, x = depth_segment
    model = registry.create_model("duin-vqvae-tiny", **tiny_kwargs(subjects={"pat01": names})).eval()
    batch = torch.from_numpy(x)[None]
    perm = torch.randperm(len(names))
    shuffled = [names[i] for i in perm]
    with torch.no_grad():
        a = model.forward_features(batch, ch_names=[names], subject="pat01")[0]
        b = model.forward_features(batch[:, perm], ch_names=[shuffled], subject="pat01")[0]
        c = model.forward_features(batch[:, perm], ch_names=[shuffled])[0]  # subject found by channel names
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5)


def test_per_subject_layers_shared_trunk(depth_segment):
    names, x = depth_segment
    subjects = {"a": names[:40], "b": names[40:]}
    model = registry.create_model("duin-vqvae-tiny", **tiny_kwargs(subjects=subjects))
    batch = torch.from_numpy(x)[None].repeat(2, 1, 1)
    out = model(batch, subject=["a", "b"], ch_names=[names, names])
    assert set(out["per_key"]) == {"a", "b"}
    assert out["per_key"]["a"]["recon"].shape == (1, 40, 3000) and out["per_key"]["b"]["recon"].shape == (1, 48, 3000)
    out["loss"].backward()
    for key in ("k_a", "k_b"):
        assert model.encoder.inputs.layers[key].weight.grad.abs().sum() > 0
    with pytest.raises(ContractError, match="no input layer for subject.*HINT"):
        model(batch, subject=["a", "c"], ch_names=[names, names])


def test_missing_channels_are_masked_and_reported(depth_segment):
    names, x = depth_segment
    model = registry.create_model("duin-classifier-tiny", n_outputs=2, subjects={"s": names})
    with pytest.warns(UserWarning, match="2 of its channels are missing"):
        model(torch.from_numpy(x[2:])[None], subject="s", ch_names=names[2:])


def test_braindecode_style_and_harness_protocol():
    model = registry.create_model("duin-classifier-tiny", n_chans=1, n_outputs=3, n_times=600, sfreq=200.0)
    assert model.patch_size == 20 and model(torch.randn(4, 1, 600)).shape == (4, 3)
    groups = model.layer_groups()
    flat = [id(p) for g in groups for p in g]
    assert len(flat) == len(set(flat)) == len(list(model.parameters()))  # disjoint, complete, input → output
    assert any(p is model.encoder.pos_embed for p in groups[0]) and groups[-1][0] is next(model.head.parameters())

    from neurofm.decoding.nets import build_encoder

    enc, record, _ = build_encoder("duin-classifier-tiny", init=None, n_chans=3, n_times=800, sfreq=200.0,
                                   ch_names=["C3", "Cz", "C4"], kwargs={})
    tokens, mask = enc.forward_features(torch.randn(2, 3, 800), pos=None, mask=torch.ones(2, 3, dtype=torch.bool),
                                        ch_names=[["C4", "C3", "Cz"]] * 2)
    assert tokens.shape == (2, 40, enc.num_features) and mask.all()


def test_contract_errors():
    with pytest.raises(ContractError, match="not a multiple of the 100-sample patch"):
        registry.create_model("duin-classifier-tiny", n_chans=2)(torch.randn(1, 2, 2950))
    with pytest.raises(ContractError, match="regions but only 2 hidden channels"):
        registry.create_model("duin-vqvae-tiny", hidden=2, fusion="region", subjects={"s": ["a", "b", "c"]},
                              regions={"s": {"r1": ["a"], "r2": ["b"], "r3": ["c"]}})
    with pytest.raises(ContractError, match="unknown Du-IN size"):
        registry.create_model("duin-mcm", size="huge")
