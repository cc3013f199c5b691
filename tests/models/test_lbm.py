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
