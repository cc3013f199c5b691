"""Run by tests/training/test_ddp.py: a few steps of 2-process CPU DDP (gloo) on a real store.

Each rank writes its codebooks to OUT/rank<R>.npz at the end. ``--no-sync`` builds the model the
naive way (sync decided at construction, before DDP starts) to show that the test would catch it;
``--fail-rank R`` makes rank R raise mid-run, which must end the job with an error, not a hang.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.strategies import DDPStrategy

from neurofm.data.datamodule import StoreDataModule
from neurofm.training.tokenizer import TokenizerModule

SMALL = dict(dim=32, depth=1, decoder_depth=1, heads=2, codebook_size=16, code_dim=8)


class NaiveModule(TokenizerModule):
    def configure_model(self) -> None:  # the bug the guide warns about: keep the construction-time choice
        return None


class Failing(L.Callback):
    def __init__(self, rank: int):
        self.rank = rank

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_rank == self.rank and batch_idx == 1:
            raise RuntimeError(f"simulated failure on rank {self.rank}")


class DumpCodebooks(L.Callback):
    def __init__(self, out: Path):
        self.out = out

    def on_train_end(self, trainer, module):
        self.out.mkdir(parents=True, exist_ok=True)
        model = module.model
        if hasattr(model, "codebooks"):
            codebooks, sync = list(model.codebooks()), model.sync_codebook
        else:  # Du-IN: one quantizer, synced through set_sync_codebook
            codebooks, sync = [model.quantizer.codebook], model.quantizer.sync_codebook
        books = {f"book{i}": b.detach().cpu().numpy() for i, b in enumerate(codebooks)}
        np.savez(self.out / f"rank{trainer.global_rank}.npz", sync=np.array(bool(sync)), **books)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("out")
    ap.add_argument("--models", default="neurorvq-tiny", help="comma-separated; trained one after the other")
    ap.add_argument("--no-sync", action="store_true")
    ap.add_argument("--fail-rank", type=int)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=60.0, help="process-group timeout (s): a dead peer ends the run")
    args = ap.parse_args()
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    for name in args.models.split(","):
        if name.startswith("duin"):  # Du-IN VQ-VAE on the EEG store: 1-s patches, one input layer per subject
            from neurofm.training.duin import DuINVQVAEModule

            kw = dict(sfreq=200.0, patch_s=1.0, n_times=800, fusion="subject", dim=32, depth=1, heads=2,
                      codebook_size=16, code_dim=8, decoder_depth=1)
            module = DuINVQVAEModule(name, model_kwargs=kw, warmup_steps=1)
        else:
            kw = dict(SMALL, n_levels=2) if name.startswith("neurorvq") else dict(SMALL)
            cls = NaiveModule if args.no_sync else TokenizerModule
            module = cls(name, model_kwargs=kw, max_chans=19, warmup_steps=1)
        dm = StoreDataModule(args.store, batch_size=4, val_subjects=[], test_subjects=[])
        callbacks = [DumpCodebooks(Path(args.out) / name)]
        if args.fail_rank is not None:
            callbacks.append(Failing(args.fail_rank))
        trainer = L.Trainer(accelerator="cpu", devices=2, strategy=DDPStrategy(process_group_backend="gloo",
                                                                                timeout=timedelta(seconds=args.timeout)),
                            max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0, callbacks=callbacks)
        trainer.fit(module, datamodule=dm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
