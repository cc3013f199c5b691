"""The signal steps of a recipe, applied to one loaded recording.

Each step is a function ``step(state, params)``. Samples stay in Volts inside
MNE objects; conversion to µV happens when windows are cut.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from neurofm._errors import ChannelError, EventsError, SignalQualityError
from neurofm.datasets import Recording
from neurofm.io.channels import ChannelTable, shaft_of
from neurofm.preprocessing import recipe as R
from neurofm.preprocessing._fir import filter_zero_phase, fir_kernel


@dataclass
class State:
    """A recording on its way through a recipe."""

    rec: Recording
    raw: object  # mne.io.BaseRaw
    table: ChannelTable  # the channels that will be written, in order
    line_freq: float | None
    modality: str
    bads: dict[str, str] = field(default_factory=dict)  # channel → reason
    interpolated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    psd: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    cache: dict[str, np.ndarray] = field(default_factory=dict)  # statistics of the current data; cleared by the runner

    @property
    def source(self) -> str:
        return str(self.rec.ref.path)

    @property
    def picks(self) -> list[str]:
        return list(self.table.names)

    def qc_arrays(self) -> dict[str, np.ndarray]:
        """The QC spectra as the store keeps them: ``{stage}_freqs`` and ``{stage}_psd`` per PSD stage."""
        return {f"{k}_{i}": v for k, (f, p) in self.psd.items() for i, v in (("freqs", f), ("psd", p))}

    def data(self) -> np.ndarray:
        return self.raw.get_data(picks=self.picks)

    def set_data(self, values: np.ndarray) -> None:
        idx = [self.raw.ch_names.index(n) for n in self.picks]
        self.raw._data[idx] = values


def channel_robust_std(state: State) -> np.ndarray:
    """Robust std of each picked channel (Volts), computed once per state of the data."""
    if "robust_std" not in state.cache:
        x = state.data()
        stride = max(1, x.shape[1] // 20_000)  # ≥ 20k samples per channel are plenty for a median
        state.cache["robust_std"] = robust_std(x[:, ::stride])
    return state.cache["robust_std"]


def robust_std(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """1.4826 × median absolute deviation, ignoring non-finite samples."""
    if not np.isfinite(x).all():
        med = np.nanmedian(x, axis=axis, keepdims=True)  # ~5x slower than the finite path
        return 1.4826 * np.nanmedian(np.abs(x - med), axis=axis)
    x = np.moveaxis(x, axis, -1)
    dev = x - _median_last(x.copy())[..., None]
    return 1.4826 * _median_last(np.abs(dev, out=dev))


def _median_last(x: np.ndarray) -> np.ndarray:
    """``np.median(x, axis=-1)`` of finite values, equal bit for bit, in about half the time; ``x`` is reordered.

    np.median partitions at the two middle positions; one in-place partition at the upper one and the
    largest value below it (a plain maximum) give the same two values, whose mean is computed as np.median does.
    """
    n = x.shape[-1]
    if n == 0:
        return np.median(x, axis=-1)
    k = n // 2
    x.partition(k, axis=-1)
    upper = x[..., k]
    return upper if n % 2 else (x[..., :k].max(axis=-1) + upper) / 2


def welch_psd(x: np.ndarray, sfreq: float, seg_s: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD (Hann window, 50 % overlap, mean removed once), one row per channel, in units²/Hz.

    A few lines of NumPy: scipy.signal.welch spends most of its time in per-segment detrending.
    """
    nper = int(min(x.shape[-1], seg_s * sfreq))
    step = max(nper // 2, 1)
    x = x - x.mean(axis=-1, keepdims=True)
    frames = np.lib.stride_tricks.sliding_window_view(x, nper, axis=-1)[..., ::step, :]
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nper) / nper)  # periodic Hann, as scipy's default
    spec = np.abs(np.fft.rfft(frames * win, axis=-1)) ** 2
    psd = spec.mean(axis=-2) / (sfreq * (win**2).sum())
    psd[..., 1: (nper + 1) // 2] *= 2  # one-sided
    return np.fft.rfftfreq(nper, 1 / sfreq), psd


def _psd(state: State, key: str) -> None:
    sf = state.raw.info["sfreq"]
    x = state.raw.get_data(picks=state.picks, stop=min(int(sf * 30), state.raw.n_times))  # 30 s: enough for QC
    x = np.where(np.isfinite(x), x * 1e6, 0.0).astype(np.float32)
    if x.shape[1] < 8:
        return
    f, p = welch_psd(x, sf)
    state.psd[key] = (f, np.log10(np.maximum(p, 1e-20)).mean(0))


def pick(state: State, p: R.Pick) -> None:
    keep, dropped = [], defaultdict(list)
    has_pos = state.table.has_position()
    for i, (name, kind) in enumerate(zip(state.table.names, state.table.types, strict=True)):
        if name == state.rec.target:
            continue
        if kind not in p.types:
            dropped[kind].append(name)
        elif p.require_positions and not has_pos[i]:
            dropped["no position"].append(name)
        else:
            keep.append(name)
    if not keep:
        have = sorted(set(state.table.types))
        if dropped.get("no position"):
            raise ChannelError(
                f"none of the {len(dropped['no position'])} channel(s) of type {p.types} has a position "
                f"({', '.join(dropped['no position'][:6])}): their names are not 10-05 electrodes and no "
                "electrodes.tsv gives coordinates.", source=state.source,
                hint="give positions with a montage step in the recipe ('- montage: {name: biosemi64}', "
                "'{file: my-cap.elc}', '{rename: {\"1\": Fp1}}'), add an electrodes.tsv, or use a recipe with "
                "pick.require_positions: false (e.g. single-channel-200hz).")
        raise ChannelError(
            f"no channels of type {p.types} (the recording has {have}).", source=state.source,
            hint="use a recipe for this modality (eeg-200hz for scalp, seeg-1000hz for sEEG/ECoG) or set pick.types.")
    for kind, names in dropped.items():
        state.notes.append(f"dropped {len(names)} channel(s) ({kind}): {', '.join(names)}")
    state.table = state.table.subset(keep)
    _psd(state, "before")


def rescale(state: State, p: R.Rescale) -> None:
    state.set_data(state.data() * p.factor)
    state.notes.append(f"rescaled by {p.factor:g}")


def amplitude_check(state: State, p: R.AmplitudeCheck) -> None:
    sd = channel_robust_std(state)
    sd = sd[np.isfinite(sd) & (sd > 0)]
    if sd.size == 0:
        return  # all flat or all non-finite: reported by bad_channels with a better message
    level = float(np.median(sd))
    uv = level * 1e6
    if uv > p.max_uv:
        factor = 10.0 ** -round(np.log10(uv / 20.0))
        raise SignalQualityError(
            f"median channel amplitude is {uv:.3g} µV, above the plausible {p.max_uv:g} µV: the values look like "
            "µV (or mV) stored where Volts are declared.", source=state.source,
            hint=f"fix the physical unit in the file header, or add '- rescale: {{factor: {factor:g}}}' before "
            "amplitude_check in the recipe.")
    if uv < p.min_uv:
        factor = 10.0 ** round(np.log10(20.0 / uv))
        raise SignalQualityError(
            f"median channel amplitude is {uv:.3g} µV, below the plausible {p.min_uv:g} µV: the values look like "
            "Volts stored where µV are declared.", source=state.source,
            hint=f"fix the physical unit in the file header, or add '- rescale: {{factor: {factor:g}}}' before "
            "amplitude_check in the recipe.")


def _nonfinite_span(x: np.ndarray, sfreq: float) -> str:
    bad = ~np.isfinite(x).all(0)
    idx = np.flatnonzero(bad)
    return f"{idx[0] / sfreq:.2f}-{(idx[-1] + 1) / sfreq:.2f} s"


def channel_stats(state: State) -> dict:
    """Per-channel statistics bad-channel detection needs (Volts), cached like :func:`channel_robust_std`.

    ``finite_frac`` (fraction of finite samples), ``std`` (NaN-ignoring), ``span`` (the text of the first to
    last non-finite sample, or None). The streaming engine fills ``state.cache["stats"]`` from one pass over
    the recording in chunks instead.
    """
    if "stats" not in state.cache:
        x = state.data()
        finite = np.isfinite(x)
        nonfinite = ~finite.all(1)
        state.cache["stats"] = dict(
            finite_frac=finite.mean(1), std=np.std(x, axis=1) if not nonfinite.any() else np.nanstd(x, axis=1),
            span=_nonfinite_span(x, state.raw.info["sfreq"]) if nonfinite.any() else None)
    return state.cache["stats"]


def bad_channels(state: State, p: R.BadChannels) -> None:
    names = state.picks
    stats = channel_stats(state)
    reasons: dict[str, str] = {}
    nonfinite = stats["finite_frac"] < 1
    if nonfinite.all():
        raise SignalQualityError(
            f"NaN/Inf samples in every channel (first span {stats['span']}).", source=state.source,
            hint="cut the affected span out of the recording (or re-export it); neurofm will not invent samples.")
    for i in np.flatnonzero(nonfinite):
        reasons[names[i]] = f"non-finite samples ({100 * (1 - stats['finite_frac'][i]):.1f} %)"
    sd = channel_robust_std(state) * 1e6
    std = stats["std"] * 1e6
    flat = (sd < p.flat_uv) | (std < p.flat_uv)
    if flat.all():
        raise SignalQualityError(
            f"all {len(names)} channels are flat (robust std < {p.flat_uv:g} µV).", source=state.source,
            hint="check that the file holds a recording (not a calibration or placeholder) and its units.")
    for i in np.flatnonzero(flat & ~nonfinite):
        reasons[names[i]] = f"flat (robust std {sd[i]:.3g} µV)"
    ok = ~flat & ~nonfinite
    if ok.sum() >= 4:
        logsd = np.log(sd[ok])
        z = (logsd - np.median(logsd)) / max(1.4826 * np.median(np.abs(logsd - np.median(logsd))), 1e-3)
        for i, zi in zip(np.flatnonzero(ok), z, strict=True):
            if zi > p.noisy_z:
                reasons[names[i]] = f"noisy (robust z {zi:.1f})"
    if not reasons:
        return
    state.bads.update(reasons)
    if len(reasons) > p.max_bad_fraction * len(names):
        listed = ", ".join(f"{k} ({v})" for k, v in list(reasons.items())[:8])
        raise SignalQualityError(
            f"{len(reasons)} of {len(names)} channels are bad: {listed}.", source=state.source,
            hint="inspect the recording; raise bad_channels.max_bad_fraction only if this is expected.")
    # Zero the non-finite samples so that filters do not spread them; the channel is then replaced or dropped.
    bad_idx = [names.index(n) for n in reasons]
    if (nonfinite[bad_idx]).any():
        x = state.data()
        x[bad_idx] = np.where(np.isfinite(x[bad_idx]), x[bad_idx], 0.0)
        state.set_data(x)
    interpolate = p.interpolate if p.interpolate != "auto" else state.modality == "eeg"
    good_with_pos = int((state.table.has_position() & ~np.isin(names, list(reasons))).sum())
    if interpolate and good_with_pos >= 4 and state.table.has_position()[bad_idx].all():
        state.raw.info["bads"] = list(reasons)
        state.raw.interpolate_bads(reset_bads=True, mode="accurate", origin=(0.0, 0.0, 0.04), verbose="error")
        state.interpolated = list(reasons)
        state.notes.append(f"interpolated {len(reasons)} bad channel(s): {', '.join(reasons)}")
    else:
        state.table = state.table.subset([n for n in names if n not in reasons])
        state.notes.append(f"dropped {len(reasons)} bad channel(s): {', '.join(reasons)}")


def _nyquist_cap(state: State, h_freq: float | None, what: str) -> float | None:
    nyq = state.raw.info["sfreq"] / 2
    if h_freq is not None and h_freq >= nyq:
        state.notes.append(f"{what}: h_freq {h_freq:g} Hz >= Nyquist {nyq:g} Hz, low-pass skipped")
        return None
    return h_freq


def _fir(state: State, l_freq, h_freq, l_trans="auto", h_trans="auto") -> None:
    """Filter the picked channels in place, as ``Raw.filter`` would (same kernel, same padding)."""
    key = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731  (hashable for the kernel cache)
    h = fir_kernel(float(state.raw.info["sfreq"]), key(l_freq), key(h_freq), l_trans, h_trans)
    idx = [state.raw.ch_names.index(n) for n in state.picks]
    state.raw._data[idx] = filter_zero_phase(state.raw._data[idx], h)


def notch_spec(state: State, p: R.Notch) -> tuple | None:
    """The :func:`fir_kernel` arguments of the notch step at the current rate (None: nothing to do)."""
    nyq = state.raw.info["sfreq"] / 2
    if p.freqs == "line":
        if state.line_freq is None:
            state.notes.append("notch skipped: the dataset declares no power-line frequency")
            return None
        base = [state.line_freq]
    else:
        base = list(p.freqs)
    freqs = sorted({f * k for f in base for k in (range(1, int(nyq // f) + 1) if p.harmonics else [1])
                    if f * k < nyq - 1})
    if not freqs:
        return None
    # MNE's notch_filter defaults: width freq/200 plus a 1-Hz transition, as one band-stop FIR.
    tb_2 = 0.5
    lows = [f - f / 400.0 - tb_2 for f in freqs]
    highs = [f + f / 400.0 + tb_2 for f in freqs]
    return highs, lows, tb_2, tb_2


def notch(state: State, p: R.Notch) -> None:
    spec = notch_spec(state, p)
    if spec is not None:
        _fir(state, *spec)


def bandpass_spec(state: State, p: R.Bandpass) -> tuple | None:
    """The :func:`fir_kernel` arguments of the band-pass step at the current rate (None: nothing to do)."""
    h = _nyquist_cap(state, p.h_freq, "bandpass")
    if p.l_freq is None and h is None:
        return None
    return p.l_freq, h


def bandpass(state: State, p: R.Bandpass) -> None:
    spec = bandpass_spec(state, p)
    if spec is not None:
        _fir(state, *spec)


def _regroup(state: State, names: list[str], data: np.ndarray, table: ChannelTable) -> None:
    """Replace the recording's data channels by new derived ones (target channel kept)."""
    import mne

    keep = [state.rec.target] if state.rec.target in state.raw.ch_names else []
    types = table.types + (["misc"] * len(keep))
    info = mne.create_info(names + keep, state.raw.info["sfreq"], types)
    info.set_meas_date(state.raw.info["meas_date"])
    values = np.concatenate([data, state.raw.get_data(picks=keep)]) if keep else data
    new = mne.io.RawArray(values, info, first_samp=state.raw.first_samp, verbose="error")
    new.set_annotations(state.raw.annotations)
    state.raw = new
    state.table = table


def rereference(state: State, p: R.Rereference) -> None:
    if p.kind == "none":
        return
    x, names, table = state.data(), state.picks, state.table
    if p.kind == "average":
        for kind in sorted(set(table.types)):
            idx = [i for i, t in enumerate(table.types) if t == kind]
            if len(idx) > 1:
                x[idx] -= x[idx].mean(0, keepdims=True)
        state.set_data(x)
        return
    shafts: dict[str, list[tuple[int, int]]] = defaultdict(list)
    loose = []
    for i, name in enumerate(names):
        sn = shaft_of(name)
        if sn is None:
            loose.append(name)
        else:
            shafts[sn[0]].append((sn[1], i))
    new_names, rows, src, pos, atlas = [], [], [], [], defaultdict(list)
    for _, contacts in sorted(shafts.items()):
        contacts.sort()
        by_num = dict(contacts)
        for num, i in contacts:
            if p.kind == "bipolar":
                if num + 1 not in by_num:
                    continue
                j = by_num[num + 1]
                new_names.append(f"{names[i]}-{names[j]}")
                rows.append(x[i] - x[j])
                members = [i, j]
            else:  # laplacian: contact minus the mean of its shaft neighbours
                nb = [by_num[k] for k in (num - 1, num + 1) if k in by_num]
                if not nb:
                    continue
                new_names.append(names[i])
                rows.append(x[i] - x[nb].mean(0))
                members = [i]
            src.append(table.types[i])
            pos.append(np.nanmean(table.positions[members], axis=0) if np.isfinite(table.positions[members]).all()
                       else np.full(3, np.nan))
            for col, labels in table.atlas.items():
                atlas[col].append("/".join(dict.fromkeys(labels[m] for m in members)))
    if not rows:
        raise ChannelError(
            f"{p.kind} re-reference found no neighbouring contacts (names need a shaft prefix and a number, "
            f"like L'3; got {names[:6]}).", source=state.source,
            hint="use rereference: {kind: average} for grids/strips without shaft numbering.")
    orphans = [n for n in names if n in loose or all(n not in nn.split("-") for nn in new_names)]
    if orphans and p.kind == "bipolar":
        state.notes.append(f"bipolar: {len(orphans)} contact(s) without a neighbour left out: {', '.join(orphans[:12])}")
    new_table = ChannelTable(original=list(new_names), names=new_names, types=src, positions=np.array(pos),
                             atlas=dict(atlas), coord_frame=table.coord_frame, notes=table.notes)
    _regroup(state, new_names, np.array(rows), new_table)
    state.notes.append(f"{p.kind} re-reference: {len(names)} contacts → {len(new_names)} channels")


def resample(state: State, p: R.Resample) -> None:
    if abs(state.raw.info["sfreq"] - p.sfreq) > 1e-6:
        state.raw.resample(p.sfreq, verbose="error")


READ_ONLY_STEPS = {"amplitude_check"}  # steps after which cached statistics stay valid
SIGNAL_STEPS = {
    "pick": pick, "rescale": rescale, "amplitude_check": amplitude_check, "bad_channels": bad_channels,
    "notch": notch, "bandpass": bandpass, "rereference": rereference, "resample": resample,
}


def cut_windows(state: State, w: R.Window, recipe_name: str) -> dict:
    """Cut windows from the processed recording.

    Returns a dict with ``data`` (n_windows, n_chans, n_times) in Volts, ``starts`` (samples),
    ``labels`` (str per window) and, with a target channel, ``target`` (n_windows, n_times).
    """
    sf = state.raw.info["sfreq"]
    n_win = int(round(w.window_s * sf))
    starts, labels = window_plan(state, w, recipe_name, state.raw.n_times, sf)
    x = state.data()
    data = np.stack([x[:, s: s + n_win] for s in starts])
    out = dict(data=data, starts=starts, labels=labels)
    if state.rec.target and state.rec.target in state.raw.ch_names:
        t = state.raw.get_data(picks=[state.rec.target])[0]
        out["target"] = np.stack([t[s: s + n_win] for s in starts])
    return out


def window_plan(state: State, w: R.Window, recipe_name: str, n: int, sf: float) -> tuple[np.ndarray, list[str]]:
    """Window starts (samples at ``sf``) and labels for a processed recording of ``n`` samples at ``sf`` Hz."""
    n_win = int(round(w.window_s * sf))
    bad_spans = [(e.onset, e.onset + e.duration) for e in _annot(state) if e.label.lower().startswith("bad")]
    labelled = [e for e in state.rec.events if e.duration > 0]
    dropped = 0
    if w.kind == "fixed":
        stride = int(round((w.stride_s or w.window_s) * sf))
        starts = np.arange(0, n - n_win + 1, stride, dtype=np.int64)
        labels = []
        for s in starts:
            center = (s + n_win / 2) / sf
            hit = [e for e in labelled if e.onset <= center < e.onset + e.duration]
            labels.append(min(hit, key=lambda e: e.duration).label if hit else (state.rec.ref.label or ""))
    else:
        wanted = [e for e in state.rec.events if e.label in w.events]
        if not wanted:
            have = sorted({e.label for e in state.rec.events}) or "no events"
            raise EventsError(
                f"recipe '{recipe_name}' locks windows to events {w.events}, but this recording has {have}.",
                source=state.source,
                hint="use a fixed-length recipe (e.g. eeg-200hz) for it, or a dataset that maps its annotations.")
        starts, labels = [], []
        for e in wanted:
            s = int(round((e.onset + w.tmin) * sf))
            if s < 0 or s + n_win > n:
                dropped += 1
                continue
            starts.append(s)
            labels.append(e.label)
        starts = np.array(starts, dtype=np.int64)
    if bad_spans and len(starts):
        keep = [not any(a < (s + n_win) / sf and s / sf < b for a, b in bad_spans) for s in starts]
        dropped += int(len(keep) - sum(keep))
        starts = starts[np.array(keep, bool)]
        labels = [lab for lab, k in zip(labels, keep, strict=True) if k]
    if dropped:
        state.notes.append(f"{dropped} window(s) dropped (outside the recording or overlapping BAD annotations)")
    if len(starts) == 0:
        raise EventsError(
            f"no complete {w.window_s:g}-s window fits ({n / sf:.2f} s of data).", source=state.source,
            hint="use a shorter window_s, or leave this recording out.")
    return starts, labels


def _annot(state: State):
    from neurofm.datasets._base import annotation_events

    return annotation_events(state.raw)
