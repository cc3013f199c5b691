"""``neurofm pretrain``: LightningCLI over any neurofm LightningModule and a store DataModule.

Usage::

    neurofm pretrain --config configs/pretrain/neurorvq-tiny.yaml --config configs/trainer/cpu.yaml \
        --data.init_args.store out/eegmat-store [--ckpt_path last] [--export DIR]

The first argument may be a LightningCLI subcommand (fit/validate/test); without one, ``fit`` runs.
Hardware lives only in ``configs/trainer/*.yaml`` overlays; SLURM and torchrun are detected by Lightning.
"""

from __future__ import annotations

import pickle
import re
import sys
import warnings
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from neurofm._errors import ConfigError, StoreError, suggest

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class NeurofmCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--export", type=str | None, default=None,
                            help="after fit, write safetensors weights + contract to this directory "
                                 "(default: <log_dir>/export)")

    def before_fit(self) -> None:
        """``--ckpt_path last`` on SLURM also considers the checkpoint Lightning saved on SIGUSR1 (auto-requeue).

        Lightning resumes from its ``hpc_ckpt_N.ckpt`` only when no ckpt_path is given; with ``last`` it would
        take the ModelCheckpoint's last.ckpt and silently lose the steps since then (found by running
        scripts/slurm/pretrain.sbatch with a SIGUSR1 requeue). The newer of the two is used.
        """
        cfg = self.config_init.get(self.subcommand, self.config_init)
        if cfg.get("ckpt_path") != "last":
            return
        from lightning.fabric.plugins.environments import SLURMEnvironment

        hpc = self.trainer._checkpoint_connector._hpc_resume_path
        if not (SLURMEnvironment.detect() and hpc):
            return
        last = [getattr(cb, "last_model_path", "") or "" for cb in self.trainer.checkpoint_callbacks]
        last += [str(Path(cb.dirpath) / "last.ckpt") for cb in self.trainer.checkpoint_callbacks
                 if getattr(cb, "dirpath", None)]
        newest = max((p for p in last if p and Path(p).is_file()), key=lambda p: Path(p).stat().st_mtime, default=None)
        if newest is None or Path(hpc).stat().st_mtime >= Path(newest).stat().st_mtime:
            cfg["ckpt_path"] = hpc
            print(f"resuming from the requeue checkpoint {hpc}", file=sys.stderr)

    def after_fit(self) -> None:
        cfg = self.config.get(self.subcommand, self.config)
        # trainer.log_dir is a collective under DDP (rank 0 broadcasts it): every rank must ask, before the
        # non-zero ranks leave (found by the two-node torchrun run: rank 0 died on a closed connection).
        target = cfg.get("export") or (Path(self.trainer.log_dir or ".") / "export")
        if not self.trainer.is_global_zero:
            return
        if hasattr(self.model, "export"):
            self.model.export(target)
            print(f"exported weights and contract to {target}")


def _config_error(message: str, argv: list[str]) -> ConfigError:
    """One line naming the config file(s) and the offending key, with the nearest valid key where one is close."""
    configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    source = ", ".join(configs) or "command line"
    key, choices = None, []
    if m := re.search(r"does not accept option '([^']+)'", message):
        key = m.group(1)
        section = key.split(".", 1)[0]
        if section == "trainer":
            import inspect

            import lightning as L

            choices = [f"trainer.{k}" for k in inspect.signature(L.Trainer.__init__).parameters if k != "self"]
    elif m := re.search(r"Option '([^']+)' is not accepted", message):
        key = m.group(1)
        cls = re.search(r"class_path '([\w.]+)'", message)
        if cls:
            import importlib
            import inspect

            module, _, name = cls.group(1).rpartition(".")
            try:
                target = getattr(importlib.import_module(module), name)
                choices = [k for k in inspect.signature(target.__init__).parameters if k not in ("self", "args", "kwargs")]
            except (ImportError, AttributeError, ValueError, TypeError):
                choices = []
        section = re.search(r'Parser key "([\w.]+)"', message)
        key = f"{section.group(1)}.init_args.{key}" if section else key
    if key is not None:
        nearest = suggest(key.rsplit(".", 1)[-1], [c.rsplit(".", 1)[-1] for c in choices]) if choices else ""
        return ConfigError(f"unknown key '{key}'.{nearest}", source=source,
                           hint="fix the key in the YAML (see `neurofm pretrain --help` for the valid ones).")
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    return ConfigError(f"invalid config ({'; '.join(lines[:4])[:400]}).", source=source,
                       hint="fix the YAML or the command-line value (see `neurofm pretrain --help`).")


def _raised_by_torch_load(err: BaseException) -> bool:
    """True if ``err`` comes out of torch.load (reading a --ckpt_path), not from elsewhere in training."""
    import traceback

    return any(f.filename.replace("\\", "/").endswith("torch/serialization.py")
               for f in traceback.extract_tb(err.__traceback__))


def main(argv: list[str] | None = None) -> int:
    import lightning as L
    from jsonargparse import ArgumentError

    from neurofm._resources import resolve_config

    argv = list(sys.argv[1:] if argv is None else argv)
    # `--config configs/pretrain/X.yaml` also resolves to the copy shipped in the package (any working directory).
    argv = [resolve_config(a) if i and argv[i - 1] == "--config" else a for i, a in enumerate(argv)]
    if not argv or argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["fit", *argv]
    # Parse errors become one ConfigError line (the CLI prints it, exit 2) instead of the full usage dump.
    quiet = {"exit_on_error": False, **{name: {"exit_on_error": False} for name in SUBCOMMANDS}}
    # argv is `neurofm pretrain ...` rewritten for LightningCLI on purpose: its warning about it is noise.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    if argv[0] in SUBCOMMANDS and not any(a.startswith("--weights_only") for a in argv) \
            and not any(a in ("-h", "--help") for a in argv):
        argv += ["--weights_only", "true"]  # --ckpt_path: tensors and plain data only, whatever torch's default
    try:
        NeurofmCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                   args=argv, save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False,
                   parser_kwargs=quiet)
    except ArgumentError as err:
        raise _config_error(str(err), argv) from None
    except pickle.UnpicklingError as err:
        ckpt = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--ckpt_path"), None)
        from neurofm.training.export import unpickling_reason

        first = unpickling_reason(err)
        raise StoreError(f"refused to load: the checkpoint holds objects other than tensors and plain data ({first}).",
                         source=ckpt, hint="resume only from checkpoints written by `neurofm pretrain`; never load "
                                           "untrusted pickles.") from None
    except (RuntimeError, OSError, EOFError) as err:
        if not _raised_by_torch_load(err):
            raise
        ckpt = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--ckpt_path"), None)
        raise StoreError(f"cannot read the checkpoint ({str(err).strip().splitlines()[0][:200]}); it is truncated or "
                         "not a torch checkpoint.", source=ckpt,
                         hint="resume from an earlier checkpoint of the run (--ckpt_path CHECKPOINT_DIR/<name>.ckpt).") from None
    return 0
