"""Neural decoders: a neurofm encoder + head, or a braindecode model, behind one ``forward(x, mask)``.

Resolution of ``--model NAME`` by the registry entry's ``family``:

- ``neurofm-encoder`` / ``neurofm-tokenizer`` (any module with ``num_features`` and
  ``forward_features(x, *, pos, mask, ch_names) -> (tokens, token_mask)``): built with
  ``create_model(name, ...)``, or from an exported directory (``--init DIR``), plus a head;
- ``braindecode``: built through the braindecode contract (``n_chans``, ``n_outputs``, ``n_times``,
  ``sfreq``) and trained end to end;
- ``classical``: see :mod:`neurofm.decoding.classical` (not a torch module).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from neurofm._errors import ConfigError, ContractError
from neurofm.decoding.heads import create_head

ENCODER_FAMILIES = ("neurofm-encoder", "neurofm-tokenizer")
FAMILIES = (*ENCODER_FAMILIES, "braindecode", "classical")


def model_family(name: str) -> str:
    from neurofm import registry

    entry = registry.get_entry("models", name)
    family = entry.meta.get("family", "")
    if family not in FAMILIES:
        raise ConfigError(f"model '{name}' has family '{family or '(none)'}', which the decoding harness cannot train.",
                          hint=f"use a model of family {', '.join(FAMILIES)} (see `neurofm list models`).")
    return family


def _accepted(fn: Any, candidates: dict[str, Any]) -> dict[str, Any]:
    """The candidates that ``fn`` names explicitly in its signature."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in candidates.items() if k in params}


class EncoderDecoder(nn.Module):
    """``encoder.forward_features`` → head. With ``freeze``, the encoder stays in eval mode without gradients."""

    def __init__(self, encoder: nn.Module, head: nn.Module, ch_names: list[str], pos: torch.Tensor,
                 freeze: bool = False):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.ch_names = list(ch_names)
        self.register_buffer("pos", torch.as_tensor(pos, dtype=torch.float32), persistent=False)
        self.freeze = freeze
        if freeze:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> EncoderDecoder:
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    def features(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        pos = self.pos.unsqueeze(0).expand(b, -1, -1)
        tokens, token_mask = self.encoder.forward_features(x, pos=pos, mask=mask, ch_names=[self.ch_names] * b)
        if token_mask is None:
            token_mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return tokens, token_mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor | None = None,
                token_mask: torch.Tensor | None = None) -> torch.Tensor:
        if tokens is None:
            if self.freeze:
                with torch.no_grad():
                    tokens, token_mask = self.features(x, mask)
            else:
                tokens, token_mask = self.features(x, mask)
        return self.head(tokens, token_mask)

    def param_groups(self) -> list[list[nn.Parameter]]:
        """Encoder parameters grouped input → output (``layer_groups()`` if the encoder has it)."""
        if self.freeze:
            return []
        groups = [list(g) for g in self.encoder.layer_groups()] if hasattr(self.encoder, "layer_groups") else []
        seen = {id(p) for g in groups for p in g}
        rest = [p for p in self.encoder.parameters() if id(p) not in seen]
        if rest:  # parameters the encoder did not group go with the input-most group
            groups = [rest + (groups[0] if groups else [])] + groups[1:]
        return [g for g in groups if g]


class BraindecodeDecoder(nn.Module):
    """A braindecode model trained end to end. ``repeat`` > 1 copies a lone channel (see ``build_braindecode``)."""

    def __init__(self, model: nn.Module, ch_names: list[str], repeat: int = 1, pass_ch_names: bool = False):
        super().__init__()
        self.model = model
        self.ch_names = list(ch_names)
        self.repeat = repeat
        self.pass_ch_names = pass_ch_names

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        if self.repeat > 1:
            x = x.repeat(1, self.repeat, 1)
        out = self.model(x, ch_names=self.ch_names) if self.pass_ch_names else self.model(x)
        return out.reshape(out.shape[0], -1)

    def param_groups(self) -> list[list[nn.Parameter]]:
        return []


def _braindecode_class(name: str) -> Any:
    import warnings

    from neurofm import registry

    with warnings.catch_warnings():  # braindecode's import-time MNE montage deprecation notices
        warnings.simplefilter("ignore", FutureWarning)
        return registry.get_entry("models", name).resolve()


