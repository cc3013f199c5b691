"""Subject-adaptive normalisation of neural decoders (AdaBN), at training and at test time.

Cross-subject decoders lose most to subject-to-subject shift (per-subject standardisation lifts band power +
LR far more than any added capacity). This module gives a neural network the same per-subject treatment,
with torch's own BatchNorm layers:

- ``adabn`` (Li et al. 2016, "Revisiting batch normalization for practical domain adaptation"): every
  training batch holds windows of **one** subject (or recording), so each BatchNorm layer normalises with that
  subject's statistics; at validation and test time the BatchNorm statistics are recomputed from the new
  subject's own unlabelled windows before predicting (no labels used);
- ``adabn-features``: ``adabn`` plus a BatchNorm without affine parameters on the features that enter the
  model's classifier (braindecode's ``final_layer``; for a neurofm encoder, the pooled tokens entering the
  head's LayerNorm): a per-subject standardisation of the pooled features, the neural counterpart of
  per-subject standardised band powers. With a frozen encoder (linear probe) only the head's normalisation
  adapts; the encoder keeps its own statistics.

The grouping unit is the decoder's ``align`` unit (``subject`` or ``recording``), recorded in the decoder with
the mode, so ``neurofm evaluate decoder`` adapts to each new subject from its own windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from neurofm._errors import ConfigError
from neurofm.decoding.nets import forward_batch

MODES = ("none", "adabn", "adabn-features")
#: decoder families built as neurofm encoder + token head (:class:`neurofm.decoding.nets.EncoderDecoder`)
ENCODER_FAMILIES = ("neurofm-encoder", "neurofm-tokenizer")
#: fewest windows of one group that give usable BatchNorm statistics
MIN_WINDOWS = 2


def check_mode(adapt: str | None, *, align: str, family: str, freeze: bool = False) -> str:
    """Validate ``adapt`` against the run's alignment unit and model family; returns the mode."""
    adapt = adapt or "none"
    if adapt not in MODES:
        raise ConfigError(f"unknown subject adaptation '{adapt}'.", hint=f"use one of {', '.join(MODES)}.")
    if adapt == "none":
        return adapt
    if family == "classical":
        raise ConfigError(f"--adapt {adapt} applies to neural models; classical models adapt through --align "
                          "(per-subject standardisation / re-centering).", hint="leave --adapt out for this model.")
    if align == "none":
        raise ConfigError(f"--adapt {adapt} normalises each subject (or recording) with its own statistics, but no "
                          "grouping unit is set.", hint="pass --align subject (or --align recording) with --adapt.")
    if adapt == "adabn-features" and family not in ("braindecode", *ENCODER_FAMILIES):
        raise ConfigError(f"--adapt adabn-features standardises the features entering a decoder's classifier; "
                          f"a {family} model has none.",
                          hint="use --adapt adabn, or a braindecode model / neurofm encoder.")
    if freeze and adapt != "adabn-features":
        raise ConfigError(f"--adapt {adapt} changes BatchNorm statistics, which a frozen encoder keeps fixed.",
                          hint="use --adapt adabn-features (it standardises the head's pooled features per subject), "
                               "or leave --freeze out.")
    return adapt


def _spd_batchnorm_classes() -> tuple[type, ...]:
    """spd-learn's SPD batch normalisation layers (re-centring on the batch's Fréchet mean), if installed."""
    try:
        from spd_learn.modules import SPDBatchNormMean, SPDBatchNormMeanVar
    except ImportError:  # pragma: no cover - a dependency of the project
        return ()
    return SPDBatchNormMean, SPDBatchNormMeanVar


def batchnorms(net: nn.Module) -> list[nn.Module]:
    """torch's BatchNorm layers and spd-learn's SPD batch normalisation layers of ``net``."""
    return [m for m in net.modules() if isinstance(m, (_BatchNorm, *_spd_batchnorm_classes()))]


