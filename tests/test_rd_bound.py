"""scripts/bench/rd_bound.py: reverse water-filling, the Gaussian distortion–rate function it reports."""

from __future__ import annotations

import numpy as np
import pytest

from tests.bench_scripts import load_bench


def test_water_filling_matches_the_closed_forms():
    rd = load_bench("rd_bound")
    # d equal variances at R bits: every component gets R/d bits, D = d·σ²·2^(-2R/d)
    assert rd.water_fill(np.full(8, 2.0), 16.0) == pytest.approx(8 * 2.0 * 2 ** (-4), rel=1e-6)
    # one strong and one weak component at few bits: the weak one gets none (its whole variance is the error)
    strong, weak = 100.0, 0.01
    assert rd.water_fill(np.array([strong, weak]), 2.0) == pytest.approx(strong * 2 ** -4 + weak, rel=1e-6)
    # more bits never cost more error
    v = np.geomspace(1, 1e-3, 20)
    errs = [rd.water_fill(v, b) for b in (5, 10, 20, 40)]
    assert all(b < a for a, b in zip(errs, errs[1:], strict=False))
