"""Callbacks that the reliability tests put into `neurofm pretrain` configs (by class path)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L


class RecordBatches(L.Callback):
    """Appends ``{"step", "epoch", "index"}`` of every training batch to a JSON-lines file."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        with open(self.path, "a") as fid:
            fid.write(json.dumps(dict(step=trainer.global_step, epoch=trainer.current_epoch,
                                      index=batch["index"].tolist())) + "\n")


class HangAtStep(L.Callback):
    """Before the batch of global step ``step`` (so after the checkpoints of the steps before it are written),
    write ``marker`` and hang: the test kills the process with SIGKILL while it waits."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, Path(marker)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.marker.write_text(str(self.step))
            time.sleep(600)


class StopAtStep(L.Callback):
    """Stops training cleanly once global step ``step`` is done (after its checkpoint), like a job cut short,
    without changing ``max_steps`` (so the LR schedule of the resumed run is the uninterrupted one)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.should_stop = True
