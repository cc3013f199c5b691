"""Copies of window stores with every subject's windows Euclidean-aligned, to pretrain on the input the decoders see.

The decoders of the pretraining benchmark run on Euclidean-aligned windows (``--align subject``: each subject's
windows whitened by its shrunk mean spatial covariance, :func:`neurofm.decoding.align.euclidean_align`), while the
LBM is pretrained on the stores as recorded. This script writes aligned copies of stores (one subject = every
recording of that subject with the same channels), so that an LBM can be pretrained on them:

    .venv/bin/python scripts/bench/aligned_stores.py out/release/eegmat-200hz out/release/eegmmidb-200hz \
        out/release/uci-alcohol-200hz --dest out/release-aligned
    .venv/bin/python scripts/release/release.py --only lbm --work out/release-aligned --dest DIR   # (tokenizer in DIR)

The copies keep the manifest, labels and layout; only the samples change (unit-free: each subject's shrunk mean
covariance becomes the identity). The sources are never written to. Measured in the README's "Sixteenth session".
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def align_store(src: Path, dest: Path) -> int:
    """Write an aligned copy of store ``src`` at ``dest`` (replaced if it exists); returns the number of groups."""
    import tempfile

    from neurofm._errors import ConfigError
    from neurofm.data.dataset import WindowStore
    from neurofm.decoding.align import euclidean_align

    src, dest = Path(src).resolve(), Path(dest).resolve()
    if dest == src or src in dest.parents:
        raise ConfigError(f"the aligned copy must lie outside its source store {src}", source=dest,
                          hint="give a --dest folder beside the stores, e.g. out/release-aligned")
    store = WindowStore(src)   # a checked manifest and shard paths, as every reader of a store gets them
    groups = defaultdict(list)
    for i, rec in enumerate(store.recordings):
        groups[(rec["subject"], tuple(c["name"] for c in rec["channels"]))].append(i)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))  # nothing half-written at dest
    try:
        tmp = work / dest.name
        shutil.copytree(src, tmp)
        for recs in groups.values():
            arrays = [store.array(i) for i in recs]
            x = np.concatenate(arrays)
            aligned = euclidean_align(x, np.ones(x.shape[:2], bool), None)
            start = 0
            for i, a in zip(recs, arrays, strict=True):
                np.save(tmp / "shards" / store.recordings[i]["file"], aligned[start:start + len(a)].astype(a.dtype))
                start += len(a)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(groups)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="+", help="store folders to copy")
    p.add_argument("--dest", required=True, help="folder for the aligned copies (one per store, same names)")
    args = p.parse_args(argv)
    from neurofm._errors import NeurofmError

    for store in map(Path, args.stores):
        try:
            n = align_store(store, Path(args.dest) / store.name)
        except NeurofmError as err:   # not a store, a damaged shard, a destination inside the source: one line
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{store.name}: {n} subject groups aligned → {Path(args.dest) / store.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
