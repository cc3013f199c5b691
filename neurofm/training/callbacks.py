"""Training callbacks for checking distributed runs.

``SaveCodebooks`` writes every rank's codebooks (and, with ``weights=True``, its full state dict) at the end
of training to ``DIR/rank<R>.npz``, so a multi-node run can be checked for codebooks that stayed identical
across ranks (vector-quantize-pytorch syncs them only if told so; see the guide) and a resumed run compared
with an uninterrupted one::

    neurofm pretrain ... --trainer.callbacks+=neurofm.training.callbacks.SaveCodebooks \\
        --trainer.callbacks.dirpath runs/x/codebooks
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import lightning as L
import numpy as np
import torch


class SaveCodebooks(L.Callback):
    """At the end of ``fit``, every rank writes ``dirpath/rank<R>.npz`` (codebooks ``book<i>``, ``w:<name>``)."""

    def __init__(self, dirpath: str, weights: bool = True):
        self.dirpath, self.weights = Path(dirpath), weights

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        model = getattr(pl_module, "model", pl_module)
        if hasattr(model, "codebooks"):
            books = list(model.codebooks())
        elif hasattr(model, "quantizer"):
            books = [model.quantizer.codebook]
        else:
            books = []
        arrays = {f"book{i}": b.detach().cpu().numpy() for i, b in enumerate(books)}
        if self.weights:
            arrays.update({f"w:{k}": v.detach().cpu().numpy() for k, v in pl_module.state_dict().items()})
        arrays["global_step"] = np.array(trainer.global_step)
        np.savez(self.dirpath / f"rank{trainer.global_rank}.npz", **arrays)


class RequeueOnSignal(L.Callback):
    """SLURM's warning signal (``--signal=SIGUSR1@90``) → checkpoint at the next step boundary, then requeue.

    Lightning's own auto-requeue saves from inside the signal handler, i.e. wherever the main thread happens to
    be (mid optimizer step, before the step counter moves); a job resumed from that checkpoint did not end with
    the weights of an uninterrupted run (found by scripts/slurm/requeue-check.sh). Here the handler only sets a
    flag; after the current batch every rank agrees (max over ranks), Lightning's ``hpc_ckpt_N.ckpt`` is written
    at a clean step, rank 0 runs ``scontrol requeue`` and training stops. ``neurofm pretrain --ckpt_path last``
    resumes from it (see ``NeurofmCLI.before_fit``). Outside SLURM it does nothing.
    """

    def __init__(self, signal_name: str = "SIGUSR1"):
        self.signum = getattr(signal, signal_name)
        self.flag = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if "SLURM_JOB_ID" in os.environ:
            signal.signal(self.signum, self._handler)  # replaces Lightning's handler for this signal

    def _handler(self, signum, frame) -> None:
        self.flag = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if "SLURM_JOB_ID" not in os.environ:
            return
        flag = torch.tensor(float(self.flag))
        if trainer.world_size > 1:
            flag = trainer.strategy.reduce(flag, reduce_op="max")
        if float(flag) <= 0:
            return
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            job = os.environ.get("SLURM_ARRAY_JOB_ID")
            job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ["SLURM_JOB_ID"]
            print(f"signal received: checkpoint {path} at step {trainer.global_step}; requeueing job {job}", flush=True)
            subprocess.call(["scontrol", "requeue", job])
        trainer.should_stop = True
        self.flag = False


def compare(paths: list[str | Path]) -> dict[str, float]:
    """Max absolute difference of codebooks (``books``) and weights (``weights``) between rank files."""
    files = [np.load(p) for p in paths]
    out = {"books": 0.0, "weights": 0.0, "n_books": 0, "steps": [int(f["global_step"]) for f in files]}
    ref = files[0]
    for f in files[1:]:
        for k in ref.files:
            if k == "global_step" or k not in f.files:
                continue
            key = "books" if k.startswith("book") else "weights"
            out[key] = max(out[key], float(np.max(np.abs(ref[k].astype(np.float64) - f[k]))) if ref[k].size else 0.0)
    out["n_books"] = sum(k.startswith("book") for k in ref.files)
    return out


if __name__ == "__main__":  # python -m neurofm.training.callbacks A.npz B.npz ...
    import json
    import sys

    print(json.dumps(compare(sys.argv[1:])))
