"""Non-negative CP by HALS: recovery of planted factors, monotone error, backends, rank choice."""

from __future__ import annotations

import numpy as np
import pytest

from neurofm.connectome.ntf import NTFResult, ntf_hals
from neurofm.connectome.rank import factor_match_score, flat_components, rank_scan


def planted(shape=(60, 30, 12), rank=3, noise=0.0, seed=0, dtype=np.float64, flat_time=False):
    """Exact non-negative CP tensor (+ uniform noise of ``noise`` × the mean), scaled to [0, 1].

    Factors are sparse-ish (uniform cubed) so the components are well separated. With
    ``flat_time`` the last component's mode-1 factor is constant (a flat baseline).
    """
    rng = np.random.default_rng(seed)
    factors = [rng.uniform(size=(n, rank)) ** 3 for n in shape]
    if flat_time:
        factors[1][:, -1] = 1.0
    x = np.einsum("ir,jr,kr->ijk", *factors)
    x = x + noise * x.mean() * rng.uniform(size=shape)
    scale = x.max()
    return (x / scale).astype(dtype), NTFResult(np.ones(rank), factors)


def test_exact_planted_tensor_is_recovered():
    x, truth = planted()
    res = ntf_hals(x, 3, tol=1e-10, n_iter_max=2000, backend="numpy")
    assert res.fit >= 0.999
    assert factor_match_score(res, truth) >= 0.99
    # the cheap error formula agrees with the real reconstruction error
    real = np.linalg.norm(res.reconstruct() - x) / np.linalg.norm(x)
    assert real == pytest.approx(res.errors[-1], abs=1e-6)


def test_float32_planted_tensor_is_recovered():
    x, truth = planted(dtype=np.float32, seed=1)
    res = ntf_hals(x, 3, tol=0, n_iter_max=300, backend="numpy")
    assert res.factors[0].dtype == np.float32 and res.weights.dtype == np.float32
    real = 1 - np.linalg.norm(res.reconstruct().astype(np.float64) - x) / np.linalg.norm(x.astype(np.float64))
    assert real >= 0.999 and res.fit >= 0.999
    assert factor_match_score(res, truth) >= 0.99


@pytest.mark.parametrize("init", ["svd", "random"])
@pytest.mark.parametrize("extrapolate", [False, True])
def test_error_decreases_monotonically(init, extrapolate):
    # plain HALS is monotone by construction; with extrapolation ``errors`` is the best model so far
    x, _ = planted(noise=0.5, seed=2)
    res = ntf_hals(x, 4, tol=0, n_iter_max=150, init=init, random_state=0, backend="numpy",
                   extrapolate=extrapolate)
    assert len(res.errors) == res.n_iter == 150 and not res.converged
    assert np.all(np.diff(res.errors) <= 1e-10)
    assert res.errors[-1] < res.errors[0]
    real = np.linalg.norm(res.reconstruct() - x) / np.linalg.norm(x)
    assert real == pytest.approx(res.errors[-1], rel=1e-9)


def test_tol_and_target_fit_stop_the_fit():
    x, _ = planted(noise=0.5, seed=3, dtype=np.float32)
    loose = ntf_hals(x, 3, tol=1e-3, backend="numpy")
    tight = ntf_hals(x, 3, tol=1e-7, backend="numpy")
    assert loose.converged and loose.n_iter < tight.n_iter
    assert (loose.errors[-2] - loose.errors[-1]) < 1e-3 * loose.errors[-2]
    target = ntf_hals(x, 3, tol=0, target_fit=tight.fit - 0.01, n_iter_max=5000, backend="numpy")
    assert target.converged and target.fit >= tight.fit - 0.01 and target.n_iter < tight.n_iter


def test_numpy_and_torch_backends_agree():
    import torch  # a hard dependency of neurofm: never skipped
    x, _ = planted(noise=0.3, seed=4)
    kw = dict(tol=0, n_iter_max=40, n_inner=3)  # "auto" picks fewer inner sweeps for torch's dispatch cost
    a = ntf_hals(x, 3, backend="numpy", **kw)
    b = ntf_hals(x, 3, backend="torch", device="cpu", **kw)
    c = ntf_hals(torch.from_numpy(x), 3, backend="torch", device="cpu", **kw)
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-8)
    for fa, fb, fc in zip(a.factors, b.factors, c.factors, strict=True):
        np.testing.assert_allclose(fa, fb, atol=1e-7)
        np.testing.assert_allclose(fb, fc, atol=1e-12)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-7)


def test_rank_scan_chooses_the_planted_rank():
    x, _ = planted(shape=(40, 25, 10), rank=3, noise=0.1, seed=5)
    scan = rank_scan(x, [1, 2, 3, 4, 5], n_replicates=3, seed=0, tol=1e-6, n_iter_max=400, backend="numpy")
    assert scan.ranks == [1, 2, 3, 4, 5] and scan.errors.shape == (5, 3)
    assert scan.choose() == 3
    assert scan.similarity[2] >= 0.95
    assert set(scan.best) == {1, 2, 3, 4, 5} and scan.best[3].weights.shape == (3,)


