"""Heads, fine-tuning and decoder checkpoints with a protocol-following encoder and braindecode models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurofm._errors import ConfigError, ContractError
from neurofm.decoding import nets
from neurofm.decoding.decoder import Decoder
from neurofm.decoding.finetune import finetune
from neurofm.decoding.heads import create_head
from neurofm.decoding.training import TrainConfig, optimizer_groups
from tests.decoding.conftest import DummyEncoder

FAST = TrainConfig(max_epochs=2, patience=2, batch_size=16)


def _real_tokens(eegmat_data, n=4):
    enc = DummyEncoder()
    x = torch.from_numpy(eegmat_data.x[:n] / 10.0)
    mask = torch.from_numpy(eegmat_data.mask[:n])
    with torch.no_grad():
        return enc.forward_features(x, mask=mask)


@pytest.mark.parametrize("kind", ["linear", "mlp", "attention"])
def test_heads_ignore_padded_tokens(eegmat_data, kind):
    torch.manual_seed(0)
    tokens, token_mask = _real_tokens(eegmat_data)
    head = create_head(kind, tokens.shape[-1], 2).eval()
    out = head(tokens, token_mask)
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    padded = torch.cat([tokens, 1e3 * torch.randn(4, 7, tokens.shape[-1])], 1)  # garbage in padded slots
    pad_mask = torch.cat([token_mask, torch.zeros(4, 7, dtype=torch.bool)], 1)
    torch.testing.assert_close(head(padded, pad_mask), out, rtol=1e-4, atol=1e-4)


def test_unknown_head_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'attention'"):
        create_head("atention", 16, 2)


def test_layer_wise_lr_decay_groups():
    net = nets.encoder_decoder(DummyEncoder(), dict(kind="mlp"), 2, ["Cz"], np.zeros((1, 3)), freeze=False)
    cfg = TrainConfig(lr=1e-3, layer_decay=0.5, weight_decay=0.1)
    groups = optimizer_groups(net, cfg)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert lr_of[id(net.encoder.embed.weight)] == pytest.approx(2.5e-4)  # input-most group: lr · 0.5²
    assert lr_of[id(net.encoder.block[1].weight)] == pytest.approx(5e-4)
    assert all(lr_of[id(p)] == pytest.approx(1e-3) for p in net.head.parameters())
    assert wd_of[id(net.encoder.embed.bias)] == 0.0 and wd_of[id(net.encoder.embed.weight)] == 0.1
    assert len(lr_of) == sum(1 for _ in net.parameters())  # every parameter is optimised exactly once
    frozen = nets.encoder_decoder(DummyEncoder(), dict(kind="linear"), 2, ["Cz"], np.zeros((1, 3)), freeze=True)
    assert {id(p) for g in optimizer_groups(frozen, cfg) for p in g["params"]} == {id(p) for p in frozen.head.parameters()}


def test_finetune_encoder_with_attention_head_and_reload(eegmat_data, dummy_encoder_name, tmp_path):
    res = finetune(eegmat_data.task, dummy_encoder_name, data=eegmat_data, head="attention", out=tmp_path,
                   train=FAST, verbose=False)
    cfg = json.loads((tmp_path / "decoder" / "decoder.json").read_text())
    assert cfg["family"] == "neurofm-encoder" and cfg["head"]["kind"] == "attention" and cfg["normalize"] == "channel"
    assert cfg["ch_names"] == eegmat_data.ch_names and len(cfg["train"]["history"]) == 2
    dec = Decoder.load(tmp_path)
    idx = eegmat_data.splits()["test"]
    proba = dec.predict(eegmat_data.x[idx], eegmat_data.mask[idx])
    np.testing.assert_allclose(proba, res.predictions["test"][1], rtol=1e-5, atol=1e-6)
    assert proba.shape == (30, 2) and np.allclose(proba.sum(1), 1)
    calls = dec.net.encoder.calls
    assert calls and calls[-1]["ch_names"][0] == eegmat_data.ch_names  # the protocol's keyword arguments arrive
    assert calls[-1]["pos"].shape == (30, 19, 3) and calls[-1]["mask"].dtype == torch.bool


def test_linear_probe_keeps_the_encoder_frozen(eegmat_data, dummy_encoder_name):
    torch.manual_seed(0)
    res = finetune(eegmat_data.task, dummy_encoder_name, data=eegmat_data, head="linear", freeze=True,
                   train=FAST, verbose=False)
    enc = res.decoder.net.encoder
    import lightning as L

    L.seed_everything(0, verbose=False)  # finetune seeds before building: same seed, same initial encoder
    fresh = nets.build_encoder(dummy_encoder_name, init=None, n_chans=19, n_times=800, sfreq=200.0,
                               ch_names=eegmat_data.ch_names)[0]
    for (name, a), b in zip(enc.state_dict().items(), fresh.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert not any(p.requires_grad for p in enc.parameters())


def test_init_from_exported_encoder_checks_its_contract(eegmat_data, dummy_encoder_name, tmp_path):
    from neurofm.models._contract import SignalContract
    from neurofm.models._hub import save_pretrained

    enc = DummyEncoder(dim=8)
    with torch.no_grad():
        enc.embed.weight.fill_(0.01)
    good = save_pretrained(enc, tmp_path / "enc", name=dummy_encoder_name, kwargs=dict(dim=8),
                           contract=SignalContract(sfreq=200.0, n_times=800, patch_size=200,
                                                   ch_names=eegmat_data.ch_names, recipe="eeg-200hz",
                                                   normalization="per channel-window z-score"))
    res = finetune(eegmat_data.task, None, init=str(good), data=eegmat_data, train=FAST, verbose=False)
    build = res.decoder.config["build"]
    assert build["model"] == dummy_encoder_name and build["init"] == str(good) and build["init_sha256"]
    assert res.decoder.config["normalize"] == "none"  # the encoder normalises its input itself
    bad = save_pretrained(enc, tmp_path / "enc250", name=dummy_encoder_name, kwargs=dict(dim=8),
                          contract=SignalContract(sfreq=250.0, patch_size=250, recipe="eeg-250"))
    with pytest.raises(ContractError, match="sampling rate 200 Hz, but the model expects 250 Hz") as info:
        finetune(eegmat_data.task, dummy_encoder_name, init=str(bad), data=eegmat_data, train=FAST, verbose=False)
    assert str(bad) in str(info.value) and "HINT:" in str(info.value)
    with pytest.raises(ConfigError, match=f"holds model '{dummy_encoder_name}', not 'neurorvq-tiny'"):
        finetune(eegmat_data.task, "neurorvq-tiny", init=str(good), data=eegmat_data, train=FAST, verbose=False)
    with pytest.raises(ConfigError, match="--init only applies to neurofm encoders"):
        finetune(eegmat_data.task, "eegnet", init=str(good), data=eegmat_data, train=FAST, verbose=False)


def test_braindecode_models_by_name(eegmat_data, tmp_path):
    res = finetune(eegmat_data.task, "shallow-fbcspnet", data=eegmat_data, train=FAST, verbose=False, out=tmp_path)
    assert res.decoder.config["build"]["kwargs"] == dict(n_chans=19, n_outputs=2, n_times=800, sfreq=200.0)
    dec = Decoder.load(tmp_path / "decoder")
    idx = eegmat_data.splits()["val"]
    np.testing.assert_allclose(dec.predict(eegmat_data.x[idx], eegmat_data.mask[idx]), res.predictions["val"][1],
                               rtol=1e-5, atol=1e-6)
    # A single channel (Bonn): braindecode's ShallowFBCSPNet fails on it; the lone channel is fed twice, noted.
    net, record, notes = nets.build_braindecode("shallow-fbcspnet", n_chans=1, n_outputs=3, n_times=800, sfreq=200.0,
                                                ch_names=["EEG"])
    assert record["repeat"] == 2 and "fed twice" in notes[0]
    assert net(torch.zeros(3, 1, 800)).shape == (3, 3)
    net, record, notes = nets.build_braindecode("eegnet", n_chans=1, n_outputs=3, n_times=800, sfreq=200.0,
                                                ch_names=["EEG"])
    assert record["repeat"] == 1 and not notes
    with pytest.raises(ContractError, match="do not divide 700-sample windows"):
        nets.build_braindecode("labram-braindecode", n_chans=19, n_outputs=2, n_times=700, sfreq=200.0,
                               ch_names=eegmat_data.ch_names)
    with pytest.raises(ConfigError, match="--head/--head-kwargs/--freeze apply to neurofm encoders"):
        finetune(eegmat_data.task, "eegnet", data=eegmat_data, head="mlp", train=FAST, verbose=False)


def _tiny_encoders() -> list[str]:
    from neurofm import registry

    return [e.name for e in registry.entries("models", "*-tiny") if e.meta.get("family") in nets.ENCODER_FAMILIES]


@pytest.mark.parametrize("name", _tiny_encoders())
def test_every_registered_tiny_encoder_carries_a_head(eegmat_data, name):
    """Registry-parametrised: each protocol encoder, built by name through the harness, on real windows."""
    torch.manual_seed(0)
    enc, record, _ = nets.build_encoder(name, init=None, n_chans=19, n_times=800, sfreq=200.0,
                                        ch_names=eegmat_data.ch_names)
    net = nets.encoder_decoder(enc, dict(kind="attention"), 2, eegmat_data.ch_names, eegmat_data.pos, freeze=False)
    x = torch.from_numpy(eegmat_data.x[:2] / 20.0)
    out = net(x, torch.from_numpy(eegmat_data.mask[:2]))
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    out.sum().backward()
    assert net.param_groups() and all(p.grad is not None for p in net.head.parameters())


def test_channel_head_keeps_where_a_feature_is_and_ignores_padded_channels():
    """The 'channels' head pools each channel's patches separately: moving a feature to another channel changes
    its output (the mean-pooling linear head cannot tell), garbage in a padded channel does not."""
    torch.manual_seed(0)
    c, p, d = 3, 4, 8
    tokens = torch.randn(2, c * p, d)
    swapped = tokens.view(2, c, p, d)[:, [1, 0, 2]].reshape(2, c * p, d)   # channels 0 and 1 exchanged
    chan = create_head("channels", d, 2, n_chans=c).eval()
    lin = create_head("linear", d, 2, n_chans=c).eval()                  # n_chans is ignored by other heads
    assert chan.n_features == c * d and lin.n_features == d
    torch.testing.assert_close(lin(swapped), lin(tokens))
    assert (chan(swapped) - chan(tokens)).abs().max() > 1e-3
    mask = torch.ones(2, c * p, dtype=torch.bool)
    mask[:, 2 * p:] = False                                                # channel 2 is padding
    garbage = tokens.clone()
    garbage[:, 2 * p:] = 1e3 * torch.randn(2, p, d)
    zeros = tokens.clone()
    zeros[:, 2 * p:] = 0
    torch.testing.assert_close(chan(garbage, mask), chan(zeros, mask))
    with pytest.raises(ContractError, match="13 tokens do not split into 3 channels.*HINT: use --head linear"):
        chan(torch.randn(1, 13, d))
    with pytest.raises(ConfigError, match="needs the number of channels"):
        create_head("channels", d, 2)
