"""The tokenizer benchmark's transform-coding reference (scripts/bench/pca_rvq.py): PCA + residual k-means VQ."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofm.data.dataset import WindowStore
from tests.bench_scripts import load_bench
from tests.models.test_waveform_tokenizer import noisy_eeg_like


def test_transform_reference_fits_and_decodes_every_level_and_code_prefix(eegmat_store):
    """Fitted on patches of a synthetic 1/f signal with rhythms, it gains at every level, a code prefix inside a level
    lands between its two levels, and the project's evaluation runs on it (codes, rates, usage)."""
    from neurofm.evaluation.tokenizer import evaluate_tokenizer

    pca_rvq = load_bench("pca_rvq")
    model = pca_rvq.PCARVQ(n_groups=4, group_dim=6, n_levels=3, codebook_size=32)
    x = noisy_eeg_like(400, seed=4).reshape(100, 4, 800) * 20
    xz = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)
    model.fit(xz.reshape(-1, 200), iters=10)
    w = model.basis
    assert torch.allclose(w @ w.T, torch.eye(24), atol=1e-4)
    test = noisy_eeg_like(40, seed=5).reshape(10, 4, 800) * 20
    enc = model.encode(test)
    assert enc["codes"].shape == (10, 4, 4, 4, 3) and (enc["codes"] >= 0).all()
    zerr = lambda rec: (((rec - test) / enc["std"]) ** 2).mean().item()  # noqa: E731
    errs = [zerr(model.decode(enc["codes"], enc["mean"], enc["std"], n_levels=n)) for n in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[1] < zerr(model.decode(enc["codes"], enc["mean"], enc["std"], n_codes=6)) < errs[0]
    assert model.bits_per_token(n_codes=6) == pytest.approx(30) and model.bits_per_token(2) == pytest.approx(40)
    res = evaluate_tokenizer(model, WindowStore(eegmat_store), np.arange(4), batch_size=4, codes=[5], dct=False)
    assert [p["codes"] for p in res["points"]] == [4, 5, 8, 12]
    assert all(np.isfinite(p["zmse"]) for p in res["points"])