def test_choose_rule():
    from neurofm.connectome.rank import RankScan

    errors = np.array([[0.5, 0.5], [0.3, 0.31], [0.2, 0.2], [0.195, 0.2], [0.1, 0.3]])
    scan = RankScan([1, 2, 3, 4, 5], errors, np.array([1.0, 0.95, 0.6, 0.99, 0.99]), {})
    # flattens at rank 4 (0.005 < 0.01): rank 5's drop does not count; rank 3 is unstable -> 2
    assert scan.choose(min_similarity=0.9, flat_tol=0.01) == 2
    assert scan.choose(min_similarity=0.5, flat_tol=0.01) == 3
    assert scan.choose(min_similarity=0.5, flat_tol=0.001) == 5
    assert scan.choose(min_similarity=1.1) == 1  # nothing stable: the smallest rank


def test_flat_components_flags_the_planted_baseline():
    x, truth = planted(shape=(50, 40, 10), rank=3, seed=6, flat_time=True)
    res = ntf_hals(x, 3, tol=1e-9, n_iter_max=1000, backend="numpy")
    flags = flat_components(res, mode=1, peak_ratio=None, cv_threshold=0.1)
    assert flags.sum() == 1
    assert np.array_equal(flat_components(res, mode=1), flags)  # the default peak-to-median rule agrees
    # it is the component matched to the planted flat one
    cos = np.abs(res.factors[0].T @ (truth.factors[0][:, -1] / np.linalg.norm(truth.factors[0][:, -1])))
    assert np.argmax(cos) == np.flatnonzero(flags)[0]
    assert not flat_components(res, mode=1, peak_ratio=None, cv_threshold=0.0).any()


def test_fit_at_least_as_good_as_tensorly():
    from tensorly.decomposition import non_negative_parafac_hals

    x, _ = planted(shape=(171, 40, 8), rank=5, noise=1.0, seed=7, dtype=np.float32)
    cp = non_negative_parafac_hals(x, 5)
    model = np.einsum("ir,jr,kr->ijk", *[np.asarray(f, np.float64) for f in cp.factors])
    tl_fit = 1 - np.linalg.norm(model - x) / np.linalg.norm(x.astype(np.float64))
    res = ntf_hals(x, 5, tol=1e-6, backend="numpy")
    ours = 1 - np.linalg.norm(res.reconstruct().astype(np.float64) - x) / np.linalg.norm(x.astype(np.float64))
    assert ours >= tl_fit - 1e-3


def test_result_helpers():
    x, truth = planted(seed=8)
    res = ntf_hals(x, 3, tol=1e-8, n_iter_max=500, backend="numpy")
    for f in res.factors:
        assert f.shape[1] == 3 and np.all(f >= 0)
        np.testing.assert_allclose(np.linalg.norm(f, axis=0), 1.0, rtol=1e-6)
    ordered = res.sort_by_weight()
    assert np.all(np.diff(ordered.weights) <= 0)
    np.testing.assert_allclose(ordered.reconstruct(), res.reconstruct(), atol=1e-10)
    assert res.fit == pytest.approx(1 - res.errors[-1]) and res.seconds > 0
    perm = NTFResult(truth.weights, [f[:, [2, 0, 1]] * 3.0 for f in truth.factors])
    assert factor_match_score(truth, perm) == pytest.approx(1.0)
    assert 0.0 <= factor_match_score(res, NTFResult(np.ones(2), [f[:, :2] for f in res.factors])) <= 1.0


@pytest.mark.parametrize("shape", [(30, 20), (12, 10, 8, 6)])
def test_other_orders(shape):
    rng = np.random.default_rng(9)
    factors = [rng.uniform(size=(n, 2)) ** 2 for n in shape]
    spec = ",".join(f"{c}r" for c in "abcd"[: len(shape)]) + "->" + "abcd"[: len(shape)]
    x = np.einsum(spec, *factors)
    res = ntf_hals(x, 2, tol=1e-10, n_iter_max=3000, backend="numpy")
    assert res.fit >= 0.999
    if len(shape) > 2:  # a matrix factorisation is not unique, a 4-way CP is
        assert factor_match_score(res, NTFResult(np.ones(2), factors)) >= 0.99


def test_rank_above_a_dimension_runs():
    x, _ = planted(shape=(30, 10, 3), rank=2, noise=0.2, seed=10)
    for init in ("svd", "random"):
        res = ntf_hals(x, 5, tol=1e-6, init=init, random_state=0, backend="numpy")
        assert [f.shape for f in res.factors] == [(30, 5), (10, 5), (3, 5)]
        assert np.all(np.isfinite(res.weights)) and all(np.all(np.isfinite(f)) for f in res.factors)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((5, 4, 3)), "all zeros"),
    (np.full((5, 4, 3), 0.7), "constant"),
    (-np.ones((5, 4, 3)) + np.eye(5)[:, :4, None], "non-negative"),
    (np.where(np.eye(5)[:, :4, None] > 0, np.nan, 1.0) * np.ones((5, 4, 3)), "NaN"),
    (np.ones(5), "order"),
])
def test_bad_tensors_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        ntf_hals(bad, 2, backend="numpy")


def test_bad_arguments_raise():
    x, _ = planted(shape=(10, 8, 4), seed=11)
    with pytest.raises(ValueError, match="rank"):
        ntf_hals(x, 0)
    with pytest.raises(ValueError, match="init"):
        ntf_hals(x, 2, init="nndsvd", backend="numpy")
    with pytest.raises(ValueError, match="backend"):
        ntf_hals(x, 2, backend="jax")
