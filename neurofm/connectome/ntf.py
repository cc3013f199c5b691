"""Non-negative CP (tensor factorisation) by HALS, factor match score and rank selection.

The dynamic functional connectome factorises the affinity tensor ``X`` ``(n_pairs, n_windows,
n_subjects)`` as ``X ≈ Σ_r w_r a_r ⊗ b_r ⊗ c_r`` with non-negative factors (Dyballa et al., ICLR
2024). :func:`ntf_hals` fits any order ``N >= 2`` by HALS (Cichocki & Phan 2009), fast because of
(1) two tensor-sized GEMMs per iteration whatever ``N``: ``X`` is viewed, never copied or unfolded,
as ``Xm`` ``(prod(dims[:h]), prod(dims[h:]))``; ``Xm @ KR(right factors)`` serves modes ``< h`` and
``KR(left factors).T @ Xm`` the others, each after a small in-block contraction; (2) several HALS
sweeps per MTTKRP (Gillis & Glineur 2012); (3) extrapolation with restarts (Ang & Gillis 2019);
(4) the error from ``||X||^2 - 2 <X, M> + ||M||^2`` (last MTTKRP and Grams), never a reconstruction.
Factors are kept transposed, ``(R, I_n)``, so that row updates touch contiguous memory. Rank
selection lives in :mod:`neurofm.connectome.rank`.
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass, field
from functools import reduce
from string import ascii_lowercase

import numpy as np
from einops import rearrange

__all__ = ["NTFResult", "ntf_hals"]

_EPS = 1e-12  # floor of every factor entry
_INNER_STOP = 1e-2  # inner sweeps stop when a sweep moves the factor < this × the first sweep's move
_MAX_INNER = 20  # cap of the automatic number of inner sweeps
_ROW_OVERHEAD = 20_000  # interpreter cost of one NumPy row update in flop equivalents (torch: 4x)
_GROW, _GROW_MAX, _SHRINK = 1.01, 1.005, 1.5  # extrapolation step adaptation (as Ang & Gillis 2019)
_REBALANCE_EVERY = 10  # iterations between equalisations of the component norms across modes
_GRAM_INIT_MAX = 4096  # "svd" start of a mode via its (I_n, I_n) Gram up to this size, else seeded random


@dataclass
class NTFResult:
    """A fitted model ``X ≈ Σ_r weights[r] · factors[0][:, r] ⊗ factors[1][:, r] ⊗ ...``.

    Attributes
    ----------
    weights : np.ndarray, shape (R,)
        Component magnitudes (product of the factor column norms).
    factors : list of np.ndarray, each (I_n, R)
        Non-negative, unit-norm columns (all-zero only for a vanished component, of weight 0).
    errors : list of float
        Relative error ``||X - M||_F / ||X||_F`` after each outer iteration.
    n_iter, converged, seconds : int, bool, float
        Iterations run; whether ``tol``/``target_fit`` stopped the fit; wall time (init included).
    """

    weights: np.ndarray
    factors: list[np.ndarray]
    errors: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    seconds: float = 0.0

    @property
    def fit(self) -> float:
        """``1 - errors[-1]`` (1 is a perfect fit); NaN before any iteration."""
        return 1.0 - self.errors[-1] if self.errors else float("nan")

    def reconstruct(self) -> np.ndarray:
        """The model tensor, shape ``(I_0, ..., I_{N-1})``."""
        first = self.factors[0] * self.weights[None, :].astype(self.factors[0].dtype)
        rest = _khatri_rao_t([f.T for f in self.factors[1:]])  # (R, I_1 · I_2 ...)
        return (first @ rest).reshape(tuple(f.shape[0] for f in self.factors))

    def sort_by_weight(self) -> NTFResult:
        """A copy with the components in decreasing order of weight."""
        order = np.argsort(-self.weights, kind="stable")
        return NTFResult(self.weights[order].copy(), [f[:, order].copy() for f in self.factors],
                         list(self.errors), self.n_iter, self.converged, self.seconds)


class _Ops:
    """The few array operations that differ between NumPy and torch."""

    def __init__(self, name: str, dtype, device=None):
        self.name, self.np_dtype = name, np.dtype(dtype)
        if name == "numpy":
            self.asarray = lambda a: np.ascontiguousarray(a, dtype=self.np_dtype)
            self.to_numpy = np.asarray
            self.clamp_ = lambda a, lo: np.maximum(a, lo, out=a)
            self.total = lambda a: float(np.sum(a, dtype=np.float64))
            self.copy, self.einsum = np.copy, np.einsum
            self.f64 = lambda a: a.astype(np.float64)
            self.tensordot = lambda a, b, axes: np.tensordot(a, b, axes=axes)
            return
        import torch

        tdt = {np.dtype("float32"): torch.float32, np.dtype("float64"): torch.float64}[self.np_dtype]
        dev = torch.device(device)
        self.asarray = lambda a: (a.to(device=dev, dtype=tdt).contiguous() if isinstance(a, torch.Tensor)
                                  else torch.from_numpy(np.ascontiguousarray(a, dtype=self.np_dtype)).to(dev))
        self.to_numpy = lambda a: a.detach().cpu().numpy()
        self.clamp_ = lambda a, lo: a.clamp_(min=lo)
        self.total = lambda a: float(a.sum(dtype=torch.float64))
        self.copy, self.einsum = torch.clone, torch.einsum
        self.f64 = lambda a: a.double()
        self.tensordot = lambda a, b, axes: torch.tensordot(a, b, dims=axes)


def _resolve_backend(backend: str, device, dtype) -> _Ops:
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"backend='numpy' runs on the CPU only, got device={device!r}")
        return _Ops("numpy", dtype)
    import torch  # "auto" imports torch (about 2 s the first time) to ask whether CUDA is there

    cuda = torch.cuda.is_available()
    if backend == "auto" and device is None and not cuda:
        return _Ops("numpy", dtype)
    return _Ops("torch", dtype, device if device is not None else ("cuda" if cuda else "cpu"))


def _khatri_rao_t(rows: list):
    """Row-wise Kronecker product ``(R, I_a), (R, I_b), ... -> (R, I_a · I_b · ...)`` (C order)."""
    return reduce(lambda a, b: rearrange(a[:, :, None] * b[:, None, :], "r i j -> r (i j)"), rows)


def _choose_split(shape: tuple[int, ...]) -> int:
    """Block split ``h`` (``1 <= h < N``) minimising ``prod(shape[:h]) + prod(shape[h:])``."""
    costs = [int(np.prod(shape[:h])) + int(np.prod(shape[h:])) for h in range(1, len(shape))]
    return 1 + int(np.argmin(costs))


def _block_mttkrp(part, block_rows: list, pos: int, ops: _Ops):
    """MTTKRP ``(R, I_pos)`` of a block's ``pos``-th mode from ``part`` ``(R, I_a, I_b, ...)``, the
    tensor contracted with every factor outside the block (``block_rows``: the block's factors)."""
    if len(block_rows) == 1:
        return part
    letters = ascii_lowercase[: len(block_rows)]
    specs = ["z" + letters] + ["z" + c for i, c in enumerate(letters) if i != pos]
    others = [f for i, f in enumerate(block_rows) if i != pos]
    return ops.einsum(",".join(specs) + "->z" + letters[pos], part, *others)


def _gram_except(grams: list, skip: int | None = None):
    """Hadamard product of every ``(R, R)`` Gram but ``grams[skip]`` (the HALS normal matrix)."""
    return reduce(operator.mul, [g for i, g in enumerate(grams) if i != skip])


def _hals_sweep(ft, m, v, ops: _Ops) -> None:
    """One Gauss-Seidel pass over the rows of ``ft`` ``(R, I)``, in place.

    Row ``r`` becomes ``max(eps, ft[r] + (m[r] - v[r] @ ft) / v[r, r])``, the exact non-negative
    least-squares minimiser for that row given the others (``m`` MTTKRP, ``v`` Gram product). A row
    whose ``v[r, r]`` is 0 (a vanished component in another mode) is left as it is.
    """
    d = ops.to_numpy(v.diagonal()).astype(np.float64)  # one device sync per pass, not per row
    scale = ops.asarray(np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0))[:, None]
    m_s, v_s = m * scale, v * scale  # rows pre-divided by v[r, r]: 4 array operations per row below
    for r in np.flatnonzero(d > 0).tolist():
        row = ft[r]
        row += m_s[r] - v_s[r] @ ft
        ops.clamp_(row, _EPS)