def build_braindecode(name: str, *, n_chans: int, n_outputs: int, n_times: int, sfreq: float,
                      ch_names: list[str], kwargs: dict[str, Any] | None = None) -> tuple[BraindecodeDecoder, dict, list[str]]:
    """Build through the braindecode contract and check one forward pass. Returns (net, build record, notes)."""

    kwargs = dict(kwargs or {})
    cls = _braindecode_class(name)
    if name.startswith("labram") or getattr(cls, "__name__", "") == "Labram":
        patch = int(kwargs.get("patch_size", 200))
        if n_times % patch:
            raise ContractError(f"model '{name}' cuts windows into {patch}-sample patches, which do not divide "
                                f"{n_times}-sample windows.", hint="pass --model-kwargs '{\"patch_size\": P}' with P "
                                f"dividing {n_times}, or window with a multiple of {patch / sfreq:g} s.")
    pass_ch = "ch_names" in inspect.signature(cls.forward).parameters
    notes: list[str] = []
    errors = []
    for repeat in (1, 2) if n_chans == 1 else (1,):
        try:
            model = cls(n_chans=n_chans * repeat, n_outputs=n_outputs, n_times=n_times, sfreq=sfreq, **kwargs)
            net = BraindecodeDecoder(model, ch_names * repeat, repeat, pass_ch)
            net.eval()
            with torch.no_grad():
                out = net(torch.zeros(2, n_chans, n_times))
            if out.shape != (2, n_outputs):
                raise ContractError(f"output shape {tuple(out.shape)}, expected (2, {n_outputs})")
        except TypeError as err:
            raise ConfigError(f"braindecode model '{name}' rejects its arguments ({err}).",
                              hint="check --model-kwargs against the braindecode documentation.") from None
        except Exception as err:  # braindecode raises assorted errors on unsupported shapes
            errors.append(f"{type(err).__name__}: {err}")
            continue
        if repeat > 1:
            notes.append(f"{name}: braindecode fails on a single channel ({errors[0][:120]}); the lone channel is "
                         "fed twice, which leaves the function class unchanged (two equal rows of one spatial filter).")
        net.train()
        record = dict(model=name, family="braindecode", kwargs=dict(n_chans=n_chans, n_outputs=n_outputs,
                      n_times=n_times, sfreq=sfreq, **kwargs), repeat=repeat, pass_ch_names=pass_ch)
        return net, record, notes
    raise ContractError(f"braindecode model '{name}' cannot take windows of {n_chans} channel(s) × {n_times} samples "
                        f"at {sfreq:g} Hz ({errors[-1][:200]}).",
                        hint="use longer windows or another model; see the model's braindecode documentation.")


def rebuild_braindecode(record: dict[str, Any], ch_names: list[str]) -> BraindecodeDecoder:

    kw = dict(record["kwargs"])
    repeat = int(record.get("repeat", 1))
    kw["n_chans"] = kw["n_chans"] * repeat
    model = _braindecode_class(record["model"])(**kw)
    return BraindecodeDecoder(model, ch_names * repeat, repeat, record.get("pass_ch_names", False))


def build_encoder(name: str, *, init: str | None, n_chans: int, n_times: int, sfreq: float,
                  ch_names: list[str], kwargs: dict[str, Any] | None = None) -> tuple[nn.Module, dict, Any]:
    """A neurofm encoder from scratch (``create_model``) or from an exported directory. Returns (module, record, contract)."""
    from neurofm import registry

    kwargs = dict(kwargs or {})
    if init is not None:
        from neurofm.models._hub import from_pretrained, read_config

        _, cfg = read_config(init)
        if name and cfg.get("model") != name:
            raise ConfigError(f"--init {init} holds model '{cfg.get('model')}', not '{name}'.",
                              hint=f"pass --model {cfg.get('model')} (or leave --model out with --init).")
        try:
            encoder = from_pretrained(init, **kwargs)
        except RuntimeError as err:  # torch's size mismatch: the model's code or defaults changed since export
            first = str(err).strip().splitlines()
            raise ContractError(f"the weights do not fit model '{cfg.get('model')}' as built today "
                                f"({' '.join(first[1:2]).strip()[:200]}...).", source=str(init),
                                hint="re-export the encoder with the current code (neurofm export), or pass the "
                                     "constructor arguments it was trained with via --model-kwargs.") from None
        record = dict(model=cfg["model"], kwargs={**cfg.get("kwargs", {}), **kwargs}, init=str(init),
                      init_sha256=cfg.get("sha256"))
        contract = encoder.contract
    else:
        factory = registry.get_entry("models", name).resolve()
        auto = _accepted(factory, dict(n_chans=n_chans, n_times=n_times, sfreq=sfreq, ch_names=list(ch_names)))
        encoder = factory(**{**auto, **kwargs})
        record = dict(model=name, kwargs={**auto, **kwargs}, init=None)
        contract = None
    resolved = getattr(encoder, "init_config", None)  # the named config as resolved at build time, if recorded
    if isinstance(resolved, dict):  # so the decoder rebuilds exactly even after the named config changes
        record["kwargs"] = {**resolved, **record["kwargs"]}
    for attr in ("forward_features", "num_features"):
        if not hasattr(encoder, attr):
            raise ConfigError(f"model '{record['model']}' has no '{attr}', so it cannot carry a decoding head.",
                              hint="an encoder must expose num_features and forward_features(x, *, pos, mask, ch_names).")
    return encoder, record, contract


def rebuild_encoder(record: dict[str, Any]) -> nn.Module:
    from neurofm import registry

    return registry.create_model(record["model"], **record["kwargs"])


def forward_batch(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A decoder's output for one batch of windows (``x``, ``mask``), or of a frozen encoder's tokens computed
    once (``tokens``, ``token_mask``)."""
    if "tokens" in batch:
        return net(None, None, tokens=batch["tokens"], token_mask=batch["token_mask"])
    return net(batch["x"], batch.get("mask"))


def encoder_decoder(encoder: nn.Module, head: dict[str, Any], n_outputs: int, ch_names: list[str], pos,
                    freeze: bool) -> EncoderDecoder:
    kw = {k: v for k, v in head.items() if k != "kind"}
    return EncoderDecoder(encoder, create_head(head["kind"], int(encoder.num_features), n_outputs,
                                               n_chans=len(ch_names), **kw),
                          ch_names, torch.as_tensor(pos), freeze=freeze)
