"""The on-disk window store: one memory-mapped ``.npy`` shard per recording plus JSON metadata.

Layout::

    STORE/
      manifest.json            store-level: recipe, its hash, recordings (rebuilt after every run)
      shards/<id>.npy          float32 (n_windows, n_chans, n_times), µV
      shards/<id>.target.npy   (n_windows, n_times) continuous target, when the dataset has one
      shards/<id>.json         per-recording metadata; written last, so it marks the shard complete
      qc/<id>.npz              PSD before/after for the QC report
      qc/report.html, qc/summary.tsv, failures.json

Every file is written to a temporary name and renamed into place, so a killed
run leaves either a complete recording or nothing of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from neurofm._errors import StoreError

MANIFEST = "manifest.json"


@contextlib.contextmanager
def atomic_path(final: Path):
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success, remove it on failure."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def write_array(path: Path, array: np.ndarray, dtype: str = "float32") -> None:
    """Write ``array`` as an ``.npy`` (read back memory-mapped), atomically.

    Atomicity comes from the rename; no fsync, so a power cut (unlike a killed process) may need a rerun.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fid:
            np.lib.format.write_array(fid, np.ascontiguousarray(array, dtype=dtype), allow_pickle=False)


def sha256_file(*paths: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 over the bytes of one file, or of several in order (a recording and its companions)."""
    import hashlib

    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fid:
            while block := fid.read(chunk):
                h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path, expected: object, *, recorded_in: str, hint: str) -> None:
    """Raise :class:`StoreError` unless ``path``'s sha256 equals the digest ``expected`` recorded in ``recorded_in``."""
    digest = sha256_file(path)
    if expected != digest:
        raise StoreError(f"sha256 mismatch: {recorded_in} says {str(expected)[:12]}…, the file is {digest[:12]}… "
                         "(corrupt or altered weights).", source=path, hint=hint)


def inside(root: Path, rel: str) -> Path:
    """Resolve ``rel`` under ``root``; refuse paths that escape it (``../``, absolute paths, links out)."""
    root = root.resolve()
    path = (root / rel).resolve()
    if path != root and root not in path.parents:
        raise StoreError(f"path '{rel}' escapes the store.", source=root,
                         hint="the manifest was edited or is not from neurofm; rebuild the store with neurofm preprocess.")
    return path


# What a store is made of; only these are removed when ``--force`` rebuilds a store of another identity.
STORE_FILES = (MANIFEST, "recipe.json", "failures.json")
STORE_DIRS = ("shards", "qc")


def store_identity(dataset: dict, recipe_hash: str, recipe_name: str) -> dict:
    """What a store belongs to: one dataset (name + resolved root) made with one recipe."""
    root = dataset.get("root")
    return dict(dataset=dataset.get("name"), root=None if root is None else str(Path(root).resolve()),
                recipe=recipe_name, recipe_hash=recipe_hash)


def _read_identity(root: Path) -> dict | None:
    """The identity recorded in an existing store (``recipe.json``, else ``manifest.json``), or ``None``."""
    for name in ("recipe.json", MANIFEST):
        path = root / name
        if not path.is_file():
            continue
        try:
            meta = json.loads(path.read_text())
            return store_identity(meta["dataset"], meta["recipe_hash"], meta["recipe"]["name"])
        except (OSError, ValueError, KeyError, TypeError):
            raise StoreError(f"{name} is not a neurofm store record.", source=path,
                             hint="pass --out a new folder; if this is a damaged neurofm store, delete it "
                             "and run again.") from None
    return None


def claim_store(root: str | os.PathLike, identity: dict, *, force: bool = False) -> str:
    """Check that ``root`` may receive a store of ``identity``, before anything is written.

    Returns ``"new"`` (absent or empty folder), ``"resume"`` (a store of the same identity) or ``"rebuild"``
    (a store of another identity, cleared because ``force``). Raises :class:`StoreError` and leaves
    everything untouched for a file, a non-empty folder that is not a store, or a store of another dataset,
    root or recipe without ``force``.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise StoreError("--out is an existing file, not a folder.", source=root,
                         hint="pass --out a new or empty folder (a store is a directory).")
    if not root.exists():
        return "new"
    entries = {p.name for p in root.iterdir() if not p.name.startswith(".")}  # .x.tmp: a killed write
    if not entries:
        return "new"
    have = _read_identity(root)
    if have is None and entries <= set(STORE_DIRS):
        return "new"  # a run killed before it wrote recipe.json
    if have is None:
        shown = ", ".join(sorted(entries)[:5])
        raise StoreError(f"--out is a non-empty folder that is not a neurofm store (holds {shown}, ...); "
                         "neurofm will not write beside unrelated files.", source=root,
                         hint="pass --out a new or empty folder.")
    if have == identity:
        return "resume"
    if have["dataset"] != identity["dataset"] or have["root"] != identity["root"]:
        what = (f"is a store of dataset '{have['dataset']}' (root {have['root']}, recipe {have['recipe']}); "
                f"this run is dataset '{identity['dataset']}' (root {identity['root']})")
    else:
        what = (f"is a store of dataset '{have['dataset']}' made with recipe '{have['recipe']}' "
                f"(hash {have['recipe_hash']}); this run's recipe '{identity['recipe']}' has hash "
                f"{identity['recipe_hash']}")
    if not force:
        raise StoreError(f"--out {what}; a store holds one dataset made with one recipe.", source=root,
                         hint="pass --out a new folder, or add --force to delete this store and rebuild it.")
    for name in STORE_FILES:
        (root / name).unlink(missing_ok=True)
    import shutil

    for name in STORE_DIRS:
        if (root / name).is_dir():
            shutil.rmtree(root / name)
    return "rebuild"


class StoreWriter:
    """Writes recordings into a store; knows which are already done with a given recipe hash."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.shards = self.root / "shards"
        self.qc = self.root / "qc"

    def meta_path(self, rec_id: str) -> Path:
        return self.shards / f"{rec_id}.json"

    def is_done(self, rec_id: str, recipe_hash: str, source_sha256: str, **settings: Any) -> bool:
        """Whether ``rec_id`` is stored with this recipe from these source bytes (and these run ``settings``,
        e.g. ``line_freq``, where its metadata records them)."""
        path = self.meta_path(rec_id)
        if not path.exists():
            return False
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        if meta.get("recipe_hash") != recipe_hash or meta.get("source_sha256") != source_sha256 or not meta.get("file"):
            return False
        if any(k in meta and meta[k] != v for k, v in settings.items()):
            return False
        try:
            return inside(self.shards, meta["file"]).is_file()
        except StoreError:  # metadata naming a file outside the store: redo the recording
            return False

    def write(self, rec_id: str, data: np.ndarray, meta: dict, *, dtype: str = "float32",
              target: np.ndarray | None = None, qc: dict | None = None) -> None:
        """Write one recording: arrays first, then its JSON (the completion marker)."""
        self.unmark(rec_id)
        write_array(self.shards / f"{rec_id}.npy", data, dtype)
        if target is not None:
            write_array(self.shards / f"{rec_id}.target.npy", target, "float32")
        self.finish(rec_id, meta, shape=data.shape, dtype=dtype, has_target=target is not None, qc=qc)

    def unmark(self, rec_id: str) -> None:
        """A recording being redone loses its completion marker before any of its arrays is touched."""
        old = self.meta_path(rec_id)
        if old.exists():
            old.unlink()

    def finish(self, rec_id: str, meta: dict, *, shape: tuple, dtype: str, has_target: bool = False,
               qc: dict | None = None) -> None:
        """After the arrays are in place: the QC spectra, then the JSON that marks the recording complete."""
        meta = dict(meta, file=f"{rec_id}.npy", shape=list(shape), dtype=str(dtype))
        if has_target:
            meta["target_file"] = f"{rec_id}.target.npy"
        if qc:
            with atomic_path(self.qc / f"{rec_id}.npz") as tmp:
                with open(tmp, "wb") as fid:
                    np.savez(fid, **qc)
        write_json(self.meta_path(rec_id), meta)

    def completed(self) -> list[dict]:
        out = []
        for path in sorted(self.shards.glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def write_manifest(self, recipe: dict, recipe_hash: str, dataset: dict, failures: list[dict]) -> dict:
        """Rebuild ``manifest.json`` from the per-recording metadata (safe with parallel SLURM shards)."""
        recs = self.completed()
        current = [r for r in recs if r.get("recipe_hash") == recipe_hash]
        stale = [r["id"] for r in recs if r.get("recipe_hash") != recipe_hash]
        from neurofm import __version__

        manifest = dict(
            format=1, neurofm_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            dataset=dataset, recipe=recipe, recipe_hash=recipe_hash,
            n_recordings=len(current), n_windows=int(sum(r["shape"][0] for r in current)),
            recordings=current, stale=stale, failures=failures,
        )
        write_json(self.root / MANIFEST, manifest)
        return manifest
