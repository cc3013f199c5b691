"""The streaming engine of ``mode: fast``: a recording is processed in chunks, so memory follows a budget.

How a recording goes through a recipe here (``mode: exact`` keeps the in-memory MNE path of ``run.py``):

1. The recording is opened lazily (MNE readers with ``preload=False``); ``pick`` and the QC PSD "before"
   read only the channel list and the first 30 s.
2. One pass over the picked channels in chunks gathers what ``amplitude_check`` and ``bad_channels`` need:
   the strided samples of the robust std (the same samples the in-memory path uses), running sums for the
   std, counts of non-finite samples. The steps' own code then decides on those statistics.
3. The channel steps (rescale, bad-channel interpolation or removal, re-reference) are linear in the
   channels, so they are run once on an identity "probe" recording: the result is one mixing matrix, and
   the channel table, notes and bads come out as in the in-memory path.
4. The time steps become stages: consecutive FIR filters at one rate are fused into a single zero-phase
   kernel (MNE's own designs, convolved), and ``resample`` is a polyphase FIR (blocks of periods as small
   matrix products, :class:`Resample`; :func:`scipy.signal.upfirdn` for awkward ratios) with Kaiser
   filters flat to 1e-4 up to 0.8 × the lower Nyquist and 80 dB down from that Nyquist on. When
   downsampling, the anti-alias low-pass joins the band-pass kernel at the input rate and the polyphase
   kernel only rejects images (:func:`antialias_fir`); a notch before the downsampling runs after it, at
   the new rate (:func:`_filter_rate`). Signal ends are extended by odd reflection (as MNE's
   "reflect_limited") before every stage.
5. Windows are computed group by group: each group of windows asks the last stage for its span of samples;
   every stage asks the one before for the span it needs plus its filter's edge, down to the reader's
   ``get_data(start, stop)``. Windows are written into the shard file as they are made (``os.pwrite`` at
   their offset in the ``.npy``; a memory map would count every written page in the process's RSS), then
   the shard is renamed into place atomically, and its JSON written last, as :class:`StoreWriter` does.

All signal arithmetic is float32 (statistics in float64). The output equals whole-recording processing by
the same stages to float32 rounding, whatever the chunk boundaries (tests/preprocessing/test_stream.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from neurofm._errors import ConfigError
from neurofm.preprocessing import recipe as R

DEFAULT_MAX_MEMORY = "512M"  # working memory of all workers together (the interpreter and libraries come on top)
BYTES_PER_SAMPLE = 64  # per channel and input sample of a chunk: float64 read, float32 copies, FFT work arrays
STAT_STEPS = ("amplitude_check", "bad_channels")
CHANNEL_STEPS = ("rescale", "rereference")
TIME_STEPS = ("notch", "bandpass", "resample")


def parse_memory(text: str | int | None) -> int:
    """``"512M"``, ``"1.5G"``, ``"800MB"`` or a byte count → bytes."""
    if text is None:
        text = DEFAULT_MAX_MEMORY
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)i?[bB]?\s*", str(text))
    if not m:
        raise ConfigError(f"--max-memory '{text}' is not a size.", hint="write e.g. 512M, 2G or 1.5GB.")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[m.group(2).lower()]
    value = int(float(m.group(1)) * scale)
    if value < 16 * 2**20:
        raise ConfigError(f"--max-memory '{text}' is below 16 MB.", hint="give at least 64M; 1G suits a laptop.")
    return value


# --------------------------------------------------------------------------- stages


def reflect_pad(get, n: int, a: int, b: int) -> np.ndarray:
    """Samples ``[a, b)`` of a signal of ``n`` samples extended by odd reflection (zeros beyond one reflection).

    ``get(lo, hi)`` returns the real samples ``[lo, hi)`` as (n_chans, hi - lo).
    """
    lo, hi = max(a, 0), min(b, n)
    need_lo, need_hi = (lo if a >= 0 else 0), (hi if b <= n else n)
    if a < 0:
        need_hi = max(need_hi, min(-a + 1, n))
    if b > n:
        need_lo = min(need_lo, max(n - 1 - (b - n), 0))
    seg = get(need_lo, need_hi)
    if a >= 0 and b <= n:
        return seg[:, lo - need_lo: hi - need_lo]
    out = np.zeros((seg.shape[0], b - a), dtype=seg.dtype)
    if hi > lo:
        out[:, lo - a: hi - a] = seg[:, lo - need_lo: hi - need_lo]
    if a < 0:
        k = np.arange(a, min(0, b))
        ok = -k <= n - 1
        out[:, k[ok] - a] = 2 * seg[:, [-need_lo]] - seg[:, -k[ok] - need_lo]
    if b > n:
        k = np.arange(max(n, a), b)
        src = 2 * (n - 1) - k
        ok = src >= 0
        out[:, k[ok] - a] = 2 * seg[:, [n - 1 - need_lo]] - seg[:, src[ok] - need_lo]
    return out


@dataclass
class Fir:
    """Zero-phase FIR filter (odd, symmetric kernel) at one rate."""

    h: np.ndarray  # float64 design

    def n_out(self, n_in: int) -> int:
        return n_in

    def __call__(self, get, n_in: int, a: int, b: int) -> np.ndarray:
        from scipy.signal import oaconvolve

        d = (len(self.h) - 1) // 2
        seg = reflect_pad(get, n_in, a - d, b + len(self.h) - 1 - d)
        h = self.h.astype(seg.dtype)
        if seg.shape[1] > 4 * len(h):
            return oaconvolve(seg, h[None, :], mode="valid", axes=-1)
        from scipy.signal import fftconvolve

        return fftconvolve(seg, h[None, :], mode="valid", axes=-1)


@dataclass
class Resample:
    """Polyphase resampling by ``up / down`` with a zero-phase anti-alias FIR ``h`` at ``up`` × the input rate.

    Output ``k`` is ``up · Σ_j h[k·down + d − j·up] · x[j]`` (``d``: the kernel's centre). Every ``up``
    outputs use the same ``up`` sets of taps on inputs shifted by ``down``, so blocks of ``T`` such periods
    (``W = T·down`` inputs → ``T·up`` outputs) are one small matrix product with the block and the next one:
    two BLAS calls for the whole span (:meth:`_blocks`), ~10× faster per multiply than
    :func:`scipy.signal.upfirdn`'s loop, which is kept for ratios where the block matrix would be mostly zeros.
    """

    up: int
    down: int
    h: np.ndarray
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def n_out(self, n_in: int) -> int:
        return int(round(n_in * self.up / self.down))  # as MNE's Raw.resample

    def _periods(self) -> int | None:
        """Periods ``T`` per matrix block, or None where upfirdn is cheaper (block products mostly zeros)."""
        if "T" not in self._cache:
            up, down, n = self.up, self.down, len(self.h)
            width = (n - 1 + up - 1 + (up - 1) * down) // up + 1  # inputs one period of outputs spans, at most
            T = max(1, -(-width // down) - 1)  # so that a block and the next one cover every period's inputs
            # 2·T·down multiplies per output (half of them zeros at most), BLAS ≥ 8× faster per multiply
            self._cache["T"] = T if 2 * T * down <= 4 * n / up else None
        return self._cache["T"]

    def _blocks(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        """The (W, T·up) matrices applied to a block of inputs and to the next block, for phase offset ``p``."""
        if p not in self._cache:
            up, down, h, T = self.up, self.down, self.h, self._periods()
            W, v = T * down, np.arange(T * up)
            o = np.arange(2 * W)[:, None]
            t = p + (v % up) * down - (o - down * (v // up)) * up  # tap of input o (of two blocks) for output v
            ok = (t >= 0) & (t < len(h))
            K = np.where(ok, up * h[np.clip(t, 0, len(h) - 1)], 0.0).astype(np.float32)
            self._cache[p] = (np.ascontiguousarray(K[:W]), np.ascontiguousarray(K[W:]))
        return self._cache[p]

    def __call__(self, get, n_in: int, a: int, b: int) -> np.ndarray:
        up, down, h = self.up, self.down, self.h
        d = (len(h) - 1) // 2
        # output k is sample k*down + d of (h * x upsampled): it needs inputs j with j*up in [k*down+d-len+1, k*down+d]
        lo = -((-(a * down + d - len(h) + 1)) // up)  # ceil
        T = self._periods()
        if T is not None:
            U, W = T * up, T * down
            n_blocks = -(-(b - a) // U)
            seg = reflect_pad(get, n_in, lo, lo + (n_blocks + 1) * W)
            x = np.ascontiguousarray(seg).reshape(seg.shape[0], n_blocks + 1, W)
            k_this, k_next = self._blocks(a * down + d - lo * up)
            y = x[:, :-1] @ k_this.astype(seg.dtype, copy=False)
            y += x[:, 1:] @ k_next.astype(seg.dtype, copy=False)
            return y.reshape(seg.shape[0], n_blocks * U)[:, : b - a]
        from scipy.signal import upfirdn

        hi = ((b - 1) * down + d) // up + 1
        seg = reflect_pad(get, n_in, lo, hi)
        z = (lo * up - d) % down  # align the decimation phase: prepend z zeros to the kernel
        hz = np.concatenate([np.zeros(z), h]).astype(seg.dtype) * up
        y = upfirdn(hz, seg, up, down, axis=-1)
        q = (a * down + d - lo * up + z) // down
        return y[:, q: q + (b - a)]


def antialias_fir(sfreq: float, new_sfreq: float) -> list:
    """The stages that resample ``sfreq`` to ``new_sfreq``: flat to 1e-4 up to 0.8 × the lower Nyquist, 80 dB down above it.

    Downsampling is split in two: a Kaiser low-pass at the input rate (a :class:`Fir`, which :func:`fuse`
    merges into the notch/band-pass kernel, so it costs one FFT convolution that runs anyway), then the
    polyphase stage, whose kernel only has to remove the images of the now band-limited signal (from
    ``sfreq`` − new Nyquist on) — a few taps instead of hundreds, and none for an integer factor.
    Upsampling keeps one Kaiser kernel at ``up`` × the input rate.
    """
    ratio = Fraction(new_sfreq / sfreq).limit_denominator(2000)
    if abs(float(ratio) * sfreq - new_sfreq) > 1e-6 * new_sfreq:
        raise ConfigError(f"resampling {sfreq:g} Hz to {new_sfreq:g} Hz is not a ratio of small integers.",
                          hint="pick a target rate with a simple ratio to the recording's rate, or use mode: exact.")
    up, down = ratio.numerator, ratio.denominator
    nyq = min(sfreq, new_sfreq) / 2
    if up >= down:
        return [Resample(up, down, _kaiser(sfreq * up, 0.9 * nyq, 0.2 * nyq))]
    pre = Fir(_kaiser(sfreq, 0.9 * nyq, 0.2 * nyq))
    if up == 1:
        return [pre, Resample(1, down, np.ones(1))]
    image = sfreq - nyq  # the lowest image of a signal band-limited to nyq, after upsampling by `up`
    return [pre, Resample(up, down, _kaiser(sfreq * up, (0.8 * nyq + image) / 2, image - 0.8 * nyq))]


@lru_cache(maxsize=32)
def _kaiser(fs: float, cutoff: float, width: float) -> np.ndarray:
    """Odd-length (integer delay, exactly zero phase) Kaiser-window low-pass at ``fs``: 80 dB, ripple 1e-4."""
    from scipy.signal import firwin, kaiserord

    numtaps, beta = kaiserord(80.0, width / (fs / 2))
    numtaps += 1 - numtaps % 2
    return firwin(numtaps, cutoff, window=("kaiser", beta), fs=fs)


def fuse(stages: list) -> list:
    """Merge consecutive FIR stages into one kernel (their convolution; made once per set of kernels)."""
    out: list = []
    for st in stages:
        if isinstance(st, Fir) and out and isinstance(out[-1], Fir):
            out[-1] = Fir(_convolved(_Key(out[-1].h), _Key(st.h)))
        else:
            out.append(st)
    return out


class _Key:
    """A kernel as a dictionary key (by value): recordings of one dataset share their fused kernels."""

    def __init__(self, h: np.ndarray):
        self.h, self._hash = h, hash(h.tobytes())

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return self.h.shape == other.h.shape and np.array_equal(self.h, other.h)


@lru_cache(maxsize=32)
def _convolved(a: _Key, b: _Key) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(a.h, b.h)


class Chain:
    """Stages after a source: ``span(a, b)`` gives output samples ``[a, b)`` of the last stage, computed on demand.

    ``source(lo, hi)`` returns the input samples ``[lo, hi)`` as float32 (n_chans, hi - lo).
    """

    def __init__(self, source, n_in: int, stages: list):
        self.source, self.stages = source, stages
        self.lengths = [n_in]
        for st in stages:
            self.lengths.append(st.n_out(self.lengths[-1]))

    @property
    def n_out(self) -> int:
        return self.lengths[-1]

    def span(self, a: int, b: int, level: int | None = None) -> np.ndarray:
        level = len(self.stages) if level is None else level
        if level == 0:
            return self.source(a, b)
        get = lambda lo, hi: self.span(lo, hi, level - 1)  # noqa: E731
        return self.stages[level - 1](get, self.lengths[level - 1], a, b)

    def context(self) -> int:
        """Extra input samples, each side, a chunk needs (filter edges through all stages), in input samples."""
        ratio, extra = 1.0, 0.0
        for st in self.stages:
            if isinstance(st, Fir):
                extra += len(st.h) / 2 * ratio
            else:  # the kernel's half length, plus up to two blocks of inputs of the matrix path
                extra += (len(st.h) / 2 / st.up + 2 * st.down * (st._periods() or 0)) * ratio
                ratio *= st.down / st.up
        return int(extra) + 1


def process_array(x: np.ndarray, stages: list, chunk: int | None = None) -> np.ndarray:
    """Run ``stages`` over ``x`` (n_chans, n_times) whole, or ``chunk`` output samples at a time (for tests)."""
    x = np.asarray(x, dtype=np.float32)
    chain = Chain(lambda lo, hi: x[:, lo:hi], x.shape[1], stages)
    chunk = chain.n_out if chunk is None else chunk
    return np.concatenate([chain.span(a, min(a + chunk, chain.n_out)) for a in range(0, chain.n_out, chunk)], axis=1)


# --------------------------------------------------------------------------- one recording


def supported(recipe: R.Recipe) -> str | None:
    """None when the recipe can be streamed, else why not (the recording is then processed in memory)."""
    names = [n for n, _ in recipe.steps if n not in ("window", "patch", "output")]
    if "pick" in names and names.index("pick") != 0:
        return "'pick' is not the first step"
    if names.count("bad_channels") > 1:
        return "'bad_channels' appears twice"
    later = [i for i, n in enumerate(names) if n in TIME_STEPS + ("rereference",)]
    if later and any(n in STAT_STEPS for n in names[later[0]:]):
        return "amplitude_check/bad_channels come after a filter, re-reference or resample step"
    return None


class _Stats:
    """Running per-channel statistics over chunks: exactly the samples and sums the in-memory path uses."""

    def __init__(self, n_chans: int, n_times: int, sfreq: float):
        self.stride = max(1, n_times // 20_000)  # as steps.channel_robust_std
        self.sfreq, self.strided = sfreq, []
        self.count = np.zeros(n_chans)
        self.total, self.total2 = np.zeros(n_chans), np.zeros(n_chans)
        self.finite, self.n = np.zeros(n_chans), 0
        self.first_bad, self.last_bad = None, None

    def add(self, x: np.ndarray, start: int) -> None:
        # a copy: a view would keep the whole chunk alive (with stride 1 the chunk itself is what is kept)
        self.strided.append(x if self.stride == 1 else x[:, (-start) % self.stride:: self.stride].copy())
        self.n += x.shape[1]
        if np.isfinite(x).all():  # the usual case: the same sums without the masks
            self.finite += x.shape[1]
            self.total += x.sum(1)
            self.total2 += (x * x).sum(1)
            return
        fin = np.isfinite(x)
        self.finite += fin.sum(1)
        xz = np.where(fin, x, 0.0)
        self.total += xz.sum(1)
        self.total2 += (xz * xz).sum(1)
        bad = np.flatnonzero(~fin.all(0))
        if bad.size:
            self.first_bad = start + bad[0] if self.first_bad is None else self.first_bad
            self.last_bad = start + bad[-1]

    def fill(self, cache: dict, scale: float) -> None:
        from neurofm.preprocessing.steps import robust_std

        strided = self.strided[0] if len(self.strided) == 1 else np.concatenate(self.strided, axis=1)
        cache["robust_std"] = robust_std(strided) * abs(scale)
        cnt = np.maximum(self.finite, 1)
        mean = self.total / cnt
        var = np.maximum(self.total2 / cnt - mean**2, 0.0)
        span = None if self.first_bad is None else \
            f"{self.first_bad / self.sfreq:.2f}-{(self.last_bad + 1) / self.sfreq:.2f} s"
        std = np.where(self.finite > 0, np.sqrt(var), np.nan) * abs(scale)
        cache["stats"] = dict(finite_frac=self.finite / self.n, std=std, span=span)


def _probe(state):
    """A copy of ``state`` whose data is the identity: channel steps applied to it give their mixing matrix."""
    import mne

    from neurofm.preprocessing.steps import State

    n = len(state.picks)
    info = mne.pick_info(state.raw.info, [state.raw.ch_names.index(c) for c in state.picks])  # no data copied
    raw = mne.io.RawArray(np.eye(n), info, first_samp=0, verbose="error")
    return State(rec=state.rec, raw=raw, table=state.table, line_freq=state.line_freq, modality=state.modality,
                 bads=state.bads, interpolated=state.interpolated, notes=state.notes)


def _set_sfreq(probe, sfreq: float) -> None:
    import mne

    info = probe.raw.info.copy()
    with info._unlock():
        info["sfreq"] = float(sfreq)
    probe.raw = mne.io.RawArray(probe.raw.get_data(), info, verbose="error")


def plan(state, recipe: R.Recipe, budget: int) -> tuple:
    """Decide channels and stages: returns (probe state, mixing matrix, stages); runs the statistics pass."""
    from neurofm.preprocessing._fir import fir_kernel
    from neurofm.preprocessing.steps import SIGNAL_STEPS, bandpass_spec, notch_spec

    names = [n for n, _ in recipe.steps]
    scale = 1.0
    if any(n in STAT_STEPS for n in names):
        stats = _Stats(len(state.picks), state.raw.n_times, state.raw.info["sfreq"])
        step = max(4096, budget // (BYTES_PER_SAMPLE * max(len(state.picks), 1)))
        for lo in range(0, state.raw.n_times, step):
            stats.add(state.raw.get_data(picks=state.picks, start=lo, stop=min(lo + step, state.raw.n_times)), lo)
    probe, stages, sf = _probe(state), [], float(state.raw.info["sfreq"])
    deferred: list = []  # filters designed at the rate of the next (lower) resample, run after it
    for i, (name, params) in enumerate(recipe.steps):
        if name in STAT_STEPS:
            if "stats" not in probe.cache:
                stats.fill(probe.cache, scale)
            SIGNAL_STEPS[name](probe, params)
            if name == "bad_channels":
                probe.cache.clear()
        elif name in CHANNEL_STEPS:
            SIGNAL_STEPS[name](probe, params)
            if name == "rescale":
                scale *= params.factor
        elif name in ("notch", "bandpass"):
            at = _filter_rate(name, params, sf, recipe.steps[i + 1:])
            view = probe if at == sf else SimpleNamespace(raw=SimpleNamespace(info={"sfreq": at}),
                                                          line_freq=probe.line_freq, notes=probe.notes)
            spec = (notch_spec if name == "notch" else bandpass_spec)(view, params)
            if spec is not None:
                key = tuple(tuple(v) if isinstance(v, list) else v for v in spec)  # hashable for the kernel cache
                (stages if at == sf else deferred).append(Fir(fir_kernel(at, *key)))
        elif name == "resample" and abs(sf - params.sfreq) > 1e-6:
            stages.extend(antialias_fir(sf, params.sfreq) + deferred)
            deferred = []
            sf = float(params.sfreq)
            _set_sfreq(probe, sf)
    matrix = probe.raw.get_data(picks=probe.picks).astype(np.float32)  # (n_out, n_picked)
    return probe, matrix, fuse(stages)


def _filter_rate(name: str, params, sf: float, later: list) -> float:
    """The rate a notch/band-pass step runs at: a notch runs after the next resample step if that lowers the rate.

    Linear filters commute with the (linear, channel-wise) steps around them, so a notch followed by a
    downsampling can run after it, on fewer samples, designed at the new rate (MNE's notch widths and
    transition bands are in hertz and its lengths in seconds: the same filter); its harmonics at or above the
    new Nyquist fall in the anti-alias stop band (80 dB). Measured against MNE's order, this keeps the
    passband within 3e-4 (tests/preprocessing/test_stream.py). A band-pass stays at the input rate: designed
    at 200 Hz, MNE's 75-Hz low-pass edge differs from its 500-Hz design by up to 8e-3 between 70 and 80 Hz.
    """
    new = next((p.sfreq for n, p in later if n == "resample"), None)
    if name != "notch" or new is None or new >= sf - 1e-6:
        return sf
    return float(new)


def run_stream(state, recipe: R.Recipe, writer, rec_id: str, meta_fn, budget: int) -> dict:
    """Process ``state`` (lazy raw, channels not yet picked) into ``writer``'s store; returns the result dict.

    ``meta_fn(state, sfreq, n_times, starts, labels)`` builds the recording's metadata (shared with ``run.py``).
    """
    from neurofm.data.store import atomic_path
    from neurofm.io.channels import DATA_TYPES
    from neurofm.preprocessing.steps import pick, welch_psd, window_plan

    if not state.raw.preload and state.raw.n_times * len(state.raw.ch_names) * BYTES_PER_SAMPLE <= budget:
        state.raw.load_data(verbose="error")  # fits the budget: read once, not once per pass (QC head, statistics, chunks)
    first = recipe.steps[0] if recipe.steps else None
    pick(state, first[1] if first and first[0] == "pick" else R.Pick(types=list(DATA_TYPES)))
    probe, matrix, stages = plan(state, recipe, budget)
    raw, picks = state.raw, state.picks
    zero_nan = [i for i, n in enumerate(picks) if n in state.bads]
    target = state.rec.target if state.rec.target and state.rec.target in raw.ch_names else None

    identity = matrix.shape == (len(picks), len(picks)) and np.array_equal(matrix, np.eye(len(picks)))

    def source(lo: int, hi: int) -> np.ndarray:
        x = raw.get_data(picks=picks, start=lo, stop=hi)
        if zero_nan:
            x[zero_nan] = np.where(np.isfinite(x[zero_nan]), x[zero_nan], 0.0)
        x = x.astype(np.float32)
        return x if identity else matrix @ x

    chain = Chain(source, raw.n_times, stages)
    sf = float(probe.raw.info["sfreq"])
    w = recipe.window
    n_win = int(round(w.window_s * sf))
    starts, labels = window_plan(state, w, recipe.name, chain.n_out, sf)
    n_head = min(int(sf * 30), chain.n_out)  # QC "after": the first 30 s of the processed signal, as in memory

    def qc_after(head: np.ndarray) -> None:
        if head.shape[1] >= 8:
            f, p = welch_psd(np.where(np.isfinite(head), head, 0.0), sf)
            state.psd["after"] = (f, np.log10(np.maximum(p, 1e-20)).mean(0))

    state.table, state.interpolated = probe.table, probe.interpolated

    dtype = np.dtype(recipe.output.dtype)
    n_ch = matrix.shape[0]
    shape = (len(starts), n_ch, n_win)
    # a chunk reads its span plus the filters' edges on both sides: both must fit the budget
    per_chunk = budget // (BYTES_PER_SAMPLE * max(len(picks), 1)) - 2 * chain.context()
    out_per_chunk = max(n_win, int(per_chunk * chain.n_out / max(raw.n_times, 1)))
    if per_chunk * chain.n_out < n_win * raw.n_times:
        need = (n_win * raw.n_times / max(chain.n_out, 1) + 2 * chain.context()) * BYTES_PER_SAMPLE * len(picks)
        state.notes.append(f"memory budget {budget / 2**20:.0f} MB is below one window plus the filters' edges "
                           f"({need / 2**20:.0f} MB): used that")
    tchain = None
    if target is not None:
        sf_in = float(raw.info["sfreq"])  # the target is only resampled (its own anti-alias stages, not fused)
        t_stages = antialias_fir(sf_in, sf) if abs(sf_in - sf) > 1e-6 else []
        tchain = Chain(lambda lo, hi: raw.get_data(picks=[target], start=lo, stop=hi).astype(np.float32),
                       raw.n_times, t_stages)
    writer.unmark(rec_id)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(writer.shards / f"{rec_id}.npy"))
        ttmp = stack.enter_context(atomic_path(writer.shards / f"{rec_id}.target.npy")) if tchain else None
        fid = stack.enter_context(open(tmp, "wb"))
        tfid = stack.enter_context(open(ttmp, "wb")) if tchain else None
        base = _npy_header(fid, shape, dtype)
        tbase = _npy_header(tfid, (len(starts), n_win), np.dtype("float32")) if tchain else 0
        order = np.argsort(starts, kind="stable")
        i = 0
        while i < len(order):  # a group: windows whose span fits one chunk
            j, s0 = i + 1, int(starts[order[i]])
            while j < len(order) and starts[order[j]] + n_win - s0 <= out_per_chunk:
                j += 1
            s1 = int(starts[order[j - 1]]) + n_win
            block = chain.span(s0, s1) * np.float32(1e6)
            if "after" not in state.psd and s0 == 0 and s1 >= n_head:
                qc_after(block[:, :n_head])  # the first chunk covers it: no extra pass
            tblock = tchain.span(s0, s1) * np.float32(1e6) if tchain else None
            for k in order[i:j]:
                s = int(starts[k]) - s0
                os.pwrite(fid.fileno(), np.ascontiguousarray(block[:, s: s + n_win], dtype=dtype).tobytes(),
                          base + int(k) * n_ch * n_win * dtype.itemsize)
                if tchain:
                    os.pwrite(tfid.fileno(), np.ascontiguousarray(tblock[0, s: s + n_win], dtype=np.float32).tobytes(),
                              tbase + int(k) * n_win * 4)
            i = j
        fid.flush()
        if tfid:
            tfid.flush()
    if "after" not in state.psd:
        qc_after(chain.span(0, n_head) * np.float32(1e6))
    writer.finish(rec_id, meta_fn(state, sf, n_win, starts, labels), shape=shape, dtype=dtype,
                  has_target=tchain is not None, qc=state.qc_arrays())
    return dict(n_windows=shape[0], n_chans=n_ch)


def _npy_header(fid, shape: tuple, dtype: np.dtype) -> int:
    """Write the ``.npy`` header ``np.save`` would write for this shape and dtype; return its length."""
    np.lib.format.write_array_header_1_0(fid, dict(descr=np.lib.format.dtype_to_descr(dtype), fortran_order=False,
                                                   shape=tuple(int(s) for s in shape)))
    fid.flush()
    return fid.tell()


def worker_budget(max_memory: str | int | None, n_jobs: int, n_tasks: int) -> int:
    """Each worker's share of ``max_memory``: split evenly between the workers that will run at once."""
    workers = min(n_jobs if n_jobs > 0 else (os.cpu_count() or 1), max(n_tasks, 1))
    return parse_memory(max_memory) // max(workers, 1)


def worker_pool(jobs, n_jobs: int):
    """Run joblib ``delayed`` calls in ``n_jobs`` worker processes; yield their results as they complete.

    Processes, not threads: MNE's readers set global warning filters. On Linux the workers are forked from
    this process once the readers and filters they need are imported, so none of them pays the ~2 s of
    importing MNE and SciPy again, as loky's fresh interpreters do (with 2 jobs on 62 short recordings that
    start-up was a third of the wall time); elsewhere, or with ``NEUROFM_WORKERS=loky``, joblib's loky.
    """
    import multiprocessing

    from joblib import Parallel, effective_n_jobs

    if os.environ.get("NEUROFM_WORKERS", "fork") != "fork" or "fork" not in multiprocessing.get_all_start_methods():
        yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    import mne.filter  # noqa: F401  (imported before the fork: inherited by every worker)
    import mne.io  # noqa: F401
    import scipy.fft  # noqa: F401
    import scipy.signal  # noqa: F401

    from neurofm._errors import NeurofmError

    try:
        with ProcessPoolExecutor(effective_n_jobs(n_jobs), mp_context=multiprocessing.get_context("fork")) as pool:
            for done in as_completed([pool.submit(fn, *args, **kwargs) for fn, args, kwargs in jobs]):
                yield done.result()
    except BrokenProcessPool:
        raise NeurofmError("a preprocessing worker process died (killed by the system, most often for lack of "
                           "memory); the recordings finished before are kept in the store, the rest were not processed.",
                           hint="rerun the same command with a lower --max-memory or --n-jobs: finished "
                                "recordings are kept and skipped.") from None


def limited(fn, *args, **kwargs):
    """Run ``fn`` with nested BLAS/OpenMP pools pinned to one thread (inside a ``--n-jobs`` worker)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return fn(*args, **kwargs)
