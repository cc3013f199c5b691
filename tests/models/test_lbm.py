"""LBM: masked-token pretraining on a frozen tokenizer's codes, features for downstream heads."""

from __future__ import annotations

import math

import pytest
import torch

from neurofm._errors import ContractError
from neurofm.data.dataset import WindowDataset, WindowStore, collate
from tests.models.conftest import exported_tokenizer

SMALL_LBM = dict(dim=32, depth=1, heads=2)


def test_masked_code_loss_falls_and_the_tokenizer_stays_frozen(tmp_path, eegmat_store):
    from neurofm.training.lbm import LBMModule

    _, _, tok = exported_tokenizer(tmp_path, eegmat_store)
    torch.manual_seed(0)
    module = LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=SMALL_LBM).train()
    assert not module.tokenizer.training                       # train() keeps the frozen tokenizer in eval mode
    frozen = {k: v.clone() for k, v in module.tokenizer.state_dict().items()}
    batch = collate([WindowDataset(WindowStore(eegmat_store))[i] for i in range(0, 60, 5)])
    opt = torch.optim.Adam(module.model.parameters(), 5e-3)
    losses = []
    for step in range(15):
        torch.manual_seed(step)                                 # a new random mask every step
        loss = module._step(batch, "train")
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 0.1, losses
    assert last < math.log(16), losses                          # better than guessing among the 16 codes
    for k, v in module.tokenizer.state_dict().items():
        assert torch.equal(v, frozen[k]), k                     # codebooks never move


def test_features_and_layer_groups_for_downstream_heads(eegmat_store):
    from neurofm.registry import create_model

    model = create_model("lbm-tiny", n_scales=4, n_levels=3, codebook_size=16, **SMALL_LBM).eval()
    batch = collate([WindowDataset(WindowStore(eegmat_store))[i] for i in range(2)])
    tokens, valid = model.forward_features(batch["x"], pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])
    assert tokens.shape == (2, 19 * 4, model.num_features) and valid.shape == (2, 19 * 4) and valid.all()
    grouped = [id(p) for g in model.layer_groups() for p in g]
    head = {id(p) for p in model.head.parameters()}
    assert set(grouped) | head == {id(p) for p in model.parameters()} and len(grouped) == len(set(grouped))


def test_features_can_come_from_an_earlier_layer_of_the_same_weights(eegmat_store):
    """feature_layer=k: the decoders' features are the tokens after the first k blocks (through the final norm),
    from the very same weights; k = depth gives the default features, and a layer the model lacks is refused."""
    from neurofm.registry import create_model

    torch.manual_seed(0)
    kw = dict(n_scales=4, n_levels=3, codebook_size=16, dim=32, depth=2, heads=2)
    full = create_model("lbm-tiny", **kw).eval()
    batch = collate([WindowDataset(WindowStore(eegmat_store))[i] for i in range(2)])
    args = dict(pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])
    with torch.no_grad():
        ref, _ = full.forward_features(batch["x"], **args)
        emb, posemb, tok_valid, _ = full.tokens(batch["x"], **args)
        after_one = full.encoder.norm(full.encoder.blocks[0](emb + posemb))
        by_layer = {}
        for k in (0, 1, 2):
            m = create_model("lbm-tiny", feature_layer=k, **kw).eval()
            m.load_state_dict(full.state_dict())                # no parameter added or dropped
            by_layer[k], valid = m.forward_features(batch["x"], **args)
            assert by_layer[k].shape == ref.shape and torch.equal(valid, tok_valid)
    torch.testing.assert_close(by_layer[2], ref)
    torch.testing.assert_close(by_layer[1], after_one)
    torch.testing.assert_close(by_layer[0], full.encoder.norm(emb + posemb))
    assert not torch.allclose(by_layer[1], ref, atol=1e-3)
    for bad in (3, -1):
        with pytest.raises(ValueError, match="feature_layer"):
            create_model("lbm-tiny", feature_layer=bad, **kw)


def test_lbm_records_the_code_layout_it_was_built_with(tmp_path, eegmat_store):
    """Regression: LBMModule re-saved its hyperparameters and lost the layout taken from the tokenizer."""
    from neurofm.training.lbm import LBMModule

    _, _, tok = exported_tokenizer(tmp_path, eegmat_store)
    module = LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=SMALL_LBM)
    kw = module.hparams.model_kwargs
    assert (kw["n_scales"], kw["n_levels"], kw["codebook_size"], kw["dim"]) == (4, 3, 16, 32)
    record = {}
    module.on_save_checkpoint(record)
    assert record["neurofm"]["model_kwargs"] == kw          # what `neurofm export` rebuilds the model from


def test_lbm_refuses_kwargs_that_contradict_the_tokenizer(tmp_path, eegmat_store):
    from neurofm.training.lbm import LBMModule

    _, _, tok = exported_tokenizer(tmp_path, eegmat_store)
    with pytest.raises(ContractError, match="codebook_size.*disagree.*HINT: drop these keys"):
        LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=dict(SMALL_LBM, codebook_size=512))


