"""braindecode's model contract for every neurofm encoder: ``(n_chans, n_outputs, n_times, sfreq, chs_info)``.

``create_model("neurorvq-tiny", n_chans=19, n_outputs=2, n_times=800, sfreq=200., chs_info=info["chs"])`` gives
a plain ``torch.nn.Module`` whose ``forward(X)`` maps (B, C, T) to logits (B, n_outputs): the encoder's tokens
(``forward_features``) go through a head; channel names and positions come from ``chs_info`` and every channel
is present (mask all true). So ``braindecode.EEGClassifier(module=...)`` / skorch train it with no adapter.
:func:`from_pretrained` does the same around exported weights, checking the signal contract first.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from neurofm._errors import ConfigError, ContractError

CONTRACT_KEYS = ("n_chans", "n_outputs", "n_times", "sfreq", "chs_info")


def channels_from_info(chs_info: list[dict] | None, n_chans: int | None) -> tuple[list[str], np.ndarray]:
    """Channel names and (C, 3) positions in metres (NaN where unknown) from braindecode/MNE ``chs_info``."""
    if chs_info is None:
        if n_chans is None:
            raise ConfigError("neither chs_info nor n_chans given.",
                              hint="pass chs_info=epochs.info['chs'] (names and positions) or at least n_chans.")
        return [f"ch{k}" for k in range(n_chans)], np.full((n_chans, 3), np.nan, dtype=np.float32)
    names = [str(ch.get("ch_name", f"ch{k}")) for k, ch in enumerate(chs_info)]
    pos = np.full((len(names), 3), np.nan, dtype=np.float32)
    for k, ch in enumerate(chs_info):
        loc = ch.get("loc")
        if loc is not None:
            xyz = np.asarray(loc[:3], dtype=np.float64)
            if np.all(np.isfinite(xyz)) and np.any(xyz):
                pos[k] = xyz
    if n_chans is not None and n_chans != len(names):
        raise ConfigError(f"n_chans={n_chans} but chs_info describes {len(names)} channels.",
                          hint="pass n_chans=len(chs_info) (or leave it out).")
    return names, pos


class EncoderClassifier(nn.Module):
    """A neurofm encoder plus a head, with braindecode's ``forward(X) -> logits`` signature.

    Parameters
    ----------
    encoder : nn.Module
        Has ``num_features`` and ``forward_features(x, *, pos, mask, ch_names)``.
    n_outputs : int
        Classes (or regression outputs).
    chs_info : list of dict | None
        MNE channel records (``info["chs"]``): names and positions of the input channels.
    n_chans, n_times, sfreq : int, int, float
        braindecode's signal description (checked against ``X`` at run time).
    head : str
        ``linear``, ``mlp``, ``attention`` or ``channels`` (see :mod:`neurofm.decoding.heads`).
    """

    def __init__(self, encoder: nn.Module, *, n_outputs: int, chs_info: list[dict] | None = None,
                 n_chans: int | None = None, n_times: int | None = None, sfreq: float | None = None,
                 head: str = "linear", **head_kwargs: Any):
        super().__init__()
        from neurofm.decoding.heads import create_head

        names, pos = channels_from_info(chs_info, n_chans)
        self.encoder = encoder
        self.head = create_head(head, int(encoder.num_features), int(n_outputs), n_chans=len(names), **head_kwargs)
        self.ch_names = names
        self.n_chans, self.n_outputs, self.n_times, self.sfreq = len(names), int(n_outputs), n_times, sfreq
        self.register_buffer("pos", torch.from_numpy(pos), persistent=False)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, _ = x.shape
        if c != self.n_chans:
            raise ContractError(f"input has {c} channels, the model was built for {self.n_chans} ({self.ch_names[:4]}...).",
                                hint="build the model with the chs_info of the data you feed it.")
        mask = torch.ones(b, c, dtype=torch.bool, device=x.device)
        pos = self.pos.to(x.device).unsqueeze(0).expand(b, -1, -1)
        tokens, token_mask = self.encoder.forward_features(x.float(), pos=pos, mask=mask, ch_names=[self.ch_names] * b)
        if token_mask is None:
            token_mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return tokens, token_mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, token_mask = self.forward_features(x)
        return self.head(tokens, token_mask)


class NamedChannels(nn.Module):
    """A neurofm model that already ends in a head (Du-IN classifier): feeds it ``chs_info``'s channel names."""

    def __init__(self, model: nn.Module, *, chs_info: list[dict] | None = None, n_chans: int | None = None):
        super().__init__()
        self.model = model
        self.ch_names, _ = channels_from_info(chs_info, n_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.float(), ch_names=[self.ch_names] * x.shape[0])

    def __getattr__(self, name: str):
        """The wrapped model's attributes (``patch_size``, ``layer_groups``, ``encoder``, ...) stay reachable."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)


def build(factory: Any, *, n_outputs: int, n_chans: int | None = None, n_times: int | None = None,
          sfreq: float | None = None, chs_info: list[dict] | None = None, head: str = "linear",
          head_kwargs: dict | None = None, **kwargs: Any) -> nn.Module:
    """A neurofm model from ``factory`` under braindecode's contract (see the module docstring)."""
    names, _ = channels_from_info(chs_info, n_chans)
    params = inspect.signature(factory).parameters
    signal = dict(n_chans=len(names), n_times=n_times, sfreq=sfreq, ch_names=names)
    auto = {k: v for k, v in signal.items() if k in params and v is not None}
    if "n_outputs" in params:  # the model carries its own head (Du-IN classifier)
        return NamedChannels(factory(**auto, n_outputs=n_outputs, **kwargs), chs_info=chs_info, n_chans=n_chans)
    encoder = factory(**auto, **kwargs)
    if not hasattr(encoder, "forward_features"):
        raise ConfigError(f"{getattr(factory, '__name__', factory)} has no forward_features, so it cannot carry a head.",
                          hint="an encoder must expose num_features and forward_features(x, *, pos, mask, ch_names).")
    return EncoderClassifier(encoder, n_outputs=n_outputs, chs_info=chs_info, n_chans=n_chans, n_times=n_times,
                             sfreq=sfreq, head=head, **(head_kwargs or {}))


