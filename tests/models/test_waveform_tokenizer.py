"""The waveform decoder, multi-resolution STFT loss, batched multi-scale RVQ and quantizer dropout."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from neurofm.models.layers import MultiScaleResidualVQ, multi_resolution_stft_loss
from neurofm.models.layers import rvq as rvq_module
from neurofm.models.layers.conv import MeanPool1d
from tests.models.conftest import tiny_tokenizer


def noisy_eeg_like(n: int, t: int = 800, seed: int = 0) -> torch.Tensor:
    """1/f-ish signals: cumulative sums of white noise plus a 10-Hz and a 35-Hz rhythm."""
    g = torch.Generator().manual_seed(seed)
    tt = torch.arange(t) / 200.0
    brown = torch.cumsum(torch.randn(n, t, generator=g), -1) * 0.1
    brown = brown - brown.mean(-1, keepdim=True)
    phase = torch.rand(n, 2, 1, generator=g) * 2 * math.pi
    return brown + torch.sin(2 * math.pi * 10 * tt + phase[:, 0]) + 0.3 * torch.sin(2 * math.pi * 35 * tt + phase[:, 1])


def test_stft_loss_is_zero_for_identical_signals_and_grows_with_distortion():
    x = noisy_eeg_like(8)
    assert multi_resolution_stft_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    losses = [multi_resolution_stft_loss(x + a * noise, x).item() for a in (0.01, 0.1, 1.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    # high-band loss: removing the 35-Hz rhythm (5 % of the power) is clearly seen on the log scale
    spec = torch.fft.rfft(x)
    spec[:, 4 * 30:] = 0
    lowpassed = torch.fft.irfft(spec, n=x.shape[-1])
    assert multi_resolution_stft_loss(lowpassed, x).item() > 5 * losses[0]
    with pytest.raises(ValueError, match="differ in shape"):
        multi_resolution_stft_loss(x, x[:, :400])


def test_waveform_decoder_emits_patches_and_reports_every_loss_term():
    torch.manual_seed(0)
    model = tiny_tokenizer(decoder="waveform", decoder_hidden=24, loss_weights=dict(stft=0.5, amp=0.2, diff=0.5))
    x = noisy_eeg_like(6).reshape(2, 3, 800) * 20
    out = model(x, pos=torch.randn(2, 3, 3) * 0.05)
    assert out.recon.shape == x.shape and out.codes.shape == (2, 3, 4, 4, 3)
    assert set(out.losses) == {"amp", "phase", "unit", "time", "stft", "diff", "vq", "loss"}
    assert out.losses["stft"] > 0 and out.losses["diff"] > 0 and torch.isfinite(out.losses["loss"])
    weighted = sum(model.loss_weights[k] * out.losses[k] for k in set(out.losses) - {"loss"})
    assert torch.allclose(out.losses["loss"], weighted)
    out.losses["loss"].backward()
    assert model.head[0].weight.grad is not None and model.skip.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="decoder='fft'"):
        tiny_tokenizer(decoder="fft")


@pytest.mark.parametrize("fast", [True, False])
def test_multi_scale_rvq_makes_one_quantizer_call_per_level_and_codes_decode_back(fast, monkeypatch):
    torch.manual_seed(0)
    rvq = MultiScaleResidualVQ(4, 3, 16, 8, kmeans_init=False, quantize_dropout=False).eval()
    assert rvq.fast
    rvq.fast = fast
    calls = []
    for level in rvq.levels:
        level.register_forward_hook(lambda *a: calls.append(1))
    fast_level = rvq_module._quantize_level
    monkeypatch.setattr(rvq_module, "_quantize_level", lambda *a: calls.append(1) or fast_level(*a))
    z = torch.randn(50, 4, 8)
    q, codes, loss = rvq(z)
    assert len(calls) == 3 and codes.shape == (50, 4, 3) and (codes >= 0).all()
    assert torch.allclose(rvq.lookup(codes), q, atol=1e-5)
    errs = [((rvq.lookup(codes, n) - z) ** 2).mean().item() for n in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2]
    assert len(rvq.codebooks()) == 4 and rvq.codebooks()[0].shape == (3, 16, 8)


def test_lean_quantizer_path_matches_the_library_forward_step_by_step():
    """The one-process fast path (argmin, gather, scatter-add EMA) trains the same codebooks as VectorQuantize."""
    torch.manual_seed(0)
    fast = MultiScaleResidualVQ(4, 3, 32, 8, dead_code_threshold=1.0, decay=0.5, quantize_dropout=False)
    lib = copy.deepcopy(fast)
    lib.fast = False
    replaced = []
    for level in fast.levels:
        level._codebook.replace = (lambda f: lambda *a, **k: replaced.append(1) or f(*a, **k))(level._codebook.replace)
    for step in range(4):   # step 0 runs the k-means initialisation; later steps re-seed dead codes
        z = torch.randn(1000, 4, 8) * (1 + step) + 2 * step   # drifting: codes die
        za, zb = z.clone().requires_grad_(), z.clone().requires_grad_()
        torch.manual_seed(step)
        qa, ca, la = fast(za)
        torch.manual_seed(step)
        qb, cb, lb = lib(zb)
        (qa.square().sum() + la).backward()
        (qb.square().sum() + lb).backward()
        assert torch.equal(ca, cb) and torch.allclose(qa, qb) and torch.allclose(la, lb)
        assert torch.allclose(za.grad, zb.grad, rtol=1e-4, atol=1e-4 * zb.grad.abs().max().item())
    for key, value in fast.state_dict().items():
        assert torch.allclose(value.float(), lib.state_dict()[key].float()), key
    assert replaced   # dead codes were re-seeded (the same ones, from the same draws) on both paths
    fast.eval()
    lib.eval()
    z = torch.randn(100, 4, 8)
    (qa, ca, _), (qb, cb, _) = fast(z), lib(z)
    assert torch.equal(ca, cb) and torch.allclose(qa, qb)


def test_mean_pool_equals_avg_pool_with_a_remainder():
    x = torch.randn(3, 8, 203)
    for k in (2, 3, 4):
        assert torch.allclose(MeanPool1d(k)(x), torch.nn.AvgPool1d(k)(x), atol=1e-6)


def test_quantizer_dropout_gives_a_monotone_rate_distortion_after_a_short_training():
    """Trained with random level prefixes, no added level raises the error and four levels beat one clearly.

    Measured here (seeds 0-1): errors [0.112, 0.083, 0.079, 0.078] and [0.114, 0.079, 0.075, 0.074]: four levels
    are 31-35 % below one (bound: 15 %); each level lowers the error (bound: at most +1 %).
    """
    torch.manual_seed(0)
    model = tiny_tokenizer(decoder="waveform", decoder_hidden=64, n_levels=4, codebook_size=16, code_dim=4,
                           dim=32, depth=0, decoder_depth=0, loss_weights=dict(amp=0, phase=0, unit=0, stft=0.1))
    x = noisy_eeg_like(32, seed=3).reshape(8, 4, 800) * 20
    pos = torch.randn(1, 4, 3).expand(8, 4, 3) * 0.05
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(150):
        out = model(x, pos=pos)
        out.losses["loss"].backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    enc = model.encode(x, pos=pos)
    xz = (x - enc["mean"]) / enc["std"]
    errs = [(((model.decode(enc["codes"], enc["mean"], enc["std"], pos=pos, n_levels=n) - enc["mean"]) / enc["std"]
              - xz) ** 2).mean().item() for n in (1, 2, 3, 4)]
    assert all(b <= 1.01 * a for a, b in zip(errs, errs[1:], strict=False)), errs
    assert errs[-1] < 0.85 * errs[0], errs


@pytest.mark.parametrize("fast", [True, False])
def test_a_code_prefix_that_ends_inside_a_level_is_a_rate_point_between_the_two_levels(fast):
    """Codes are ordered level by level, scale by scale: the first 4k codes are k levels, and a prefix in between
    decodes the missing scales of the last level as absent (-1 adds nothing), with an error in between."""
    torch.manual_seed(0)
    rvq = MultiScaleResidualVQ(4, 3, 16, 8, kmeans_init=False, quantize_dropout=False).eval()
    rvq.fast = fast
    z = torch.randn(200, 4, 8)
    _, codes, _ = rvq(z)
    err = lambda q: ((q - z) ** 2).mean().item()  # noqa: E731
    at_level = [err(rvq.lookup(codes, n)) for n in (1, 2)]
    partial = codes.clone()
    partial[:, 2:, 1] = -1                                           # 6 codes: level 1, then scales 0-1 of level 2
    partial[:, :, 2] = -1
    e6 = err(rvq.lookup(partial))
    assert at_level[1] < e6 < at_level[0]
    # the scales that kept their level-2 code are as in the 2-level decode, the others as in the 1-level decode
    assert torch.allclose(rvq.lookup(partial)[:, :2], rvq.lookup(codes, 2)[:, :2])
    assert torch.allclose(rvq.lookup(partial)[:, 2:], rvq.lookup(codes, 1)[:, 2:])


def test_code_prefix_dropout_trains_prefixes_that_end_inside_a_level_and_the_tokenizer_decodes_them():
    torch.manual_seed(0)
    rvq = MultiScaleResidualVQ(4, 3, 16, 8, dropout_prob=1.0, code_prefix=True)
    seen = set()
    for _ in range(60):
        _, codes, _ = rvq(torch.randn(64, 4, 8))
        seen.add(int((codes[0] >= 0).sum()))                     # codes kept for one token
        kept = (codes >= 0).permute(2, 1, 0).reshape(12, -1)       # (level-major code position, token)
        assert (kept.int().diff(dim=0) <= 0).all()                 # always a prefix in level-major order
    assert seen == set(range(4, 13))                               # every prefix from one level to all codes
    model = tiny_tokenizer(code_prefix=True).eval()
    x = noisy_eeg_like(6).reshape(2, 3, 800) * 20
    enc = model.encode(x)
    by_level = model.decode(enc["codes"], enc["mean"], enc["std"], n_levels=2)
    assert torch.allclose(model.decode(enc["codes"], enc["mean"], enc["std"], n_codes=8), by_level)
    assert not torch.allclose(model.decode(enc["codes"], enc["mean"], enc["std"], n_codes=7), by_level)
    assert model.bits_per_token(n_codes=7) == pytest.approx(7 * 4) and model.bits_per_token(2) == pytest.approx(32)


@pytest.mark.parametrize("freeze", [False, True])
def test_pca_initialisation_starts_the_tokenizer_as_a_transform_codec(freeze):
    """After the first training batch, the patch path holds the batch's principal components (interleaved over the
    scales) and the decoder's skip their transpose: the unquantized autoencoder rebuilds patches as PCA would."""
    torch.manual_seed(0)
    model = tiny_tokenizer(decoder="waveform", decoder_hidden=24, patch_to_code=True, pca_init=True,
                           freeze_linear=freeze, code_dim=4)          # 4 scales x 4 = 16 components of 200
    x = noisy_eeg_like(48, seed=2).reshape(12, 4, 800) * 20
    assert not bool(model.linear_initted)
    model(x).losses["loss"].backward()
    assert bool(model.linear_initted)
    w = model.patch_to_code.weight                                # (16, 200), rows orthonormal
    assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-4) and torch.equal(model.skip.weight, w.T)
    assert (w.grad is None) == freeze
    model.eval()
    rec = model.reconstruct_unquantized(x)
    patches = rec["target"].reshape(-1, 200)
    centred = patches - patches.mean(0)
    pca_err = ((centred - centred @ w.T @ w) ** 2).mean()
    assert ((rec["recon"] - rec["target"]) ** 2).mean() == pytest.approx(pca_err.item(), rel=1e-3)
    # the scales share the variance: scale s holds components s, s + 4, s + 8, ... (by decreasing variance)
    var = (centred @ w.T).var(0).reshape(4, 4)                     # (scale, j)
    assert torch.equal(var.T.flatten().argsort(descending=True), torch.arange(16))
