"""Training callbacks for checking distributed runs.

``SaveCodebooks`` writes every rank's codebooks (and, with ``weights=True``, its full state dict) at the end
of training to ``DIR/rank<R>.npz``, so a multi-node run can be checked for codebooks that stayed identical
across ranks (vector-quantize-pytorch syncs them only if told so; see the guide) and a resumed run compared
with an uninterrupted one::

    neurofm pretrain ... --trainer.callbacks+=neurofm.training.callbacks.SaveCodebooks \\
        --trainer.callbacks.dirpath runs/x/codebooks
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np


class SaveCodebooks(L.Callback):
    """At the end of ``fit``, every rank writes ``dirpath/rank<R>.npz`` (codebooks ``book<i>``, ``w:<name>``)."""

    def __init__(self, dirpath: str, weights: bool = True):
        self.dirpath, self.weights = Path(dirpath), weights

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        model = getattr(pl_module, "model", pl_module)
        if hasattr(model, "codebooks"):
            books = list(model.codebooks())
        elif hasattr(model, "quantizer"):
            books = [model.quantizer.codebook]
        else:
            books = []
        arrays = {f"book{i}": b.detach().cpu().numpy() for i, b in enumerate(books)}
        if self.weights:
            arrays.update({f"w:{k}": v.detach().cpu().numpy() for k, v in pl_module.state_dict().items()})
        arrays["global_step"] = np.array(trainer.global_step)
        np.savez(self.dirpath / f"rank{trainer.global_rank}.npz", **arrays)


def compare(paths: list[str | Path]) -> dict[str, float]:
    """Max absolute difference of codebooks (``books``) and weights (``weights``) between rank files."""
    files = [np.load(p) for p in paths]
    out = {"books": 0.0, "weights": 0.0, "n_books": 0, "steps": [int(f["global_step"]) for f in files]}
    ref = files[0]
    for f in files[1:]:
        for k in ref.files:
            if k == "global_step" or k not in f.files:
                continue
            key = "books" if k.startswith("book") else "weights"
            out[key] = max(out[key], float(np.max(np.abs(ref[k].astype(np.float64) - f[k]))) if ref[k].size else 0.0)
    out["n_books"] = sum(k.startswith("book") for k in ref.files)
    return out


if __name__ == "__main__":  # python -m neurofm.training.callbacks A.npz B.npz ...
    import json
    import sys

    print(json.dumps(compare(sys.argv[1:])))
