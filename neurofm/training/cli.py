"""``neurofm pretrain``: LightningCLI over any neurofm LightningModule and a store DataModule.

Usage::

    neurofm pretrain --config configs/pretrain/neurorvq-tiny.yaml --config configs/trainer/cpu.yaml \
        --data.init_args.store out/eegmat-store [--ckpt_path last] [--export DIR]

The first argument may be a LightningCLI subcommand (fit/validate/test); without one, ``fit`` runs.
Hardware lives only in ``configs/trainer/*.yaml`` overlays; SLURM and torchrun are detected by Lightning.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class NeurofmCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--export", type=str | None, default=None,
                            help="after fit, write safetensors weights + contract to this directory "
                                 "(default: <log_dir>/export)")

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero:
            return
        cfg = self.config.get(self.subcommand, self.config)
        target = cfg.get("export") or (Path(self.trainer.log_dir or ".") / "export")
        if hasattr(self.model, "export"):
            self.model.export(target)
            print(f"exported weights and contract to {target}")


def main(argv: list[str] | None = None) -> int:
    import lightning as L

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["fit", *argv]
    NeurofmCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
               args=argv, save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False)
    return 0
