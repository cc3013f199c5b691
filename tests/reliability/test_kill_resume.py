"""kill -9 of `neurofm pretrain` mid-epoch, then `--ckpt_path last`: the run ends with the weights of an
uninterrupted one, having trained on exactly the same batches in the same order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import REPO, run_cli

SMALL = dict(dim=32, depth=1, decoder_depth=1, heads=2, codebook_size=16, code_dim=8, n_levels=2)
MAX_STEPS = 10      # train split: 2 subjects × 30 windows = 8 batches of 8 per epoch → epoch 0 and 2 steps of epoch 1
KILL_AT = 4         # killed before the 5th batch of epoch 0, after the step-4 checkpoint is written


def _config(tmp: Path, store: Path, name: str, hang: bool = False) -> Path:
    cfg = yaml.safe_load((REPO / "configs/pretrain/neurorvq-tiny.yaml").read_text())
    cfg["model"]["init_args"].update(model_kwargs=SMALL, max_chans=8, warmup_steps=2)
    cfg["data"]["init_args"].update(store=str(store), batch_size=8, val_subjects=["02"], test_subjects=[])
    run = tmp / name
    cfg["trainer"].update(max_steps=MAX_STEPS, max_epochs=None, limit_val_batches=1, logger=False,
                          default_root_dir=str(run), enable_progress_bar=False, enable_model_summary=False,
                          deterministic=True)
    callbacks = [
        dict(class_path="lightning.pytorch.callbacks.ModelCheckpoint",
             init_args=dict(dirpath=str(run / "checkpoints"), every_n_train_steps=1, save_top_k=-1, save_last=True)),
        dict(class_path="tests.reliability._callbacks.RecordBatches", init_args=dict(path=str(run / "batches.jsonl"))),
    ]
    if hang:
        callbacks.append(dict(class_path="tests.reliability._callbacks.HangAtStep",
                              init_args=dict(step=KILL_AT, marker=str(run / "hanging"))))
    cfg["trainer"]["callbacks"] = callbacks
    cfg["export"] = str(run / "export")
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _batches(run: Path) -> dict[int, list[int]]:
    rows = [json.loads(line) for line in (run / "batches.jsonl").read_text().splitlines()]
    return {r["step"]: r["index"] for r in rows}


def test_killed_pretrain_resumes_to_the_uninterrupted_weights(eegmat_store, tmp_path, monkeypatch):
    trainer_cfg = str(REPO / "configs/trainer/cpu.yaml")
    # All three runs on one thread: the killed run was pinned but the reference and the resumed run inherited the
    # environment, so alone (without another conftest setting OMP_NUM_THREADS) they summed in another order.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    env = dict(os.environ, PYTHONPATH=str(REPO))

    # 1. The reference: one uninterrupted run.
    ref = run_cli("pretrain", "--config", str(_config(tmp_path, eegmat_store, "ref")), "--config", trainer_cfg)
    assert ref.returncode == 0, ref.stderr[-3000:]

    # 2. The same run, killed with SIGKILL mid-epoch once the step-KILL_AT checkpoint exists.
    killed = tmp_path / "killed"
    cfg = _config(tmp_path, eegmat_store, "killed", hang=True)
    log = tmp_path / "killed.log"
    with open(log, "w") as err:
        child = subprocess.Popen([sys.executable, "-m", "neurofm.cli", "pretrain", "--config", str(cfg), "--config",
                                  trainer_cfg], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                 start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (killed / "hanging").exists() and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, log.read_text()[-3000:]
    assert (killed / "checkpoints" / "last.ckpt").exists(), "the kill must land after a checkpoint"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (killed / "export").exists()
    before = _batches(killed)
    assert sorted(before) == list(range(KILL_AT + 1))          # steps 0..4 started, 4 never finished

    # 3. Rerun the same command with --ckpt_path last (no hang this time).
    (killed / "batches.jsonl").unlink()
    cfg = _config(tmp_path, eegmat_store, "killed")
    res = run_cli("pretrain", "--config", str(cfg), "--config", trainer_cfg, "--ckpt_path", "last")
    assert res.returncode == 0, res.stderr[-3000:]
    after = _batches(killed)
    assert sorted(after) == list(range(KILL_AT, MAX_STEPS))    # resumed from the last checkpoint, not from 0

    # The resumed run consumed the rest of epoch 0 in the uninterrupted order, then epoch 1 alike: no batch
    # replayed, none skipped.
    full = _batches(tmp_path / "ref")
    assert {**{s: before[s] for s in range(KILL_AT)}, **after} == full
    epoch0 = [i for s in range(8) for i in full[s]]
    assert sorted(epoch0) == sorted(set(epoch0)) and len(epoch0) == 60   # each training window once in epoch 0

    # Same final weights.
    a = load_file(str(tmp_path / "ref" / "export" / "model.safetensors"))
    b = load_file(str(killed / "export" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)


def test_resumable_loader_replays_the_rest_of_the_epoch_only():
    """Unit level: the (epoch, batches) state makes the next pass of that epoch skip what was consumed."""
    from neurofm.data.datamodule import EpochSeededSampler, ResumableLoader

    data = list(range(20))
    state = {"epoch": 1, "batches": 2}
    loader = ResumableLoader(data, batch_size=4, sampler=EpochSeededSampler(data, seed=3), position=lambda: (1, 2))
    loader.sampler.set_epoch(1)
    full = [b.tolist() for b in loader]
    assert loader.state_dict() == state
    loader.load_state_dict(state)
    assert [b.tolist() for b in loader] == full[2:]       # the rest of epoch 1, in its order
    assert [b.tolist() for b in loader] == full           # the skip applies once
    loader.load_state_dict(state)
    loader.sampler.set_epoch(2)                            # a checkpoint of another epoch: no skip
    assert len([b for b in loader]) == 5
    loader.load_state_dict({"epoch": 1, "batches": 5})     # saved at the end of the epoch: nothing to skip
    loader.sampler.set_epoch(1)
    assert [b.tolist() for b in loader] == full
