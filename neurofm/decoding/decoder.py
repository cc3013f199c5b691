"""A trained decoder: its network (or classical model), input normalisation and task, saved without pickle.

Layout of a decoder directory::

    DIR/decoder.safetensors   every array: network state (``net.*``), normalisation (``norm.*``),
                              regression target scale (``target.*``), classical coefficients (``classical.*``)
    DIR/decoder.json          family, how to rebuild the model, head, classes, channel layout, the task
                              (recipe inlined), the training store's signal contract, metrics, sha256

``Decoder.load(DIR)`` checks the sha256 and rebuilds the model from the registry; nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import StoreError

WEIGHTS = "decoder.safetensors"
CONFIG = "decoder.json"
FORMAT = "neurofm-decoder"


def channel_stats(x: np.ndarray, mask: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over the windows ``idx`` (training split), counting present channels only."""
    xs, ms = x[idx], mask[idx]
    n = ms.sum(0).astype(np.float64) * x.shape[2]
    total = np.einsum("nct,nc->c", xs.astype(np.float64), ms.astype(np.float64))
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    sq = np.einsum("nct,nc->c", (xs - mean[None, :, None]) ** 2, ms.astype(np.float64))
    std = np.sqrt(np.divide(sq, n, out=np.ones_like(sq), where=n > 0))
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(x: np.ndarray, mask: np.ndarray, mode: str, mean: np.ndarray | None = None,
              std: np.ndarray | None = None) -> np.ndarray:
    """``channel``: z-score with training statistics; ``window``: z-score each window's channels; ``none``.

    Absent channels (``mask`` False) are 0 after normalisation.
    """
    if mode == "none":
        out = x.astype(np.float32, copy=True)
    elif mode == "channel":
        out = (x - mean[None, :, None]) / std[None, :, None]
    elif mode == "window":
        sd = x.std(-1, keepdims=True)
        out = (x - x.mean(-1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    else:
        raise ValueError(f"unknown normalisation '{mode}'")
    out = out.astype(np.float32, copy=False)
    out[~mask] = 0.0
    return out


class Decoder:
    """A decoder ready to predict: ``predict(x, mask)`` on windows in the store's units (µV)."""

    def __init__(self, config: dict[str, Any], arrays: dict[str, np.ndarray], net: Any = None, classical: Any = None):
        self.config, self.arrays, self.net, self.classical = config, arrays, net, classical

    @property
    def kind(self) -> str:
        return self.config["kind"]

    @property
    def ch_names(self) -> list[str]:
        return self.config["ch_names"]

    @property
    def align(self) -> str:
        """Alignment unit the decoder was trained with (``none``, ``subject``, ``recording``)."""
        return self.config.get("align") or "none"

    @property
    def adapt(self) -> str:
        """Subject-adaptive normalisation the decoder was trained with (``none``, ``adabn``, ``adabn-features``)."""
        return self.config.get("adapt") or "none"

    def predict(self, x: np.ndarray, mask: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities (n, n_classes), or predictions (n,) in the target's units.

        ``groups``: subject (or recording) of every window, for a decoder trained with alignment; ``None``
        aligns all windows given as one group. A decoder trained with ``adapt`` recomputes its BatchNorm
        statistics from each group's own windows (no labels) before predicting that group.
        """
        if self.classical is not None:
            return self.classical.predict(x, mask, groups)
        import torch

        from neurofm.decoding.training import predict

        xn = self.inputs(x, mask, groups)
        parts = None
        if self.adapt != "none":
            from neurofm.decoding.adapt import check_groups

            parts = check_groups(groups, len(x))
        out = predict(self.net, dict(x=torch.from_numpy(xn), mask=torch.from_numpy(mask)), self.kind, groups=parts)
        if self.kind == "regression":
            out = out * float(self.arrays["target.std"][0]) + float(self.arrays["target.mean"][0])
        return out

    def inputs(self, x: np.ndarray, mask: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """The windows as the neural network receives them: aligned per group (if trained so), then normalised."""
        if self.align != "none":
            from neurofm.decoding.align import euclidean_align

            x = euclidean_align(x, mask, groups)
        return normalize(x, mask, self.config["normalize"], self.arrays.get("norm.mean"), self.arrays.get("norm.std"))

    # -- I/O ----------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        from safetensors.numpy import save_file

        from neurofm import __version__
        from neurofm.data.store import atomic_path, sha256_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.ascontiguousarray(v) for k, v in self.arrays.items()}
        if self.net is not None:
            arrays.update({f"net.{k}": v.detach().cpu().contiguous().numpy() for k, v in self.net.state_dict().items()})
        if self.classical is not None:
            arrays.update({f"classical.{k}": np.ascontiguousarray(v) for k, v in self.classical.arrays().items()})
        with atomic_path(directory / WEIGHTS) as tmp:
            save_file(arrays, str(tmp), metadata={"format": FORMAT})
        config = dict(self.config, format=FORMAT, format_version=1, neurofm_version=__version__,
                      sha256=sha256_file(directory / WEIGHTS))
        with atomic_path(directory / CONFIG) as tmp:
            tmp.write_text(json.dumps(clean(config), indent=1, default=_jsonable))
        return directory

    @classmethod
    def load(cls, path: str | os.PathLike) -> Decoder:
        """Load a decoder directory (or a ``finetune --out`` directory holding ``decoder/``)."""
        from safetensors.numpy import load_file

        from neurofm.data.store import verify_sha256

        directory = find_decoder(path)
        config = json.loads((directory / CONFIG).read_text())
        verify_sha256(directory / WEIGHTS, config.get("sha256"), recorded_in=CONFIG,
                      hint="copy the decoder directory again, or retrain it; never edit the weights by hand.")
        arrays = load_file(str(directory / WEIGHTS))
        family = config["family"]
        if family == "classical":
            from neurofm import registry

            model = registry.get_entry("models", config["build"]["model"]).resolve()(**config["build"]["kwargs"])
            model.load_arrays({k[len("classical."):]: v for k, v in arrays.items() if k.startswith("classical.")})
            return cls(config, _aux(arrays), classical=model)
        import torch

        from neurofm.decoding import nets

        if family == "braindecode":
            net = nets.rebuild_braindecode(config["build"], config["ch_names"])
        else:
            encoder = nets.rebuild_encoder(config["build"])
            net = nets.encoder_decoder(encoder, config["head"], config["n_outputs"], config["ch_names"],
                                       np.asarray(config["pos"], dtype=np.float32),
                                       freeze=bool(config.get("freeze")))  # AdaBN leaves a frozen encoder as trained
        if config["build"].get("feature_norm"):  # subject-adaptive feature standardisation (adabn-features)
            from neurofm.decoding.adapt import rebuild

            rebuild(net, config["build"]["feature_norm"])
        state = {k[len("net."):]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith("net.")}
        result = net.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise StoreError(f"weights do not fit model '{config['build']['model']}': missing {result.missing_keys[:4]}, "
                             f"unexpected {result.unexpected_keys[:4]}.", source=directory / WEIGHTS,
                             hint="the model's code changed since the decoder was trained; retrain it.")
        net.eval()
        return cls(config, _aux(arrays), net=net)


def _aux(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in arrays.items() if k.startswith(("norm.", "target."))}


def find_decoder(path: str | os.PathLike) -> Path:
    """The decoder directory at ``path`` or at ``path/decoder``; pickles are refused."""
    path = Path(path)
    for d in (path, path / "decoder"):
        if (d / CONFIG).is_file() and (d / WEIGHTS).is_file():
            return d
    if path.is_file():
        head = path.read_bytes()[:4]
        if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
            raise StoreError("this is a pickled checkpoint, which can run arbitrary code when loaded; neurofm loads "
                             "decoders only from safetensors + JSON.", source=path,
                             hint="pass the directory written by `neurofm finetune --out DIR` (DIR or DIR/decoder).")
    raise StoreError(f"no {WEIGHTS} + {CONFIG} here or in decoder/.", source=path,
                     hint="pass the directory written by `neurofm finetune --out DIR`.")


def clean(obj: Any) -> Any:
    """A JSON-ready copy: NaN/inf → None, NumPy scalars and arrays → Python, tuples → lists."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON (no NaN), atomically."""
    from neurofm.data.store import atomic_path

    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(clean(obj), indent=1, default=_jsonable))


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj != obj:
        return None
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