def _hals_update(ft, m, v, n_inner: int, ops: _Ops) -> None:
    """Up to ``n_inner`` sweeps; stops once a sweep moves ``ft`` by < 1 % of the first sweep's move."""
    first = None
    for _ in range(n_inner):
        before = ops.copy(ft) if n_inner > 1 else None
        _hals_sweep(ft, m, v, ops)
        move = 0.0 if before is None else ops.total((ft - before) ** 2)
        if first is not None and move <= _INNER_STOP**2 * first:
            return
        first = move if first is None else first


def _auto_inner(shape: tuple[int, ...], rank: int, backend: str) -> list[int]:
    """Sweeps per mode ``1 + (MTTKRP cost) / (2 · sweep cost)``, capped (Gillis & Glineur 2012)."""
    mttkrp = 2.0 * float(np.prod(shape)) * rank / len(shape)  # two GEMMs per iteration, shared by the modes
    overhead = _ROW_OVERHEAD * (4 if backend == "torch" else 1)
    return [min(_MAX_INNER, 1 + int(0.5 * mttkrp / (dim * rank * (rank + 2) + rank * overhead))) for dim in shape]


def _check_tensor(X, rank, dtype) -> tuple[np.ndarray, np.dtype]:
    """The tensor as NumPy (no copy when it is one) and the working dtype, or a ValueError."""
    x = X.detach().cpu().numpy() if type(X).__module__.startswith("torch") else np.asarray(X)
    dt = np.dtype(dtype or (x.dtype if x.dtype in (np.float32, np.float64) else np.float32 if x.dtype == np.float16
                            else np.float64))
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    if x.ndim < 2 or x.size == 0:
        raise ValueError(f"ntf_hals needs a non-empty tensor of order >= 2, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"ntf_hals needs a real tensor, got dtype {x.dtype}")
    if isinstance(rank, bool) or int(rank) != rank or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}")
    lo, hi = float(x.min()), float(x.max())  # NaN propagates through min/max: no (n,)-sized mask needed
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("the tensor contains NaN or infinite values; fill or drop them before factorising")
    if lo < 0:
        raise ValueError(f"non-negative CP needs a non-negative tensor; its minimum is {lo:g}")
    if lo == hi:
        what = "all zeros" if hi == 0 else f"constant ({hi:g} everywhere, zero variance)"
        raise ValueError(f"the tensor of shape {x.shape} is {what}: there is no structure to factorise")
    return x, dt


