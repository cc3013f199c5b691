"""LightningModule: masked-token pretraining of an LBM on a frozen, exported tokenizer's codes."""

from __future__ import annotations

from typing import Any

import torch

from neurofm._errors import ConfigError, ContractError
from neurofm.models.lbm import band_bins, patch_log_band_power
from neurofm.models.tokenizers.base import channel_mask
from neurofm.training.module import NeurofmModule
from neurofm.training.tokenizer import crop_channels

# δ, θ, α, low and high β, γ, high γ (Hz): the bands classical EEG decoders read
DEFAULT_BANDS = ((1, 4), (4, 8), (8, 13), (13, 20), (20, 30), (30, 45), (45, 70))


class LBMModule(NeurofmModule):
    """Pretrain the registered LBM ``model`` to predict the codes of ``tokenizer`` at masked tokens.

    Parameters
    ----------
    tokenizer : str
        Exported tokenizer directory (``neurofm pretrain ... --export DIR``); loaded from safetensors,
        sha256-checked, frozen.
    mask_ratio : float
        Fraction of valid tokens masked per pass.
    symmetric : bool
        Also run the complementary mask (LaBraM's symmetric masking).
    max_chans : int
        Channels kept per training window.

    band_weight : float
        Weight of a second target (0, the default, turns it off): each masked token's log band powers in
        ``bands`` (Hz; :func:`neurofm.models.lbm.patch_log_band_power`), regressed by a band head. It asks
        the encoder to keep per-channel spectral power, what classical EEG decoders read, besides the codes.

    ``model_kwargs={"target_levels": k}`` predicts the first ``k`` levels of every scale instead of all of them.
    """

    def __init__(self, model: str, tokenizer: str, model_kwargs: dict[str, Any] | None = None, mask_ratio: float = 0.5,
                 symmetric: bool = True, max_chans: int = 32, lr: float = 1e-3, weight_decay: float = 0.05,
                 warmup_steps: int = 100, min_lr_ratio: float = 0.05, band_weight: float = 0.0,
                 bands: list[tuple[float, float]] | None = None):
        from neurofm.models._hub import from_pretrained

        tok = from_pretrained(tokenizer)
        layout = dict(n_scales=tok.n_scales, n_levels=tok.n_levels, codebook_size=tok.codebook_size,
                      patch_size=tok.patch_size)
        given = dict(model_kwargs or {})
        clash = {k: (given[k], v) for k, v in layout.items() if k in given and given[k] != v}
        if clash:
            raise ContractError(f"model_kwargs {clash} (given, tokenizer) disagree with the tokenizer's code layout.",
                                source=tokenizer, hint="drop these keys: they are taken from the tokenizer.")
        target = given.get("target_levels")
        if target is not None and not (isinstance(target, int) and 1 <= target <= tok.n_levels):
            raise ConfigError(f"model_kwargs target_levels={target!r}: the tokenizer has {tok.n_levels} levels.",
                              source=tokenizer, hint=f"pass an integer between 1 and {tok.n_levels}, or drop the key "
                                                     "to predict every level.")
        if band_weight < 0:
            raise ConfigError(f"band_weight={band_weight} must be >= 0", source=model, hint="pass 0 to turn it off")
        bands = [tuple(map(float, b)) for b in (bands or DEFAULT_BANDS)]
        if any(not 0 <= lo < hi for lo, hi in bands):
            raise ConfigError(f"bands={bands}: each band must be [low, high) Hz with 0 <= low < high", source=model,
                              hint="e.g. [[1, 4], [4, 8], [8, 13]]")
        if band_weight > 0:
            given["n_band_targets"] = len(bands)
        super().__init__(model=model, model_kwargs={**given, **layout}, lr=lr, weight_decay=weight_decay,
                         warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)
        self.save_hyperparameters()
        self.hparams.model_kwargs = {**given, **layout}   # what the model was built with (checkpoint record, export)
        self.hparams.bands = bands                         # as float (low, high) pairs, whatever the config gave
        self.tokenizer = tok.requires_grad_(False).eval()
        self.tokenizer_contract = tok.contract

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # frozen: its codebooks must never update
        return self

    def contract_overrides(self) -> dict[str, Any]:
        c = self.tokenizer_contract
        return dict(normalization=c.normalization, positions_required=c.positions_required,
                    extra=dict(tokenizer=str(self.hparams.tokenizer)))

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.contract is not None:
            self.tokenizer_contract.check(sfreq=self.contract.sfreq, n_times=self.contract.n_times,
                                          units=self.contract.units, source=str(self.hparams.tokenizer))
            if self.hparams.band_weight > 0:  # every band must hold a frequency bin of a patch at this rate
                fs, n = float(self.contract.sfreq), self.model.patch_size
                bands = self.hparams.bands
                empty = [b for b, sel in zip(bands, band_bins(n, fs, bands), strict=True) if not sel.any()]
                if empty:
                    raise ConfigError(f"bands {empty} hold no frequency bin of a {n}-sample patch at {fs:g} Hz "
                                      f"(bins every {fs / n:g} Hz up to {fs / 2:g} Hz).", source=str(self.hparams.tokenizer),
                                      hint=f"give bands between 0 and {fs / 2:g} Hz, each at least {fs / n:g} Hz wide")

    def _step(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        x, pos, mask, names = batch["x"], batch["pos"], batch["mask"], batch["ch_names"]
        with torch.no_grad():
            codes = self.tokenizer.encode(x, pos=pos, mask=mask, ch_names=names)["codes"]
        codes = codes.flatten(1, 2)                                      # (B, C·P, S, L)
        b, n = codes.shape[:2]
        valid = (codes[..., 0, 0] >= 0)
        masked = (torch.rand(b, n, device=x.device) < self.hparams.mask_ratio) & valid
        passes = [masked, valid & ~masked] if self.hparams.symmetric else [masked]
        loss, acc, band_loss = 0.0, 0.0, 0.0
        tokens = self.model.tokens(x, pos=pos, mask=mask, ch_names=names)  # patches embedded once for both masks
        w = self.hparams.band_weight
        if w > 0:
            sfreq = self.contract.sfreq if self.contract is not None else None
            if sfreq is None:
                raise ContractError("band_weight > 0 needs the data's sampling rate: the module has not seen a store.",
                                    source=str(self.hparams.tokenizer), hint="train it with a store data module")
            target = patch_log_band_power(x, channel_mask(mask, *x.shape[:2], x.device), self.model.patch_size,
                                          sfreq, self.hparams.bands)
        for m in passes:
            h, _ = self.model(x, pos=pos, mask=mask, ch_names=names, token_mask=m, tokens=tokens)
            l_, a_ = self.model.masked_code_loss(h, codes, m)
            loss, acc = loss + l_ / len(passes), acc + a_ / len(passes)
            if w > 0:
                band_loss = band_loss + self.model.masked_band_loss(h, target, m) / len(passes)
        bs = x.shape[0]
        self.log(f"{split}/mcm_loss", loss, batch_size=bs, prog_bar=split == "train", sync_dist=split != "train")
        if w > 0:
            self.log(f"{split}/band_loss", band_loss, batch_size=bs, prog_bar=split == "train",
                     sync_dist=split != "train")
            loss = loss + w * band_loss
        self.log_dict({f"{split}/acc_l{lvl}": v for lvl, v in enumerate(acc)}, batch_size=bs,
                      sync_dist=split != "train")
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(crop_channels(batch, self.hparams.max_chans), "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.log("val_loss", self._step(batch, "val"), batch_size=batch["x"].shape[0], sync_dist=True)
