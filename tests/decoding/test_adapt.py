"""Subject-adaptive normalisation (AdaBN) of neural decoders, on real EEGMAT windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofm._errors import ConfigError
from tests.conftest import copy_eegmat, run_cli


def test_group_batches_hold_one_subject_and_cover_every_window_once():
    from neurofm.decoding.adapt import GroupBatches

    groups = np.array(["a"] * 7 + ["b"] * 33 + ["c"] * 2)
    sampler = GroupBatches(groups, 16, shuffle=True, seed=0)
    for _ in range(2):  # two epochs: each a permutation, batches never mix subjects
        batches = list(sampler)
        assert len(batches) == len(sampler) == 4  # a: 7 · b: 16 + 17 (the lone 33rd window joins) · c: 2
        assert sorted(i for b in batches for i in b) == list(range(42))
        assert all(len(set(groups[b])) == 1 and len(b) >= 2 for b in batches)
    assert [len(b) for b in GroupBatches(groups, None, shuffle=False)] == [7, 33, 2]


def assert_each_subject_uses_its_own_statistics(dec, data, scored, *, atol: float, pooled_min: float) -> None:
    """Subject 02 is predicted from its own windows' statistics: the same alone or beside subject 01, and as scored
    at training (``scored``); pooling both subjects into one group changes the predictions by > ``pooled_min``."""
    x, m, s = data.x, data.mask, data.subjects
    both = np.isin(s, ["01", "02"])
    p_both = dec.predict(x[both], m[both], groups=s[both])
    alone = dec.predict(x[s == "02"], m[s == "02"], groups=s[s == "02"])
    assert np.allclose(p_both[s[both] == "02"], alone, atol=atol)
    assert np.allclose(alone, scored, atol=atol)
    assert np.abs(dec.predict(x[both], m[both], groups=None) - p_both).max() > pooled_min


@pytest.fixture(scope="module")
def adabn_run(eegmat_data, tmp_path_factory):
    from neurofm.decoding.finetune import finetune
    from neurofm.decoding.training import TrainConfig

    out = tmp_path_factory.mktemp("adabn")
    res = finetune(eegmat_data.task, "shallow-fbcspnet", data=eegmat_data, align="subject", adapt="adabn-features",
                   train=TrainConfig(max_epochs=2, patience=2), out=out, verbose=False)
    return res, out


def test_adabn_decoder_records_the_mode_and_adapts_each_subject_from_its_own_windows(adabn_run, eegmat_data):
    from neurofm.decoding.decoder import Decoder

    res, out = adabn_run
    dec = Decoder.load(out)
    assert dec.adapt == "adabn-features" and dec.align == "subject"
    assert dec.config["build"]["feature_norm"] == {"n_features": 40, "ndim": 4}
    assert res.record["adapt"] == "adabn-features"
    bn = dec.net.model.bnorm
    before = bn.running_mean.clone()
    assert_each_subject_uses_its_own_statistics(dec, eegmat_data, res.predictions["test"][1], atol=1e-5,
                                                pooled_min=1e-3)
    assert torch.equal(bn.running_mean, before)  # the saved statistics stay as trained


def test_evaluate_decoder_adapts_to_new_subjects_of_a_real_store(adabn_run, tmp_path, task_cache):
    from neurofm.decoding.decoder import Decoder
    from neurofm.decoding.evaluate import evaluate_decoder
    from neurofm.evaluation.metrics import scores
    from neurofm.tasks.data import read_task
    from neurofm.tasks.spec import parse_task

    _, out = adabn_run
    root = copy_eegmat(tmp_path / "eeg" / "eegmat", ("03", "04"))
    res = evaluate_decoder(out, root=str(root), cache=str(task_cache), verbose=False)
    assert res["subjects"] == ["03", "04"] and res["n_windows"] == 60
    dec = Decoder.load(out)
    data = read_task(parse_task(dec.config["task"]), res["store"], ch_names=dec.ch_names)
    for s in ("03", "04"):  # each new subject scored with statistics of its own windows only
        sel = data.subjects == s
        want = scores("classification", data.y[sel], dec.predict(data.x[sel], data.mask[sel], groups=data.subjects[sel]))
        got = res["per_subject"][s]
        assert {k: got[k] for k in want if want[k] == want[k]} == pytest.approx({k: v for k, v in want.items() if v == v})


def test_adapt_bad_input_is_one_clear_line(adabn_run, eegmat_data, tmp_path):
    from neurofm.decoding.benchmark import parse_models
    from neurofm.decoding.decoder import Decoder
    from neurofm.decoding.finetune import finetune

    proc = run_cli("finetune", "--task", "eegmat-arithmetic", "--model", "shallow-fbcspnet", "--adapt", "adabn",
                   "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "no grouping unit is set" in line and "HINT: pass --align subject" in line
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="applies to neural models; classical.*HINT: leave --adapt out"):
        finetune(eegmat_data.task, "bandpower-lr", data=eegmat_data, align="subject", adapt="adabn")
    with pytest.raises(ConfigError, match="'lbm-tiny' has no BatchNorm layer to adapt.*HINT: use a model with"):
        finetune(eegmat_data.task, "lbm-tiny", data=eegmat_data, align="subject", adapt="adabn")
    with pytest.raises(ConfigError, match="frozen encoder keeps fixed.*HINT: use --adapt adabn-features"):
        finetune(eegmat_data.task, "lbm-tiny", data=eegmat_data, align="subject", adapt="adabn", freeze=True)
    with pytest.raises(ConfigError, match="unknown subject adaptation 'adabm'.*HINT: use one of none, adabn"):
        parse_models(["s=shallow-fbcspnet"], adapt=["s=adabm"])
    # a new subject with a single window: no statistics to adapt with
    dec = Decoder.load(adabn_run[1])
    x, m = eegmat_data.x[:3], eegmat_data.mask[:3]
    with pytest.raises(ConfigError, match="S9 has fewer than 2.*HINT: give at least 2 windows of every subject"):
        dec.predict(x, m, groups=np.array(["00", "00", "S9"], dtype=object))


def test_decoders_bench_columns_carry_the_adaptation_and_keep_old_cell_hashes():
    from neurofm.decoding.benchmark import ModelSpec, _cell_hash, parse_models
    from tests.decoding.test_benchmark import _decoders_bench

    bench = _decoders_bench()
    names = bench.models_for("eegmat-arithmetic", [])
    labels = {n.partition("=")[0] for n in names}
    specs = {s.label: s for s in parse_models(names, align=[a for a in bench.ALIGN if a.partition("=")[0] in labels],
                                               adapt=[a for a in bench.ADAPT if a.partition("=")[0] in labels])}
    for label in ("eegnet-abf", "shallow-abf"):
        assert specs[label].align == "subject" and specs[label].adapt == "adabn-features"
    assert specs["shallow-ea"].adapt == "none" and specs["shallow-abf"].model == "shallow-fbcspnet"
    # TSMNet: aligned input, its SPD batch norm re-centred on each subject (plain AdaBN: no final_layer to hook)
    assert specs["tsm-subj"].model == "tsmnet" and specs["tsm-subj"].align == "subject"
    assert specs["tsm-subj"].adapt == "adabn"
    # a column without adaptation hashes as before the option existed (finished cells are kept)
    plain = ModelSpec("s", "shallow-fbcspnet", align="subject")
    assert "adapt" not in plain.to_dict()
    assert _cell_hash({}, plain, {}) != _cell_hash({}, ModelSpec("s", "shallow-fbcspnet", align="subject",
                                                                 adapt="adabn"), {})


def test_a_frozen_encoder_probe_standardises_its_pooled_features_per_subject(eegmat_data, tmp_path):
    """adabn-features on a neurofm encoder: the head's pooled features are standardised with each subject's own
    windows (training batches of one subject, and again at test time); a frozen encoder is left as it was."""
    from neurofm.decoding.decoder import Decoder
    from neurofm.decoding.finetune import finetune
    from neurofm.decoding.training import TrainConfig

    res = finetune(eegmat_data.task, "lbm-tiny", data=eegmat_data, align="subject", adapt="adabn-features",
                   freeze=True, head="linear", model_kwargs=dict(dim=32, depth=1, heads=2),
                   train=TrainConfig(max_epochs=2, patience=2), out=tmp_path / "probe", verbose=False)
    dec = Decoder.load(tmp_path / "probe")
    assert dec.config["build"]["feature_norm"] == {"n_features": 32, "ndim": 2, "at": "head"}
    encoder = {k: v.clone() for k, v in dec.net.encoder.state_dict().items()}
    assert_each_subject_uses_its_own_statistics(dec, eegmat_data, res.predictions["test"][1], atol=1e-5,
                                                pooled_min=1e-4)
    assert all(torch.equal(v, encoder[k]) for k, v in dec.net.encoder.state_dict().items())


def test_tsmnet_recentres_each_subject_on_its_own_frechet_mean(eegmat_data, tmp_path):
    """TSMNet (spd-learn) with --adapt adabn: its SPD batch normalisation follows each subject, like the
    re-centring of tangent space + LR. At test time the layer's mean is the new subject's own Fréchet mean, so
    that subject's normalised covariances are centred on the identity; the saved statistics stay as trained."""
    from spd_learn.functional import frechet_mean

    from neurofm.decoding.adapt import batchnorms, group_statistics
    from neurofm.decoding.decoder import Decoder
    from neurofm.decoding.finetune import finetune
    from neurofm.decoding.training import TrainConfig

    res = finetune(eegmat_data.task, "tsmnet", data=eegmat_data, align="subject", adapt="adabn",
                   model_kwargs=dict(n_spatiotemp_filters=12, n_bimap_filters=8),
                   train=TrainConfig(max_epochs=2, patience=2), out=tmp_path / "tsm", verbose=False)
    dec = Decoder.load(tmp_path / "tsm")
    assert dec.adapt == "adabn" and dec.config["build"]["model"] == "tsmnet"
    (bn,) = batchnorms(dec.net)
    before = bn.running_mean.clone()
    assert_each_subject_uses_its_own_statistics(dec, eegmat_data, res.predictions["test"][1], atol=1e-4,
                                                pooled_min=1e-4)
    assert torch.equal(bn.running_mean, before)

    # the defining property: inside a subject's statistics, its SPD matrices leave the layer centred on I
    model = dec.net.model.model
    seen = []
    handle = model.spdbnorm.register_forward_hook(lambda _m, _a, out: seen.append(out))
    sel = eegmat_data.subjects == "02"
    windows = dict(x=torch.from_numpy(dec.inputs(eegmat_data.x[sel], eegmat_data.mask[sel],
                                                 eegmat_data.subjects[sel])))
    with group_statistics(dec.net, windows), torch.no_grad():
        dec.net(windows["x"])
    handle.remove()
    centred = seen[-1] / torch.linalg.matrix_norm(seen[-1]).mean()  # the learnt dispersion scales every matrix
    mean = frechet_mean(centred, max_iter=20).squeeze()
    mean = mean / torch.diagonal(mean).mean()
    assert torch.allclose(mean, torch.eye(mean.shape[-1]), atol=0.05)