def _squared_norm(x: np.ndarray, chunk: int = 1 << 18) -> float:
    """``||x||^2`` accumulated in float64, a chunk at a time (no float64 copy of the whole tensor)."""
    flat = x.reshape(-1)
    return sum(float(p @ p) for p in (flat[i: i + chunk].astype(np.float64) for i in range(0, flat.size, chunk)))


def _svd_rows(x, mode: int, rank: int, rng: np.random.Generator, ops: _Ops) -> np.ndarray:
    """``|leading left singular vectors|`` ``(R, I_n)`` of the mode-``mode`` unfolding.

    Eigenvectors (float64) of the unfolding's ``(I_n, I_n)`` Gram, from chunked tensordots (no unfolded
    copy of ``X``). Rows beyond ``I_n`` are seeded uniform. (NNDSVD's larger-sign-part started some
    real connectome tensors closer but sent one to a much worse local minimum: hence ``|u|``.)
    """
    x3 = x.reshape(int(np.prod(x.shape[:mode])), x.shape[mode], -1)
    step = max(1, (1 << 18) // (x3.shape[1] * x3.shape[2]))  # chunks of ~256k entries: tensordot copies them
    gram = sum(ops.to_numpy(ops.tensordot(c, c, ([0, 2], [0, 2]))).astype(np.float64)
               for c in (x3[i: i + step] for i in range(0, x3.shape[0], step)))
    lead = np.linalg.eigh(gram)[1][:, ::-1][:, : min(rank, x.shape[mode])].T  # descending eigenvalues
    pad = rng.uniform(size=(rank - len(lead), x.shape[mode])) / np.sqrt(x.shape[mode])
    return np.concatenate([np.maximum(np.abs(lead), _EPS), pad])


def _least_squares_rows(m, v, ops: _Ops):
    """``max(eps, pinv(v) m)`` with the optimal overall scale: a non-negative start ``(R, I)``."""
    pinv = ops.asarray(np.linalg.pinv(ops.to_numpy(v).astype(np.float64), hermitian=True))
    sol = ops.clamp_(pinv @ m, _EPS)
    den = ops.total(v * (sol @ sol.T))
    sol *= max(ops.total(m * sol) / den if den > 0 else 1.0, _EPS)
    return sol


class _State:
    """Transposed factors ``rows[n]`` ``(R, I_n)``, their Grams, ``X`` as the matrix ``xm``, and with
    extrapolation the plain (not extrapolated) HALS iterates ``prev`` and the step ``beta``."""

    def __init__(self, x, rows: list, split: int, ops: _Ops):
        self.ops, self.split, self.shape = ops, split, tuple(x.shape)
        self.xm = x.reshape(int(np.prod(self.shape[:split])), -1)  # a view
        self.rows, self.grams, self.prev = rows, [f @ f.T for f in rows], None
        self.blocks = (range(0, split), range(split, len(self.shape)))

    def partial(self, left: bool):
        """``X`` contracted with every factor of the other block: ``(R, *this block's dims)``."""
        h, rows = self.split, self.rows
        if left:  # the two GEMM orientations measured fastest (OpenBLAS and MKL, float32)
            t = (self.xm @ _khatri_rao_t(rows[h:]).T).T
            return t.reshape((t.shape[0], *self.shape[:h]))
        t = _khatri_rao_t(rows[:h]) @ self.xm
        return t.reshape((t.shape[0], *self.shape[h:]))

    def set_rows(self, mode: int, rows) -> None:
        self.rows[mode], self.grams[mode] = rows, rows @ rows.T

    def iterate(self, n_inner: list[int], beta: float | None):
        """One outer iteration (every mode once, in order); returns the last mode's MTTKRP.

        With ``beta``, each updated factor ``F`` goes to ``prev`` and the following updates use
        ``max(eps, F + beta (F - F_before))`` instead.
        """
        m = None
        for left, block in zip((True, False), self.blocks, strict=True):
            part = self.partial(left)
            for mode in block:
                m = _block_mttkrp(part, [self.rows[i] for i in block], mode - block.start, self.ops)
                new = self.rows[mode]
                _hals_update(new, m, _gram_except(self.grams, mode), n_inner[mode], self.ops)
                if beta is not None:
                    new, self.prev[mode] = self.ops.clamp_(new + beta * (new - self.prev[mode]), _EPS), new
                self.set_rows(mode, new)
        return m

    def point(self) -> list:
        """Factors of the model whose error :meth:`error` gives (the last mode not extrapolated)."""
        return self.rows[:-1] + [self.rows[-1] if self.prev is None else self.prev[-1]]

    def error(self, m_last, norm2: float) -> float:
        """Relative error of :meth:`point` from ``||X||^2``, ``<X, M>`` (last MTTKRP) and Grams.

        The Grams are accumulated in float64 over blocks of ~65k entries (float32 Grams would add
        ~1e-7 ||X||^2 of noise; blocks avoid a float64 copy of a whole factor).
        """
        grams = []
        for f in self.point():
            step = max(1, (1 << 16) // f.shape[0])
            grams.append(sum(p @ p.T for p in (self.ops.f64(f[:, i: i + step]) for i in range(0, f.shape[1], step))))
        err2 = norm2 - 2.0 * self.ops.total(m_last * self.point()[-1]) + self.ops.total(_gram_except(grams))
        return float(np.sqrt(max(err2, 0.0) / norm2))

    def start_extrapolation(self) -> None:
        self.prev, self.beta, self.beta_max, self.last = [self.ops.copy(r) for r in self.rows], 0.5, 1.0, np.inf

    def adapt(self, err: float) -> bool:
        """Ang & Gillis's (2019) step rule; False (after restarting from the plain iterates) on a rise.

        While the error does not rise ``beta`` grows by ``_GROW`` up to ``beta_max``, which creeps up
        to 1; a rise makes the failed ``beta`` the new ``beta_max`` and shrinks ``beta`` by ``_SHRINK``.
        """
        ok, self.last = err <= self.last, err
        if ok:
            self.beta, self.beta_max = min(self.beta_max, _GROW * self.beta), min(1.0, _GROW_MAX * self.beta_max)
        else:
            self.beta_max, self.beta = self.beta, self.beta / _SHRINK
            for mode, f in enumerate(self.prev):
                self.set_rows(mode, self.ops.copy(f))
        return ok

    def rebalance(self) -> None:
        """Give each component the same column norm in every mode (the model is unchanged).

        Without it, on real tensors a component shrinking towards the eps floor in one mode grew
        without bound in another (norms of 1e11 after 1500 iterations) and then died.
        """
        norms = np.sqrt(np.maximum(np.stack([self.ops.to_numpy(g.diagonal()) for g in self.grams]), 0.0))
        if np.all(norms > 0):
            norms = norms.astype(np.float64)  # (N, R)
            for i, nrm in enumerate(norms):
                s = self.ops.asarray(np.exp(np.log(norms).mean(axis=0)) / nrm)
                self.rows[i] *= s[:, None]
                self.grams[i] *= s[:, None] * s[None, :]
                if self.prev is not None:
                    self.prev[i] *= s[:, None]


def _initial_state(x, rank: int, init: str, rng, ops: _Ops) -> _State:
    """Every mode but the largest from ``init``; the largest by least squares given the others."""
    if init not in ("svd", "random"):
        raise ValueError(f"init must be 'svd' or 'random', got {init!r}")
    big = int(np.argmax(x.shape))
    rows = [np.ones((rank, 1)) if n == big  # a placeholder: the largest mode is solved below
            else _svd_rows(x, n, rank, rng, ops) if init == "svd" and dim <= _GRAM_INIT_MAX
            else rng.uniform(size=(rank, dim)) for n, dim in enumerate(x.shape)]
    state = _State(x, [ops.asarray(r) for r in rows], _choose_split(tuple(x.shape)), ops)
    block = state.blocks[0 if big < state.split else 1]
    m = _block_mttkrp(state.partial(big < state.split), [state.rows[i] for i in block], big - block.start, ops)
    state.set_rows(big, _least_squares_rows(m, _gram_except(state.grams, big), ops))
    return state


def _result(ops: _Ops, rows: list, errors: list[float], converged: bool, t0: float) -> NTFResult:
    """Unit-norm ``(I_n, R)`` NumPy factors and weights (product of the column norms)."""
    rows = [ops.to_numpy(r) for r in rows]
    norms = np.array([[float(np.dot(row.astype(np.float64), row.astype(np.float64))) for row in r]
                      for r in rows]) ** 0.5  # (N, R), one row in float64 at a time
    inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0).astype(ops.np_dtype)
    factors = [np.ascontiguousarray((r * s[:, None]).T) for r, s in zip(rows, inv, strict=True)]
    return NTFResult(np.prod(norms, axis=0).astype(ops.np_dtype), factors, errors, len(errors), converged,
                     time.perf_counter() - t0)


def ntf_hals(X, rank: int, *, n_iter_max: int = 1000, tol: float = 1e-6, init: str = "svd",
             random_state=None, backend: str = "auto", device=None, dtype=None, verbose: bool = False,
             target_fit: float | None = None, n_inner: int | str = "auto", extrapolate: bool = True) -> NTFResult:
    """Non-negative CP decomposition of an ``N``-way tensor (``N >= 2``) by accelerated HALS.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (I_0, ..., I_{N-1})
        Non-negative tensor, e.g. affinities ``(n_pairs, n_windows, n_subjects)`` in [0, 1]. Not modified.
    rank : int
        Number of components ``R``. A rank above a dimension ``I_n`` is allowed, but the fit is then
        not unique (more components than entries in that mode); its ``"svd"`` start is padded randomly.
    n_iter_max : int
        Maximum number of outer iterations (each updates every factor).
    tol : float
        Stop when the error's relative decrease ``(e[k-1] - e[k]) / e[k-1]`` is below ``tol`` (0: never).
        Set it explicitly. float32 errors carry ~``1e-7 / e`` relative noise: a tiny ``tol`` on a
        near-exact float32 fit stops on noise.
    init : {"svd", "random"}
        ``"svd"``: absolute leading left singular vectors of each unfolding (deterministic);
        ``"random"``: uniform [0, 1) from ``random_state``. Then the largest mode (the costliest
        unfolding) starts from the clipped, optimally scaled least-squares solution given the others.
    random_state : None, int or numpy.random.Generator
        Seed for ``"random"`` and for the padding rows of ``"svd"`` (seed 0 there when None).
    backend, device : {"auto", "numpy", "torch"}, str or torch.device
        ``"auto"``: torch when CUDA is available or ``device`` is given, else NumPy. Torch's device
        defaults to ``"cuda"`` when available, else ``"cpu"``.
    dtype : {None, "float32", "float64"}
        Working precision; default float32 for float32/float16 input, float64 otherwise.
    verbose : bool
        Print the error every 50 iterations and at the end.
    target_fit : float, optional
        Also stop once the fit ``1 - error`` reaches this value (to time "time to a given fit").
    n_inner : int or "auto"
        Most HALS sweeps per factor and iteration (early exit when a sweep moves the factor by < 1 %
        of the first sweep's move). ``"auto"``: ``1 + MTTKRP cost / (2 · sweep cost)``, at most 20.
    extrapolate : bool
        Extrapolation with restarts (Ang & Gillis 2019): factors are updated from an extrapolation
        of the others' last two iterates; a rise of the error restarts from the plain iterates with a
        smaller step. It cut the iterations to a given fit 2-10x on the real tensors of
        ``scripts/bench/connectome.py`` (not on every easy synthetic one). The best model seen is
        returned, ``errors`` is the running minimum, and ``tol`` ignores restarts. False: plain,
        monotone HALS (which a rise of the error stops).

    Returns
    -------
    NTFResult
        Unit-norm NumPy factors ``(I_n, R)``, weights ``(R,)`` and the per-iteration errors. A
        ``ValueError`` is raised for an all-zero or constant (zero-variance) tensor, negative or
        non-finite entries, an order below 2 or bad arguments.
    """
    t0 = time.perf_counter()
    x_np, dt = _check_tensor(X, rank, dtype)
    ops = _resolve_backend(backend, device, dt)
    x = ops.asarray(X if ops.name == "torch" and type(X).__module__.startswith("torch") else x_np)
    rank = int(rank)
    inner = _auto_inner(x_np.shape, rank, ops.name) if n_inner == "auto" else [int(n_inner)] * x_np.ndim
    norm2 = _squared_norm(x_np)
    seed = 0 if random_state is None and init == "svd" else random_state  # "svd" stays deterministic
    state = _initial_state(x, rank, init, np.random.default_rng(seed), ops)
    if extrapolate:
        state.start_extrapolation()
    errors: list[float] = []
    converged, last, best = False, np.inf, None
    for it in range(int(n_iter_max)):
        err = state.error(state.iterate(inner, state.beta if extrapolate else None), norm2)
        stalled = last - err < tol * last  # a rise counts too: plain HALS only rises on rounding noise
        if extrapolate and (best is None or err < errors[-1]):
            best = [ops.copy(f) for f in state.point()]
        if extrapolate and not state.adapt(err):
            stalled = False
        errors.append(min(err, errors[-1]) if extrapolate and errors else err)
        last = err
        if it % _REBALANCE_EVERY == 0:
            state.rebalance()
        if verbose and it % 50 == 0:
            print(f"ntf_hals: iteration {it + 1}, relative error {errors[-1]:.6g}")
        if (target_fit is not None and 1.0 - errors[-1] >= target_fit) or (tol and it > 0 and stalled):
            converged = True
            break
    if verbose:
        print(f"ntf_hals: {len(errors)} iterations, relative error {errors[-1]:.6g}, converged={converged}")
    return _result(ops, state.point() if best is None else best, errors, converged, t0)
