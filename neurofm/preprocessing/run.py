"""Run a recipe over a dataset into a store: parallel, resumable, one failure never stops the batch."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

from neurofm._errors import NeurofmError
from neurofm.data.store import StoreWriter, claim_store, sha256_file, store_identity, write_json
from neurofm.datasets import Dataset, RecordingRef
from neurofm.io._formats import companion_files
from neurofm.io.channels import DATA_TYPES
from neurofm.io.sidecars import Sidecars
from neurofm.preprocessing import recipe as R
from neurofm.preprocessing.steps import READ_ONLY_STEPS, SIGNAL_STEPS, State, _psd, cut_windows, pick

log = logging.getLogger("neurofm.preprocess")


@dataclass
class RunResult:
    done: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: dict | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _clean_temp(writer: StoreWriter, rec_id: str) -> None:
    for folder in (writer.shards, writer.qc):
        for tmp in folder.glob(f".{rec_id}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _with_options(ref: RecordingRef, recipe: R.Recipe, sfreq: float | None) -> RecordingRef:
    """``ref`` with the read options of this run: the recipe's montage step and ``--sfreq``."""
    import dataclasses

    montage = next((s for n, s in recipe.steps if n == "montage"), None)
    options = dict(ref.options, **({"montage": montage.model_dump()} if montage is not None else {}),
                   **({"sfreq": sfreq} if sfreq is not None else {}))
    return dataclasses.replace(ref, options=options) if options != ref.options else ref


def _meta(dataset: Dataset, ref: RecordingRef, recipe: R.Recipe, state: State, source_sha: str, sfreq: float,
          n_times: int, starts, labels: list[str], line_freq: float | None) -> dict:
    """A recording's store metadata (both engines)."""
    patch, rec = recipe.patch, state.rec
    return dict(
        id=ref.id, source=str(ref.path), source_sha256=source_sha, dataset=dataset.name,
        subject=ref.subject, session=ref.session, run=ref.run, label=ref.label, info=ref.meta,
        recipe=recipe.name, recipe_hash=recipe.hash, line_freq=line_freq, sfreq=sfreq, units=recipe.output.units,
        n_times=int(n_times), patch_size=None if patch is None else int(round(patch.patch_s * sfreq)),
        channels=state.table.to_records(), coord_frame=state.table.coord_frame,
        bads=state.bads, interpolated=state.interpolated, notes=state.notes,
        window=dict(kind=recipe.window.kind, window_s=recipe.window.window_s,
                    stride_s=recipe.window.stride_s, tmin=recipe.window.tmin),
        starts=[int(s) for s in starts], labels=labels,
        events=[dict(onset=e.onset, duration=e.duration, label=e.label) for e in rec.events],
        target=rec.target if rec.target and rec.target in state.raw.ch_names else None,
    )


