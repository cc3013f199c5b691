"""Du-IN training on short real segments: VQ-VAE reconstruction, masked code modelling, fine-tuning, CLI."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
import yaml

from neurofm._errors import ContractError
from neurofm.data.duin import DuINDataModule
from neurofm.training.duin import BestState, DuINClassifierModule, DuINMCMModule, DuINVQVAEModule
from tests.conftest import REPO
from tests.models.duin.conftest import quiet_trainer, tiny_kwargs


def _eval_losses(module, dm, fn):
    module.eval()
    with torch.no_grad():
        out = [fn(b) for b in dm.train_dataloader()]
    module.train()
    return float(torch.tensor(out).mean())


def test_vqvae_reconstruction_improves_on_real_segment(seeg_store):
    """9 s of real sEEG (82 bipolar channels): eval-mode reconstruction error falls with training."""
    L.seed_everything(0, verbose=False)
    dm = DuINDataModule([str(seeg_store)], names=["seeg"], batch_size=8, split="time")
    module = DuINVQVAEModule(model_kwargs=tiny_kwargs(), regions=dict(by="shaft"), lr=3e-3, warmup_steps=2,
                             min_lr_ratio=1.0)
    trainer = quiet_trainer(max_epochs=1, val=False)
    trainer.fit(module, dm)  # epoch 1 also runs the k-means init of the codebook

    def recon(batch):
        return module.model(batch["x"], **module._batch_args(batch))["recon_loss"]

    before = _eval_losses(module, dm, recon)
    quiet_trainer(max_epochs=12, val=False).fit(module, dm)
    after = _eval_losses(module, dm, recon)
    assert after < 0.85 * before, (before, after)
    store_channels = [c["name"] for c in dm.manifest["recordings"][0]["channels"]]
    assert module.model.subjects() == {"seeg/pat01": store_channels} and len(store_channels) == 82
    # the contract records the region choice and the training-split statistics
    assert module.contract.regions["spec"]["by"] == "shaft"
    assert set(module.contract.regions["subjects"]["seeg/pat01"]) == {"L'", "N'", "F'", "O'", "G'", "X'"}
    assert module.contract.extra["normalization"]["channel_stats"]["seeg"]["L'1-L'2"][1] > 0


def test_masked_code_loss_falls(seeg_store, exported_vqvae, tmp_path):
    L.seed_everything(0, verbose=False)
    dm = DuINDataModule([str(seeg_store)], names=["seeg"], batch_size=8, split="time")
    module = DuINMCMModule(vqvae=str(exported_vqvae), lr=3e-3, warmup_steps=2, min_lr_ratio=1.0)
    assert module.model.codebook_size == 64 and module.init_report["loaded"]  # from the VQ-VAE's config

    def masked_loss(batch):
        args = module._batch_args(batch)
        codes = module._vq.tokenize(batch["x"], **args)
        gen = torch.Generator().manual_seed(0)
        return module.model.masked_code_loss(batch["x"], codes, generator=gen, **args)["loss"]

    dm.setup()
    before = _eval_losses(module, dm, masked_loss)
    vq_before = {k: v.clone() for k, v in module._vq.state_dict().items()}
    quiet_trainer(max_epochs=10, val=False).fit(module, dm)
    after = _eval_losses(module, dm, masked_loss)
    assert after < 0.8 * before, (before, after)
    assert all(torch.equal(v, module._vq.state_dict()[k]) for k, v in vq_before.items())  # VQ-VAE stays frozen
    module.export(tmp_path / "mcm")
    cfg = json.loads((tmp_path / "mcm" / "config.json").read_text())
    assert cfg["model"] == "duin-mcm-tiny" and cfg["kwargs"]["codebook_size"] == 64
    assert cfg["kwargs"]["subjects"]["seeg/pat01"][0] == "F'1-F'2"


def test_mcm_refuses_subjects_the_vqvae_does_not_know(grip_store, exported_vqvae):
    dm = DuINDataModule([str(grip_store)], names=["grip"], batch_size=8, split="time")
    module = DuINMCMModule(vqvae=str(exported_vqvae))
    with pytest.raises(ContractError, match="not known to the frozen VQ-VAE.*HINT"):
        quiet_trainer(max_epochs=1).fit(module, dm)


def test_finetune_regression_from_pretrained(grip_store, exported_vqvae):
    """Grip force per 100-ms patch: new subject layer, pretrained trunk, selection on validation r."""
    L.seed_everything(0, verbose=False)
    dm = DuINDataModule([str(grip_store)], names=["grip"], batch_size=16, split="time")
    module = DuINClassifierModule(pretrained=str(exported_vqvae),
                                  model_kwargs=dict(n_outputs=1, task="regression", n_times=1000), lr=2e-3,
                                  warmup_steps=2)
    assert "pos_embed" in module.init_report["loaded"]  # leading positions of the 3-s trunk
    best = BestState("val/r", "max")
    quiet_trainer(max_epochs=2, callbacks=[best]).fit(module, dm)
    assert best.best_epoch is not None and -1 <= best.best <= 1
    assert "grip/testsub" in module.model.subjects()  # its layer was added in setup
    res = quiet_trainer().test(module, dm, verbose=False)[0]
    assert -1 <= res["test/r"] <= 1


def test_pretrain_cli_vqvae_then_mcm(seeg_store, tmp_path):
    """`neurofm pretrain --config configs/pretrain/duin-*.yaml`: fit, export, MCM from the export."""
    from neurofm.training.cli import main

    def config(name: str, **model_args) -> str:
        cfg = yaml.safe_load((REPO / "configs" / "pretrain" / f"{name}.yaml").read_text())
        cfg["data"]["init_args"].update(stores=[str(seeg_store)], names=["seeg"], batch_size=8)
        cfg["model"]["init_args"]["model_kwargs"].update(dim=32, depth=1, heads=2) if "vqvae" in name else None
        cfg["model"]["init_args"].update(model_args)
        cfg["trainer"].update(max_epochs=1, default_root_dir=str(tmp_path / name), enable_progress_bar=False,
                              logger=False, callbacks=None, enable_checkpointing=False)
        cfg["export"] = str(tmp_path / name / "export")
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return str(path)

    main(["--config", config("duin-vqvae-tiny"), "--config", str(REPO / "configs" / "trainer" / "cpu.yaml")])
    vq = json.loads((tmp_path / "duin-vqvae-tiny" / "export" / "config.json").read_text())
    assert vq["model"] == "duin-vqvae-tiny" and vq["contract"]["regions"]["spec"]["by"] == "shaft"
    assert vq["contract"]["sfreq"] == 1000.0 and vq["contract"]["patch_size"] == 100
    main(["--config", config("duin-mcm-tiny", vqvae=str(tmp_path / "duin-vqvae-tiny" / "export")),
          "--config", str(REPO / "configs" / "trainer" / "cpu.yaml")])
    mcm = json.loads((tmp_path / "duin-mcm-tiny" / "export" / "config.json").read_text())
    assert mcm["kwargs"]["dim"] == 32 and mcm["contract"]["regions"] == vq["contract"]["regions"]