def check_has_batchnorm(net: nn.Module, model: str, adapt: str) -> None:
    if adapt != "none" and not batchnorms(net):
        raise ConfigError(f"--adapt {adapt}: model '{model}' has no BatchNorm layer to adapt.",
                          hint="use a model with BatchNorm (eegnet, shallow-fbcspnet, tsmnet), or --adapt "
                               "adabn-features for a braindecode model.")


# -- feature standardisation before the classifier -------------------------------------------------------------
class FeatureNorm(nn.Module):
    """BatchNorm (no affine parameters) over dimension 1 of the tensor entering ``final_layer``."""

    def __init__(self, n_features: int, ndim: int):
        super().__init__()
        cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}.get(ndim)
        if cls is None:
            raise ConfigError(f"the features entering final_layer have {ndim} dimensions; adabn-features handles 2-4.",
                              hint="use --adapt adabn for this model.")
        self.n_features, self.ndim = n_features, ndim
        self.norm = cls(n_features, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def feature_shape(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(features, ndim) of the input of ``model.final_layer`` for the example input ``x``."""
    final = getattr(model, "final_layer", None)
    if not isinstance(final, nn.Module):
        raise ConfigError(f"--adapt adabn-features needs a braindecode model with a final_layer; "
                          f"{type(model).__name__} has none.", hint="use --adapt adabn for this model.")
    seen: list[torch.Size] = []
    handle = final.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape))
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(x)
        model.train(was)
    finally:
        handle.remove()
    return int(seen[0][1]), len(seen[0])


def attach_feature_norm(decoder: nn.Module, n_features: int, ndim: int) -> None:
    """Register ``decoder.feature_norm`` and apply it to the input of ``decoder.model.final_layer``."""
    decoder.feature_norm = FeatureNorm(n_features, ndim)

    def hook(_module, args):
        return (decoder.feature_norm(args[0]), *args[1:])

    decoder.model.final_layer.register_forward_pre_hook(hook)


def attach_head_norm(decoder: nn.Module, n_features: int) -> None:
    """Register ``decoder.feature_norm`` on the pooled features entering ``decoder.head.norm`` (every token head
    pools, then applies its LayerNorm, then classifies)."""
    decoder.feature_norm = FeatureNorm(n_features, 2)

    def hook(_module, args):
        return (decoder.feature_norm(args[0]), *args[1:])

    decoder.head.norm.register_forward_pre_hook(hook)


def prepare(net: nn.Module, adapt: str, *, model: str, example: torch.Tensor) -> dict | None:
    """Ready ``net`` for ``adapt`` at build time; returns what the decoder records to rebuild it (or ``None``)."""
    if adapt == "adabn-features":
        if hasattr(net, "head"):  # neurofm encoder + token head: the pooled tokens entering the head's LayerNorm
            n = int(net.head.n_features)  # the pooled features: dim, or channels × dim for the 'channels' head
            attach_head_norm(net, n)
            return dict(n_features=n, ndim=2, at="head")
        n, ndim = feature_shape(net.model, example)
        attach_feature_norm(net, n, ndim)
        return dict(n_features=n, ndim=ndim)
    check_has_batchnorm(net, model, adapt)
    return None


def rebuild(net: nn.Module, record: dict | None) -> None:
    """Re-attach the feature standardisation recorded by :func:`prepare` (before loading the weights)."""
    if record and record.get("at") == "head":
        attach_head_norm(net, int(record["n_features"]))
    elif record:
        attach_feature_norm(net, int(record["n_features"]), int(record["ndim"]))


# -- batches of one group ---------------------------------------------------------------------------------------
class GroupBatches(torch.utils.data.Sampler):
    """Batches of indices from one group each: shuffled within groups, cut to ``batch_size``, batch order shuffled.

    ``batch_size=None`` gives one batch per group (validation: a group's statistics from all its windows).
    A group's last batch shorter than ``MIN_WINDOWS`` joins the one before it.
    """

    def __init__(self, groups: np.ndarray, batch_size: int | None, shuffle: bool, seed: int = 0):
        from neurofm.decoding.align import group_indices

        self.groups = group_indices(len(groups), groups)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.gen = torch.Generator().manual_seed(seed)

    def _chunks(self, idx: np.ndarray) -> list[list[int]]:
        """One group's windows cut into batches; a last batch under ``MIN_WINDOWS`` joins the one before."""
        size = self.batch_size or len(idx)
        chunks = [idx[i:i + size].tolist() for i in range(0, len(idx), size)]
        if len(chunks) > 1 and len(chunks[-1]) < MIN_WINDOWS:
            last = chunks.pop()
            chunks[-1] += last
        return chunks

    def _batches(self) -> list[list[int]]:
        out = []
        for idx in self.groups:
            if self.shuffle:
                idx = idx[torch.randperm(len(idx), generator=self.gen).numpy()]
            out += self._chunks(idx)
        if self.shuffle:
            out = [out[i] for i in torch.randperm(len(out), generator=self.gen).tolist()]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return sum(len(self._chunks(idx)) for idx in self.groups)  # cutting does not depend on the order


# -- statistics of one group ------------------------------------------------------------------------------------
def adapted(net: nn.Module) -> list[nn.Module]:
    """The BatchNorm layers that follow each subject: all of them, or only the head's of a frozen encoder."""
    if getattr(net, "freeze", False):
        return batchnorms(net.head) + (batchnorms(net.feature_norm) if hasattr(net, "feature_norm") else [])
    return batchnorms(net)


@contextmanager
def group_statistics(net: nn.Module, batch: dict[str, torch.Tensor], chunk: int = 256):
    """Inside the block, the adapted BatchNorm layers of ``net`` (:func:`adapted`) normalise with the statistics of
    the windows in ``batch`` (``x``/``mask``, or a frozen encoder's ``tokens``/``token_mask``).

    The statistics are the cumulative averages over the batch in chunks of ``chunk`` windows (exact for one
    chunk); the network's own running statistics and train/eval modes are restored on exit. Dropout stays off.
    An SPD batch normalisation layer (:mod:`neurofm.models.spd`) takes the Fréchet mean of all the windows at
    once (a Riemannian mean has no running sum), so a network holding one sees the batch as a single chunk.
    """
    bns = adapted(net)
    spd = _spd_batchnorm_classes()
    n = len(batch["tokens"] if "tokens" in batch else batch["x"])
    if any(isinstance(m, spd) for m in bns):
        chunk = max(n, 1)
    saved = [(m.training, m.momentum, {k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None})
             for m in bns]
    was_training = net.training
    try:
        net.eval()
        for m in bns:
            m.reset_running_stats()
            # torch: cumulative average over the chunks; SPD: the running mean becomes the batch's own
            m.momentum = 1.0 if isinstance(m, spd) else None
            m.train()
        with torch.no_grad():
            for i in range(0, n, chunk):
                forward_batch(net, {k: v[i:i + chunk] for k, v in batch.items() if v is not None})
        for m in bns:
            m.eval()
        yield net
    finally:
        for m, (training, momentum, buffers) in zip(bns, saved, strict=True):
            for name, value in buffers.items():  # SPD layers re-assign their buffers: assign, do not copy
                setattr(m, name, value)
            m.momentum = momentum
            m.train(training)
        net.train(was_training)


def check_groups(groups: np.ndarray | None, n: int, *, source: str | None = None) -> list[np.ndarray]:
    """Index arrays of every group; each needs ``MIN_WINDOWS`` windows for its statistics."""
    from neurofm.decoding.align import group_indices

    names = ["(all windows)"] if groups is None else list(dict.fromkeys(np.asarray(groups, dtype=object).tolist()))
    parts = group_indices(n, groups)
    small = [str(g) for g, p in zip(names, parts, strict=True) if len(p) < MIN_WINDOWS]
    if small:
        raise ConfigError(f"the decoder adapts to each subject/recording from its own windows (AdaBN), but "
                          f"{', '.join(small[:6])} {'has' if len(small) == 1 else 'have'} fewer than {MIN_WINDOWS}.",
                          source=source, hint=f"give at least {MIN_WINDOWS} windows of every subject (more give "
                                              "steadier statistics; the decoder was trained with whole subjects).")
    return parts