def process_recording(dataset: Dataset, ref: RecordingRef, recipe: R.Recipe, writer: StoreWriter,
                      force: bool = False, line_freq: float | None = None, sfreq: float | None = None,
                      max_memory: int | None = None) -> dict:
    """Process one recording into the store. Never raises: returns a status dict.

    ``line_freq`` (Hz) overrides the dataset's and the BIDS sidecar's power-line frequency; ``sfreq`` (Hz) is
    the rate of tabular recordings without timestamps.

    ``recipe.mode == "fast"`` streams it (:mod:`neurofm.preprocessing.stream`) within ``max_memory`` bytes of
    working memory; ``"exact"`` loads it whole and runs MNE's filters and FFT resampling (bit-for-bit).
    """
    t0 = time.perf_counter()
    base = dict(id=ref.id, source=str(ref.path), subject=ref.subject)
    try:
        _clean_temp(writer, ref.id)
        source_sha = sha256_file(*companion_files(ref.path)) if ref.path.exists() else "missing"
        if line_freq is None:
            line_freq = dataset.line_freq if dataset.line_freq is not None else Sidecars.find(ref.path).line_freq
        if not force and writer.is_done(ref.id, recipe.hash, source_sha, line_freq=line_freq):
            return dict(base, status="skipped")
        from neurofm.datasets._base import PRELOAD
        from neurofm.preprocessing import stream

        why_not = stream.supported(recipe) if recipe.mode == "fast" else "exact"
        token = PRELOAD.set(why_not is not None)  # streamed recordings are read lazily
        try:
            rec = dataset.load(_with_options(ref, recipe, sfreq))
        finally:
            PRELOAD.reset(token)
        state = State(rec=rec, raw=rec.raw, table=rec.channels, line_freq=line_freq,
                      modality=recipe.modality if recipe.modality != "any" else dataset.modality,
                      notes=list(rec.channels.notes))
        if why_not is None:
            budget = stream.parse_memory(max_memory)
            meta_fn = lambda st, sf, n, starts, labels: _meta(dataset, ref, recipe, st, source_sha, sf, n,  # noqa: E731
                                                             starts, labels, line_freq)
            res = stream.run_stream(state, recipe, writer, ref.id, meta_fn, budget)
            return dict(base, status="done", line_freq=line_freq, **res, bads=state.bads, notes=state.notes,
                        seconds=round(time.perf_counter() - t0, 3))
        if why_not != "exact":
            state.notes.append(f"processed in memory, not streamed: {why_not}")
        if not any(name == "pick" for name, _ in recipe.steps):
            pick(state, R.Pick(types=list(DATA_TYPES)))
        for name, params in recipe.steps:
            if name in SIGNAL_STEPS:
                SIGNAL_STEPS[name](state, params)
                if name not in READ_ONLY_STEPS:
                    state.cache.clear()
        _psd(state, "after")
        win = cut_windows(state, recipe.window, recipe.name)
        out = recipe.output
        data = (win["data"] * 1e6).astype(out.dtype)
        meta = _meta(dataset, ref, recipe, state, source_sha, float(state.raw.info["sfreq"]), data.shape[2],
                     win["starts"], win["labels"], line_freq)
        target = win["target"] * 1e6 if "target" in win else None
        writer.write(ref.id, data, meta, dtype=out.dtype, target=target, qc=state.qc_arrays())
        return dict(base, status="done", line_freq=line_freq, n_windows=int(data.shape[0]), n_chans=int(data.shape[1]),
                    bads=state.bads, notes=state.notes, seconds=round(time.perf_counter() - t0, 3))
    except NeurofmError as err:
        return dict(base, status="failed", error=str(err), kind=type(err).__name__)
    except MemoryError:
        return dict(base, status="failed", kind="MemoryError",
                    error=f"{ref.path}: out of memory while processing. HINT: lower --n-jobs.")
    except Exception as err:  # a bug: keep the traceback for the log, the batch goes on
        return dict(base, status="failed", kind="InternalError",
                    error=f"{ref.path}: internal error {type(err).__name__}: {err}. HINT: this is a neurofm bug; "
                    "please report it with the traceback in failures.json.",
                    traceback=traceback.format_exc())


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` (0-based I, as SLURM_ARRAY_TASK_ID) → (I, N)."""
    if not text:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if n < 1 or not 0 <= i < n:
        raise R.ConfigError(f"--shard '{text}' is not I/N with 0 <= I < N.",
                            hint="e.g. --shard ${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}.")
    return i, n


def preprocess(dataset: Dataset, recipe: R.Recipe, out: str | os.PathLike, *, n_jobs: int = 1,
               shard: str | None = None, report: bool = True, force: bool = False,
               limit: int | None = None, verbose: bool = True, line_freq: float | None = None,
               sfreq: float | None = None, max_memory: str | int | None = None) -> RunResult:
    """Run ``recipe`` on every recording of ``dataset`` (or this shard's share) into the store ``out``.

    ``line_freq`` (50 or 60 Hz) is the power-line frequency for every recording, overriding the dataset's;
    ``sfreq`` the sampling rate of tabular recordings whose timestamps are missing. ``max_memory`` (bytes or
    "1G"; default :data:`neurofm.preprocessing.stream.DEFAULT_MAX_MEMORY`) is the working memory of the
    streaming engine, split evenly between the ``n_jobs`` workers.
    """
    from joblib import delayed
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    i, n = parse_shard(shard)
    refs = dataset.recordings()[i::n]
    if limit is not None:
        refs = refs[:limit]
    claim_store(out, store_identity(dataset.describe(), recipe.hash, recipe.name), force=force)
    writer = StoreWriter(out)
    write_json(writer.root / "recipe.json", dict(recipe=recipe.to_dict(), recipe_hash=recipe.hash,
                                                  dataset=dataset.describe()))
    writer.shards.mkdir(parents=True, exist_ok=True)
    result = RunResult(warnings=list(getattr(dataset, "scan_notes", list)()))  # folder: files not read, listed
    from neurofm.preprocessing.stream import limited, worker_budget, worker_pool

    budget = worker_budget(max_memory, n_jobs, len(refs))
    jobs = (delayed(limited)(process_recording, dataset, ref, recipe, writer, force, line_freq, sfreq, budget)
            for ref in refs)
    if n_jobs == 1:
        runner = (fn(*args, **kwargs) for fn, args, kwargs in jobs)
    else:
        runner = worker_pool(jobs, n_jobs)
    bar = tqdm(runner, total=len(refs), desc=f"preprocess {dataset.name}", unit="rec",
               disable=not verbose or not sys.stderr.isatty())
    for res in bar:
        if res["status"] == "done":
            result.done.append(res)
        elif res["status"] == "skipped":
            result.skipped.append(res["id"])
        else:
            result.failed.append(res)
    failures = sorted(result.failed, key=lambda r: r["id"])
    no_line = sorted(r["id"] for r in result.done if r.get("line_freq") is None)
    if no_line and any(n == "notch" and s.freqs == "line" for n, s in recipe.steps):
        result.warnings.append(
            f"WARNING: no power-line frequency is known for {len(no_line)} recording(s) ({', '.join(no_line[:3])}"
            f"{', ...' if len(no_line) > 3 else ''}): the notch was skipped and line noise stays in the data. "
            "HINT: pass --line-freq 50 (Europe, Asia, Africa, Oceania) or --line-freq 60 (the Americas), or set "
            "PowerLineFrequency in the BIDS *_eeg.json.")
    write_json(writer.root / "failures.json", failures)
    result.manifest = writer.write_manifest(recipe.to_dict(), recipe.hash, dataset.describe(),
                                            [{k: f[k] for k in ("id", "source", "kind", "error")} for f in failures])
    if report:
        from neurofm.preprocessing.qc import write_report

        write_report(writer.root, result.manifest)
    result.seconds = time.perf_counter() - t0
    return result


def summarize(result: RunResult) -> str:
    m = result.manifest or {}
    lines = [f"{len(result.done)} processed, {len(result.skipped)} already up to date, {len(result.failed)} failed "
             f"in {result.seconds:.1f} s; store holds {m.get('n_recordings', 0)} recordings, "
             f"{m.get('n_windows', 0)} windows."]
    lines += result.warnings
    dropped: dict[str, list[str]] = {}
    for r in sorted(result.done, key=lambda r: r["id"]):
        for note in r.get("notes", []):
            if note.startswith("dropped"):
                dropped.setdefault(note, []).append(r["id"])
    for note, ids in dropped.items():
        lines.append(f"  {note} — in {len(ids)} recording(s): {', '.join(ids[:4])}{', ...' if len(ids) > 4 else ''}")
    if result.failed:
        kinds = Counter(f["kind"] for f in result.failed)
        lines.append(f"FAILED ({', '.join(f'{k}: {v}' for k, v in kinds.items())}):")
        lines += [f"  - {f['error']}" for f in sorted(result.failed, key=lambda r: r["id"])]
    return "\n".join(lines)
