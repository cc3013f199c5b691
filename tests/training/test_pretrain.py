"""`neurofm pretrain` end to end, checkpoint/resume determinism, export and `neurofm evaluate tokenizer`."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from neurofm.data.datamodule import StoreDataModule
from neurofm.training.tokenizer import TokenizerModule
from tests.conftest import REPO, run_cli

SMALL = dict(dim=32, depth=1, decoder_depth=1, heads=2, codebook_size=16, code_dim=8, n_levels=2)


class RecordLoss(L.Callback):
    def __init__(self):
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


class StopAfterFirstEpoch(L.Callback):
    """Ends the run after epoch 0 (its checkpoint written) with the schedule of the full run: an interruption."""

    def on_train_epoch_end(self, trainer, module):
        trainer.should_stop = True


def _fit(store: Path, ckpt_dir: Path, max_epochs: int, ckpt_path: str | None = None, interrupt: bool = False):
    L.seed_everything(0, verbose=False)
    module = TokenizerModule("neurorvq-tiny", model_kwargs=SMALL, max_chans=8, warmup_steps=2)
    dm = StoreDataModule(str(store), batch_size=8, val_subjects=["02"], test_subjects=[])
    rec = RecordLoss()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, limit_train_batches=3, limit_val_batches=1,
                        logger=False, enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                        callbacks=[rec, L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True),
                                   *([StopAfterFirstEpoch()] if interrupt else [])])
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module, rec.losses


def test_resume_gives_the_same_next_step_loss_and_weights(eegmat_store, tmp_path):
    torch.set_num_threads(1)
    full, losses_full = _fit(eegmat_store, tmp_path / "a", max_epochs=2)
    _, first = _fit(eegmat_store, tmp_path / "b", max_epochs=2, interrupt=True)
    assert sorted(first) == [1, 2, 3]
    resumed, losses_resumed = _fit(eegmat_store, tmp_path / "b", max_epochs=2, ckpt_path=str(tmp_path / "b" / "last.ckpt"))
    assert sorted(losses_resumed) == [4, 5, 6]                 # steps after the checkpoint only
    for step in losses_resumed:
        assert losses_resumed[step] == pytest.approx(losses_full[step], rel=1e-5, abs=1e-6)
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert resumed.contract is not None and resumed.contract.sfreq == 200.0   # the contract travels in the checkpoint


def _config(tmp_path: Path, store: Path) -> Path:
    cfg = yaml.safe_load((REPO / "configs/pretrain/neurorvq-tiny.yaml").read_text())
    cfg["model"]["init_args"]["model_kwargs"] = SMALL
    cfg["data"]["init_args"].update(store=str(store), batch_size=8)
    cfg["trainer"].update(max_steps=3, limit_train_batches=3, default_root_dir=str(tmp_path / "run"),
                          limit_val_batches=1, log_every_n_steps=1, enable_progress_bar=False)
    cfg["trainer"]["logger"][0]["init_args"]["save_dir"] = str(tmp_path / "run")
    cfg["trainer"]["logger"][1]["init_args"]["save_dir"] = str(tmp_path / "run")
    cfg["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(tmp_path / "run" / "checkpoints")
    path = tmp_path / "neurorvq-test.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_pretrain_cli_exports_evaluates_and_interprets(eegmat_store, tmp_path):
    cfg = _config(tmp_path, eegmat_store)
    res = run_cli("pretrain", "--config", str(cfg), "--config", str(REPO / "configs/trainer/cpu.yaml"),
                  "--export", str(tmp_path / "export"))
    assert res.returncode == 0, res.stderr[-3000:]
    export = tmp_path / "export"
    config = json.loads((export / "config.json").read_text())
    assert config["model"] == "neurorvq-tiny" and config["kwargs"]["dim"] == 32
    assert config["contract"]["sfreq"] == 200.0 and config["contract"]["ch_names"][:2] == ["Fp1", "Fp2"]
    metrics = (next((tmp_path / "run" / "csv").rglob("metrics.csv"))).read_text().splitlines()[0]
    for column in ("train/amp_step", "train/phase_step", "train/time_step", "train/vq_step", "val/zmse",
                   "val/r_gamma", "codes/usage_s0_l0", "codes/perplexity_s3_l1"):
        assert column in metrics, column
    assert list((tmp_path / "run" / "tb").rglob("events.out.tfevents*"))

    # the Lightning checkpoint exports to the same weights
    res = run_cli("export", "--checkpoint", str(tmp_path / "run/checkpoints/last.ckpt"), "--out", str(tmp_path / "exp2"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "exp2/model.safetensors").read_bytes() == (export / "model.safetensors").read_bytes()

    res = run_cli("evaluate", "tokenizer", "--checkpoint", str(export), "--store", str(eegmat_store),
                  "--subjects", "01", "02", "--out", str(tmp_path / "eval.json"))
    assert res.returncode == 0, res.stderr[-3000:]
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["subjects"] == ["01", "02"] and ev["n_windows"] == 60
    assert len(ev["points"]) == 2 and "gamma" in ev["points"][-1]["bands"] and len(ev["dct"]) == 2
    # each subject's figure and the interval over subjects, in the JSON and the printed table
    assert sorted(ev["points"][-1]["subjects"]) == ["01", "02"] and ev["dct"][-1]["zmse_ci"]["n"] == 2
    ci = ev["points"][-1]["zmse_ci"]
    assert f"[{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]" in res.stdout and "95% CI (2 subj.)" in res.stdout
    html = (tmp_path / "eval.html").read_text()
    assert "PSD overlay" in html and "Code usage" in html
    # a rate point inside a level (the config trains code prefixes): 5 codes = level 1 + the first scale of level 2
    res = run_cli("evaluate", "tokenizer", "--checkpoint", str(export), "--store", str(eegmat_store),
                  "--subjects", "02", "--codes", "5", "--no-report", "--out", str(tmp_path / "eval5.json"))
    assert res.returncode == 0, res.stderr[-3000:]
    ev5 = json.loads((tmp_path / "eval5.json").read_text())
    assert [p["codes"] for p in ev5["points"]] == [4, 5, 8] and ev5["points"][1]["levels"] == 1.25
    assert "1.25" in res.stdout and not ev5["notes"]
    # the same rates, each encoded by beam search: same code layout, no rate point worse than greedy's
    res = run_cli("evaluate", "tokenizer", "--checkpoint", str(export), "--store", str(eegmat_store),
                  "--subjects", "02", "--codes", "5", "--beam", "4", "--no-report", "--out", str(tmp_path / "beam.json"),
                  "--variable-bits", f"{(ev5['points'][1]['bits_nominal'] + ev5['points'][2]['bits_nominal']) / 2:.1f}")
    assert res.returncode == 0, res.stderr[-3000:]
    beam = json.loads((tmp_path / "beam.json").read_text())
    assert beam["beam"] == 4 and [p["codes"] for p in beam["points"]] == [4, 5, 8]
    assert all(b["zmse"] <= 1.001 * g["zmse"] for b, g in zip(beam["points"], ev5["points"], strict=True))
    # a variable rate between 5 and 8 codes: every token its own count, spent as asked (count information included)
    (var,) = beam["variable"]
    assert 0.97 * var["target_bits"] < var["bits_nominal"] <= var["target_bits"] + 1e-6 and 5 < var["mean_codes"] < 8
    assert var["zmse"] < ev5["points"][1]["zmse"] and "var" in res.stdout
    assert list(var["subjects_mean_codes"]) == ["02"] and var["subjects_mean_codes"]["02"] == pytest.approx(var["mean_codes"])

    res = run_cli("evaluate", "codes", "--checkpoint", str(export), "--store", str(eegmat_store),
                  "--out", str(tmp_path / "codes.json"))
    assert res.returncode == 0, res.stderr[-3000:]
    codes = json.loads((tmp_path / "codes.json").read_text())
    assert codes["conditions"] == ["arithmetic", "rest"] and codes["n_tokens"] == 90 * 19 * 4
    assert "Fisher" in codes["test"]                 # 3 subjects: too few for the paired test, and it says so
    assert (tmp_path / "codes.png").exists()


def test_pretrain_refuses_a_pickle_masquerading_as_a_checkpoint(tmp_path):
    evil = tmp_path / "evil.ckpt"

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": {}, "x": Boom()}, evil)
    res = run_cli("export", "--checkpoint", str(evil), "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    assert "refused to load" in res.stderr and "pwned" not in res.stdout
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_code_enrichment_finds_a_planted_code():
    from neurofm.evaluation.interpret import code_enrichment

    rng = np.random.default_rng(0)
    n = 12000                                       # 12 subjects: the smallest paired p (2^-12) survives BH over 32 codes
    subjects = np.repeat([f"s{i}" for i in range(12)], n // 12)
    labels = np.tile(np.repeat(["rest", "task"], n // 24), 12)
    codes = rng.integers(0, 16, size=(n, 2))
    task = labels == "task"
    codes[task & (rng.random(n) < 0.2), 1] = 7          # code 7 of scale 1 is enriched in "task"
    res = code_enrichment(codes, labels, subjects, 16)
    assert res["test"].startswith("paired Wilcoxon")
    top = res["enriched"]["task"][0]
    assert (top["scale"], top["code"]) == (1, 7) and top["ratio"] > 2 and top["q_value"] < 0.05
    assert all((r["scale"], r["code"]) != (1, 7) for r in res["enriched"]["rest"])


def test_a_model_trained_on_several_stores_knows_every_stores_channels(eegmat_store, tmp_path):
    """Regression: the contract of a model trained on EEGMAT (19 channels) and UCI (61) listed EEGMAT's channels only,
    so evaluating it on UCI said '42 channel(s) unseen in training' about channels it was trained on."""
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess
    from tests.test_uci import _copy

    uci = tmp_path / "uci-store"
    res = preprocess(get_dataset("uci-alcohol", str(_copy(tmp_path / "uci"))), resolve_recipe("eeg-200hz"), uci,
                     report=False, verbose=False)
    assert not res.failed, res.failed
    L.seed_everything(0, verbose=False)
    module = TokenizerModule("neurorvq-tiny", model_kwargs=SMALL, max_chans=8, warmup_steps=1)
    dm = StoreDataModule([str(eegmat_store), str(uci)], batch_size=2, val_subjects=[], test_subjects=[])
    L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_progress_bar=False,
              enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0).fit(module, datamodule=dm)
    names = module.contract.ch_names
    assert names[:2] == ["Fp1", "Fp2"] and {"AF1", "AF2", "FCz"} <= set(names) and len(names) == len(set(names))
    assert module.contract.recipe == "eeg-200hz" and module.contract.band == (0.1, 75.0)
    from neurofm.data.dataset import WindowStore

    uci_names = sorted({ch["name"] for r in WindowStore(uci).recordings for ch in r["channels"]})
    assert module.contract.check(sfreq=200.0, n_times=800, ch_names=uci_names) == []  # nothing "unseen"