def from_pretrained(name_or_dir: str | os.PathLike, *, n_outputs: int, chs_info: list[dict] | None = None,
                    sfreq: float, n_times: int | None = None, n_chans: int | None = None, units: str | None = None,
                    head: str = "linear", head_kwargs: dict | None = None) -> nn.Module:
    """Exported (or shipped) weights under braindecode's contract, with a fresh head of ``n_outputs``.

    ``name_or_dir`` is an exported directory or the name of a shipped model (``neurofm/weights/<name>``).
    The data's ``sfreq``/``n_times``/channel names/units are checked against the weights' signal contract
    first (:class:`~neurofm._errors.ContractError` with a hint on mismatch).
    """
    from neurofm.models._hub import from_pretrained as load
    from neurofm.models._pretrained import resolve

    path = resolve(name_or_dir)
    encoder = load(path)
    names, _ = channels_from_info(chs_info, n_chans)
    has_pos = chs_info is not None and any(np.any(np.asarray(ch.get("loc", [0])[:3])) for ch in chs_info)
    encoder.contract.check(sfreq=sfreq, n_times=n_times, ch_names=names if chs_info is not None else None,
                           units=units, has_positions=has_pos, source=str(path))
    encoder.train()
    if not hasattr(encoder, "forward_features") or hasattr(encoder, "reset_classifier"):
        if hasattr(encoder, "reset_classifier"):
            encoder.reset_classifier(n_outputs)
            return NamedChannels(encoder, chs_info=chs_info, n_chans=n_chans)
    model = EncoderClassifier(encoder, n_outputs=n_outputs, chs_info=chs_info, n_chans=n_chans, n_times=n_times,
                              sfreq=sfreq, head=head, **(head_kwargs or {}))
    model.contract = encoder.contract
    return model
