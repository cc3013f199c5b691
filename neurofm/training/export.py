"""Turn a Lightning checkpoint into an exported safetensors model, loading it without running pickled code."""

from __future__ import annotations

import os
from pathlib import Path

from neurofm._errors import StoreError


def unpickling_reason(err: Exception) -> str:
    """The informative line of torch's weights-only refusal (e.g. 'Unsupported global: GLOBAL builtins.print'),
    without terminal escape codes."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(err).splitlines()]
    lines = [ln for ln in lines if ln]
    best = next((ln for ln in lines if "Unsupported global" in ln or "WeightsUnpickler error" in ln), None)
    text = best or (lines[0] if lines else type(err).__name__)
    return text.split(" Please use `torch.serialization", 1)[0][:200]


def load_checkpoint(path: str | os.PathLike) -> dict:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary objects."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise StoreError("checkpoint not found.", source=path, hint="pass a .ckpt written by `neurofm pretrain`.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = unpickling_reason(err)
        raise StoreError(f"refused to load: the checkpoint holds objects other than tensors and plain data ({first}).",
                         source=path, hint="only checkpoints written by neurofm are accepted; never load untrusted "
                                           "pickles. Export weights with safetensors.") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise StoreError(f"cannot read the checkpoint ({str(err).splitlines()[0][:200]}).", source=path,
                         hint="the file is truncated or not a torch checkpoint; use another checkpoint (e.g. last.ckpt).") from None


def export_checkpoint(ckpt: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Build the registered model from the checkpoint's neurofm record and save it with its contract."""
    from neurofm.models._contract import SignalContract
    from neurofm.models._hub import save_pretrained
    from neurofm.registry import create_model

    state = load_checkpoint(ckpt)
    info = state.get("neurofm")
    if not info or not info.get("contract"):
        raise StoreError("the checkpoint has no neurofm model record/contract.", source=ckpt,
                         hint="export checkpoints written by `neurofm pretrain` (a neurofm LightningModule).")
    model = create_model(info["model"], **info.get("model_kwargs", {}))
    weights = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=True)
    return save_pretrained(model, out, name=info["model"], kwargs=info.get("model_kwargs", {}),
                           contract=SignalContract.from_dict(info["contract"]))
