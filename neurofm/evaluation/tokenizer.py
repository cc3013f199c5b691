"""``neurofm evaluate tokenizer``: fidelity, rate, code usage and throughput of a tokenizer on a store.

Every level prefix of a residual tokenizer is a rate point (decode from the first n levels), so
one model gives a rate–distortion curve; the DCT reference codec is run at the same rates.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from neurofm.evaluation.codec import SIDE_BITS_PER_CHANNEL_WINDOW, dct_at_rate
from neurofm.evaluation.fidelity import (
    CodeUsage,
    FidelityAccumulator,
    accumulate_groups,
    bands_for,
    energy_above,
    group_interval,
    group_means,
)

ABOVE_BAND_NOTE = 0.002   # energy share above the model's band edge worth a note (a fifth of the 0.01 fidelity goal)


def _batches(store, indices: np.ndarray, batch_size: int):
    from neurofm.data.dataset import WindowDataset, collate

    ds = WindowDataset(store, indices)
    for start in range(0, len(ds), batch_size):
        yield collate([ds[k] for k in range(start, min(start + batch_size, len(ds)))])


def evaluate_tokenizer(model, store, indices: np.ndarray | None = None, *, batch_size: int = 16,
                       levels: list[int] | None = None, codes: list[int] | None = None, dct: bool | str = True,
                       keep_examples: int = 4, progress: bool = False, beam: int = 1,
                       variable_bits: list[float] | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on windows ``indices`` of ``store`` (a :class:`~neurofm.data.dataset.WindowStore`).

    ``codes`` adds rate points that end inside a level: decode from the first n codes of every token (for
    tokenizers trained with code-prefix dropout); they are listed among the level points, in order of rate.
    ``beam`` > 1 encodes every window once per rate, by beam search for that rate's codes (``model.encode(...,
    beam=, n_codes=)``), instead of decoding prefixes of one greedy encoding; code usage, entropy-coded bits and
    encode throughput are then those of the top rate's beam-search encoding.
    ``variable_bits`` adds variable-rate points (``variable``), one per target in bits per channel-second: every
    token gets its own number of codes, allocated over all the evaluated windows at once (a two-pass encoder:
    :func:`_allocate_over_windows`); a point's rate is what was spent — mean codes × bits per code, plus the
    empirical entropy of the per-token counts (what a static entropy coder would send, the DCT reference's
    convention), plus the side information. The allocation is one rate–distortion slope for every window (what a
    fixed quantiser step is for the DCT codec), so a harder subject spends more codes: ``subjects_mean_codes``.

    Returns a JSON-able dict: per level prefix the nominal and entropy-coded bits per channel-second,
    z-MSE, r overall and per band; code usage and perplexity per (scale, level); encode throughput;
    and DCT codec points at the same rates (``dct="variable"``: at the variable-rate points only, for a second
    evaluation of rates the first already has the DCT codec at; ``False``: none). Every point (the DCT codec's too) also has each subject's z-MSE
    (``subjects``) and the 95 % t-interval of the mean over subjects (``zmse_ci``): the uncertainty that matters
    for new people, since windows of one subject are not independent.
    """
    import torch

    from neurofm.models._contract import SignalContract

    indices = np.arange(len(store)) if indices is None else np.asarray(indices)
    rec0 = store.recordings[int(store.rec_index[indices[0]])]
    sfreq, n_times = float(rec0["sfreq"]), int(rec0["n_times"])
    contract: SignalContract | None = getattr(model, "contract", None)
    notes: list[str] = []
    if contract is not None:
        names = sorted({ch["name"] for r in store.recordings for ch in r["channels"]})
        notes = contract.check(sfreq=sfreq, n_times=n_times, units=rec0.get("units"), ch_names=names,
                               source=str(store.root))
    band_top = contract.band[1] if contract is not None and contract.band else None
    bands = bands_for(sfreq, band_top)
    levels = levels or list(range(1, model.n_levels + 1))
    s_ = model.n_scales
    # every rate point as a count of codes per token (a level prefix of n levels = n · n_scales codes)
    rates = sorted({n * s_ for n in levels} | set(codes or []))
    fid = {k: FidelityAccumulator(sfreq, bands) for k in rates}
    variable = {t: (FidelityAccumulator(sfreq, bands), [], {}) for t in variable_bits or []}
    side = SIDE_BITS_PER_CHANNEL_WINDOW / (n_times / sfreq)
    seconds_per_token = model.patch_size / sfreq
    usage = CodeUsage(model.n_scales, model.n_levels, model.codebook_size)
    originals: list[np.ndarray] = []
    row_subjects: list[np.ndarray] = []     # the subject of each evaluated channel-window, in order
    examples: dict[str, Any] = {}
    encode_s, channel_seconds = 0.0, 0.0
    model.eval()
    iterator = _batches(store, indices, batch_size)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=math.ceil(len(indices) / batch_size), desc="evaluate")
    with torch.inference_mode():
        allocated = _allocate_over_windows(model, store, indices, batch_size, beam, variable_bits or [],
                                           side, seconds_per_token)
        for i, batch in enumerate(iterator):
            kw = dict(pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])
            searched = dict(beam=beam, n_codes=rates[-1]) if beam > 1 else {}
            t0 = time.perf_counter()
            enc = model.encode(batch["x"], **searched, **kw)
            encode_s += time.perf_counter() - t0
            valid = enc["valid"].numpy()
            channel_seconds += valid.sum() * n_times / sfreq
            usage.update(enc["codes"].numpy()[valid])
            x = batch["x"].numpy()[valid]
            originals.append(x)
            subj = np.broadcast_to(np.asarray(batch["subject"], dtype=str)[:, None], valid.shape)[valid]
            row_subjects.append(subj)
            for k in rates:
                at = dict(n_levels=k // s_) if k % s_ == 0 else dict(n_codes=k)
                at_k = enc if beam <= 1 or k == rates[-1] else model.encode(batch["x"], beam=beam, n_codes=k, **kw)
                rec = model.decode(at_k["codes"], enc["mean"], enc["std"], **at, **kw).numpy()[valid]
                fid[k].update(x, rec, subj)
                n = k // s_
                if k % s_ == 0 and n in (levels[0], levels[-1]) and len(examples.get(n, [])) < keep_examples:
                    examples.setdefault(n, []).extend(rec[: keep_examples - len(examples.get(n, []))])
            for target in variable_bits or []:
                v_enc = model.encode(batch["x"], beam=beam, n_codes=allocated[target][i], **kw)
                rec = model.decode(v_enc["codes"], enc["mean"], enc["std"], **kw).numpy()[valid]
                variable[target][0].update(x, rec, subj)
                per_row = (v_enc["codes"] >= 0).flatten(-2).sum(-1).numpy()[valid]     # (rows, tokens per row)
                variable[target][1].append(per_row.reshape(-1))
                accumulate_groups(variable[target][2], per_row.mean(-1), subj)
            if "x" not in examples:
                examples["x"] = x[:keep_examples]
    code_usage = usage.result()
    entropy_per_level = np.asarray(code_usage["entropy_bits"])          # (S, L)
    points = []
    for k in rates:
        full, part = divmod(k, s_)
        code_bits = model.bits_per_token(n_codes=k) / seconds_per_token
        ent_bits = float(entropy_per_level[:, :full].sum() + (entropy_per_level[:part, full].sum() if part else 0.0)) \
            / seconds_per_token
        res = fid[k].result(n_times)
        # levels: an int for a level prefix; codes / n_scales (a fraction) for a prefix that ends inside a level
        points.append(dict(levels=full if not part else round(k / s_, 3), codes=k, code_bits=code_bits,
                           bits_nominal=code_bits + side, bits_entropy=ent_bits + side, **res))
    variable_points = []
    for target, (acc, counts, subject_codes) in variable.items():
        counts = np.concatenate(counts)
        p = np.bincount(counts) / len(counts)
        count_bits = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
        code_bits = counts.mean() * model.bits_per_token(n_codes=1)
        variable_points.append(dict(target_bits=target, mean_codes=float(counts.mean()),
                                    min_codes=int(counts.min()), max_codes=int(counts.max()),
                                    count_entropy_bits=count_bits, code_bits=code_bits / seconds_per_token,
                                    bits_nominal=(code_bits + count_bits) / seconds_per_token + side,
                                    # one slope for all windows (like the DCT's one step): harder subjects spend more
                                    subjects_mean_codes=group_means(subject_codes),
                                    **acc.result(n_times)))
    x_all = np.concatenate(originals)
    above, above_note = None, None
    if band_top is not None and band_top < sfreq / 2:   # data not low-passed like the model's: a floor no code lowers
        above = energy_above(x_all, sfreq, band_top)
        if above > ABOVE_BAND_NOTE:
            above_note = (f"{above:.2%} of the evaluated signal's energy lies above the model's {band_top:g} Hz band edge, "
                          f"where its training data held almost none: z-MSE includes up to {above:.4f} that no code "
                          f"lowers; a store low-passed below {band_top:g} Hz (e.g. `bandpass: {{h_freq: "
                          f"{0.8 * band_top:g}}}`, the filter's transition band included) measures the codes alone")
            notes.append(above_note)
    out = dict(sfreq=sfreq, n_times=n_times, patch_size=model.patch_size, n_windows=int(len(indices)),
               bands={k: list(v) for k, v in bands.items()},
               n_channel_windows=len(x_all), side_bits_per_channel_second=side,
               points=points, variable=variable_points, code_usage=code_usage, notes=notes, beam=beam,
               energy_above_band=above, above_band_note=above_note,
               encode_channel_seconds_per_s=channel_seconds / max(encode_s, 1e-9))
    if dct:
        subj_all = np.concatenate(row_subjects)

        def dct_point(bits: float) -> dict:
            pt = dct_at_rate(x_all, sfreq, model.patch_size, bits)
            return dict(bits=pt.bits_per_channel_second, zmse=pt.zmse, step=pt.step,
                        **group_interval(accumulate_groups({}, pt.row_zmse, subj_all)))

        if dct != "variable":
            out["dct"] = [dict(target_bits=p["bits_nominal"], **dct_point(p["bits_nominal"])) for p in points]
        for p in variable_points:
            p["dct"] = dct_point(p["bits_nominal"])
    out["_examples"] = examples  # not JSON: used by the report
    return out


def _allocate_over_windows(model, store, indices, batch_size: int, beam: int, targets: list[float], side: float,
                           seconds_per_token: float) -> dict[float, list]:
    """Per target rate (bits per channel-second), each batch's per-token code counts, allocated over every window:
    pass 1 searches every token's error by code count (``model.count_errors``), one allocation meets the mean
    rate over all of them (:func:`~neurofm.models.layers.rvq.allocate_codes`; allocating batch by batch would
    overshoot: the counts' entropy over all windows exceeds a batch's)."""
    import torch

    from neurofm.models.layers.rvq import allocate_codes

    if not targets:
        return {}
    errors = [model.count_errors(b["x"], pos=b["pos"], mask=b["mask"], ch_names=b["ch_names"], beam=beam)
              for b in _batches(store, indices, batch_size)]
    sizes, every = [len(e) for e in errors], torch.cat(errors)
    return {t: list(allocate_codes(every, (t - side) * seconds_per_token, model.bits_per_token(n_codes=1)).split(sizes))
            for t in targets}


def write_report(result: dict[str, Any], path: str | os.PathLike, title: str = "neurofm tokenizer evaluation") -> Path:
    """HTML report: RD curve vs DCT, per-band r, original vs reconstruction per band, PSD, code usage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mne

    from neurofm.evaluation.fidelity import band_filter

    sfreq = result["sfreq"]
    report = mne.Report(title=title, verbose="error")
    pts = result["points"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot([p["bits_nominal"] for p in pts], [p["zmse"] for p in pts], "o-", label="tokenizer (nominal bits)")
    if pts[0].get("zmse_ci", {}).get("n", 0) > 1:   # the 95 % interval of the mean over subjects
        ax[0].fill_between([p["bits_nominal"] for p in pts], [max(p["zmse_ci"]["ci_low"], 1e-6) for p in pts],
                           [p["zmse_ci"]["ci_high"] for p in pts], alpha=0.2, label="95 % CI over subjects")
    ax[0].plot([p["bits_entropy"] for p in pts], [p["zmse"] for p in pts], "s--", label="tokenizer (entropy-coded)")
    if result.get("dct"):
        ax[0].plot([d["bits"] for d in result["dct"]], [d["zmse"] for d in result["dct"]], "^-", label="DCT codec")
    ax[0].set(xlabel="bits per channel-second", ylabel="z-scored MSE", yscale="log", title="rate–distortion")
    ax[0].legend(fontsize=8)
    for band in pts[-1]["bands"]:
        ax[1].plot([p["bits_nominal"] for p in pts], [p["bands"][band] for p in pts], "o-", label=band)
    ax[1].set(xlabel="bits per channel-second", ylabel="Pearson r", title="per-band fidelity")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    report.add_figure(fig, title="Rate–distortion and per-band r", image_format="png")
    plt.close(fig)
    ex = result.get("_examples", {})
    if "x" in ex and len(ex["x"]):
        x = np.asarray(ex["x"][0])
        recs = {k: np.asarray(v[0]) for k, v in ex.items() if k != "x" and len(v)}
        bands = result["bands"]
        fig, axes = plt.subplots(len(bands) + 1, 1, figsize=(10, 1.6 * (len(bands) + 1)), sharex=True)
        t = np.arange(x.shape[-1]) / sfreq
        axes[0].plot(t, x, "k", lw=0.8, label="original")
        for k, r in recs.items():
            axes[0].plot(t, r, lw=0.8, label=f"{k} level(s)")
        axes[0].legend(fontsize=7, loc="upper right")
        axes[0].set_ylabel("broadband")
        for a, (name, (lo, hi)) in zip(axes[1:], result["bands"].items(), strict=True):
            a.plot(t, band_filter(x, sfreq, lo, hi), "k", lw=0.8)
            for r in recs.values():
                a.plot(t, band_filter(r, sfreq, lo, hi), lw=0.8)
            a.set_ylabel(name)
        axes[-1].set_xlabel("s")
        fig.tight_layout()
        report.add_figure(fig, title="Original vs reconstruction per band (one channel-window)", image_format="png")
        plt.close(fig)
        from scipy.signal import welch

        fig, a = plt.subplots(figsize=(6, 3.5))
        f, p = welch(np.asarray(ex["x"]), sfreq, nperseg=min(256, x.shape[-1]))
        a.semilogy(f, p.mean(0), "k", label="original")
        for k in recs:
            f, p = welch(np.asarray(ex[k]), sfreq, nperseg=min(256, x.shape[-1]))
            a.semilogy(f, p.mean(0), label=f"{k} level(s)")
        a.set(xlabel="Hz", ylabel="µV²/Hz", title="PSD overlay")
        a.legend(fontsize=8)
        fig.tight_layout()
        report.add_figure(fig, title="PSD overlay", image_format="png")
        plt.close(fig)
    usage = np.asarray(result["code_usage"]["usage_pct"])
    fig, a = plt.subplots(figsize=(6, 3))
    im = a.imshow(usage, aspect="auto", vmin=0, vmax=100, cmap="viridis")
    a.set(xlabel="level", ylabel="scale", title="codes used (%)")
    fig.colorbar(im, ax=a)
    fig.tight_layout()
    report.add_figure(fig, title="Code usage per scale and level", image_format="png")
    plt.close(fig)
    clean = {k: v for k, v in result.items() if not k.startswith("_")}
    report.add_html(f"<pre>{json.dumps(clean, indent=1)[:20000]}</pre>", title="Numbers")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    report.save(path, open_browser=False, overwrite=True, verbose="error")
    return path


def run_evaluate_tokenizer(checkpoint: str, store: str, out: str, *, subjects: list[str] | None = None,
                           codes: list[int] | None = None, beam: int = 1, variable_bits: list[float] | None = None,
                           batch_size: int = 16, report: bool = True,
                           progress: bool = True) -> dict[str, Any]:
    """The CLI command: load an exported tokenizer (or a .ckpt), evaluate on a store, write JSON (+ HTML)."""
    from neurofm._errors import ConfigError
    from neurofm.data.dataset import WindowStore
    from neurofm.data.store import atomic_path

    model = load_tokenizer(checkpoint)
    n_max = model.n_scales * model.n_levels
    if codes and not all(1 <= k <= n_max for k in codes):
        raise ConfigError(f"--codes {' '.join(map(str, codes))}: a token of this tokenizer has {n_max} codes "
                          f"({model.n_scales} scales × {model.n_levels} levels).", source=str(checkpoint),
                          hint=f"give code counts from 1 to {n_max}")
    if beam < 1 or (beam > 1 and not getattr(getattr(model, "quantizer", None), "fast", False)):
        raise ConfigError(f"--beam {beam}: " + ("give a beam width of 1 (greedy) or more." if beam < 1 else
                          f"{type(model).__name__} codes cannot be beam-searched (one codebook, or cosine / "
                          "factorised codes)."), source=str(checkpoint), hint="use --beam 1 (greedy encoding)")
    variable_ok = getattr(getattr(model, "quantizer", None), "fast", False)
    if variable_bits and not variable_ok:
        raise ConfigError(f"--variable-bits: {type(model).__name__} codes cannot be allocated per token (one codebook, "
                          "or cosine / factorised codes).", source=str(checkpoint), hint="leave out --variable-bits")
    untrained_prefix = bool(codes) and not getattr(getattr(model, "quantizer", None), "code_prefix", False)
    ws = WindowStore(store)
    idx = np.arange(len(ws))
    if subjects:
        idx = np.flatnonzero(np.isin(ws.subjects, subjects))
        if not len(idx):
            from neurofm._errors import StoreError

            raise StoreError(f"no windows of subjects {subjects}.", source=store,
                             hint=f"the store has subjects {sorted(set(ws.subjects.tolist()))[:20]}")
    side = SIDE_BITS_PER_CHANNEL_WINDOW / (ws.recordings[0]["n_times"] / ws.sfreq())
    top = side + model.bits_per_token() / (model.patch_size / ws.sfreq())
    if variable_bits and not all(side < b <= top for b in variable_bits):
        raise ConfigError(f"--variable-bits {' '.join(f'{b:g}' for b in variable_bits)}: this tokenizer codes between "
                          f"{side:g} (side information only) and {top:g} bits per channel-second on this store.",
                          source=str(checkpoint), hint=f"give rates above {side:g} and up to {top:g}")
    result = evaluate_tokenizer(model, ws, idx, batch_size=batch_size, codes=codes, beam=beam,
                                variable_bits=variable_bits, progress=progress)
    if result["above_band_note"]:
        print(f"note: {result['above_band_note']}", file=sys.stderr)
    if untrained_prefix:
        result["notes"].append("--codes: this tokenizer was not trained with code_prefix; the points inside a level "
                               "decode, but no training step used them")
        print(f"note: {result['notes'][-1]}", file=sys.stderr)
    out = Path(out)
    clean = {k: v for k, v in result.items() if not k.startswith("_")}
    clean.update(checkpoint=str(checkpoint), store=str(store), subjects=subjects)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(clean, indent=1))
    if report:
        write_report(result, out.with_suffix(".html"))
    return clean


def load_tokenizer(path: str | os.PathLike):
    """An exported directory (safetensors, checked) or a Lightning checkpoint (weights_only)."""
    p = Path(path)
    if p.is_file() and p.suffix == ".ckpt":
        import tempfile

        from neurofm.training.export import export_checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            export_checkpoint(p, tmp)
            from neurofm.models._hub import from_pretrained

            return from_pretrained(tmp)
    from neurofm.models._hub import from_pretrained

    return from_pretrained(p)