def test_lbm_can_predict_only_the_first_levels(tmp_path, eegmat_store):
    """target_levels=k: the code head covers k levels of every scale, the loss and accuracies follow, and a k the
    tokenizer does not have is refused with the fix."""
    from neurofm._errors import ConfigError
    from neurofm.training.lbm import LBMModule

    _, _, tok = exported_tokenizer(tmp_path, eegmat_store)
    module = LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=dict(SMALL_LBM, target_levels=1))
    assert module.model.head.out_features == 4 * 1 * 16 and module.hparams.model_kwargs["target_levels"] == 1
    batch = collate([WindowDataset(WindowStore(eegmat_store))[i] for i in range(0, 20, 5)])
    codes = module.tokenizer.encode(batch["x"], pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])["codes"]
    h, valid = module.model(batch["x"], pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])
    loss, acc = module.model.masked_code_loss(h, codes.flatten(1, 2), valid)
    assert acc.shape == (1,) and 0 < loss.item() < 2 * math.log(16)
    loss.backward()
    with pytest.raises(ConfigError, match="target_levels=4.*3 levels.*HINT: pass an integer between 1 and 3"):
        LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=dict(SMALL_LBM, target_levels=4))


def test_band_power_target_reads_each_channels_spectrum():
    """The LBM's second target: per-token log band powers of the z-scored patch, standardised per band over the
    valid tokens. A 10-Hz channel leads in α, a 40-Hz channel in γ; amplitude does not matter (tokens are z-scored
    per channel-window) and a padded channel does not move the standardisation."""
    from neurofm.models.lbm import patch_log_band_power
    from neurofm.training.lbm import DEFAULT_BANDS

    t = torch.arange(400) / 200.0
    gen = torch.Generator().manual_seed(0)
    x = torch.stack([torch.sin(2 * math.pi * 10 * t), torch.sin(2 * math.pi * 40 * t), torch.zeros_like(t)])
    x = (x + 0.05 * torch.randn(3, 400, generator=gen))[None].repeat(2, 1, 1)
    valid = torch.tensor([[True, True, False]] * 2)
    bands = [list(b) for b in DEFAULT_BANDS]
    alpha, gamma = bands.index([8, 13]), bands.index([30, 45])
    bp = patch_log_band_power(x, valid, 200, 200.0, bands)
    assert bp.shape == (2, 3 * 2, len(bands))
    ch10, ch40 = bp[:, 0:2], bp[:, 2:4]                       # tokens are channel-major: (c p)
    assert (ch10[..., alpha] > ch40[..., alpha] + 1).all() and (ch40[..., gamma] > ch10[..., gamma] + 1).all()
    scaled = x.clone()
    scaled[:, 0] *= 1e3
    scaled[:, 2] = 1e6 * torch.randn(2, 400, generator=gen)   # padding: garbage that must not enter the statistics
    again = patch_log_band_power(scaled, valid, 200, 200.0, bands)
    torch.testing.assert_close(again[:, :4], bp[:, :4], atol=0.02, rtol=0)  # std is sent as float16
    with pytest.raises(ValueError, match=r"band \[120.0, 130.0\) Hz holds no frequency bin"):
        patch_log_band_power(x, valid, 200, 200.0, [(120.0, 130.0)])


def test_band_target_trains_beside_the_codes_and_ships_with_the_weights(tmp_path, eegmat_store):
    """band_weight > 0: the module builds a band head sized to its bands, the band loss falls with training,
    the head is exported with the weights and rebuilt by from_pretrained; band_weight 0 builds none, and a
    negative weight or an empty band is refused with the fix."""
    from neurofm._errors import ConfigError
    from neurofm.models._contract import SignalContract
    from neurofm.models._hub import from_pretrained
    from neurofm.training.lbm import DEFAULT_BANDS, LBMModule

    _, _, tok = exported_tokenizer(tmp_path, eegmat_store)
    assert LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=SMALL_LBM).model.band_head is None
    torch.manual_seed(0)
    module = LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=SMALL_LBM, band_weight=1.0).train()
    assert module.model.band_head.out_features == len(DEFAULT_BANDS)
    module.contract = SignalContract.from_manifest(WindowStore(eegmat_store).manifest, positions_required=True)
    batch = collate([WindowDataset(WindowStore(eegmat_store))[i] for i in range(0, 60, 5)])
    logged = {}
    module.log = lambda name, value, **kw: logged.setdefault(name, []).append(float(value))
    opt = torch.optim.Adam(module.model.parameters(), 5e-3)
    for step in range(30):
        torch.manual_seed(step)
        module._step(batch, "train").backward()
        opt.step()
        opt.zero_grad()
    band = logged["train/band_loss"]
    assert sum(band[-3:]) / 3 < 0.8 * sum(band[:3]) / 3, band    # standardised targets: guessing the mean is ~1
    module.export(tmp_path / "lbm")
    again = from_pretrained(tmp_path / "lbm")
    assert again.band_head is not None
    torch.testing.assert_close(again.band_head.weight, module.model.band_head.weight)
    with pytest.raises(ConfigError, match="band_weight=-1.0 must be >= 0"):
        LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=SMALL_LBM, band_weight=-1.0)
    with pytest.raises(ConfigError, match=r"bands=.*HINT: e.g."):
        LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=SMALL_LBM, band_weight=1.0, bands=[[8, 4]])
    above_nyquist = LBMModule("lbm-tiny", tokenizer=str(tok), model_kwargs=SMALL_LBM, band_weight=1.0,
                              bands=[[8, 13], [120, 130]])
    above_nyquist.contract = module.contract                  # a 200-Hz store: bins every 1 Hz up to 100 Hz
    with pytest.raises(ConfigError, match=r"\(120.0, 130.0\)\] hold no frequency bin.*HINT: give bands between 0 and 100"):
        above_nyquist.setup("fit")
