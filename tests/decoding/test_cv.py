"""Leave-subjects-out CV, subject alignment and augmentation, on real UCI trials and EEGMAT windows."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from neurofm._errors import ConfigError
from tests.conftest import SHARED, run_cli

UCI = SHARED / "eeg" / "uci-alcohol"
SIX = ("co2a0000364", "co2a0000365", "co2a0000368", "co2c0000337", "co2c0000338", "co2c0000339")


def _uci_copy(dest, subjects=SIX, n_trials=6):
    for s in subjects:
        (dest / s).mkdir(parents=True)
        for p in sorted((UCI / s).glob("*.rd.*.gz"))[:n_trials]:
            shutil.copy(p, dest / s)
    return dest


@pytest.fixture(scope="module")
def uci_six(tmp_path_factory, task_cache):
    from neurofm.tasks.data import load_task

    root = _uci_copy(tmp_path_factory.mktemp("uci6") / "uci")
    return root, load_task("uci-alcohol", root=root, cache=task_cache, verbose=False)


def test_folds_test_every_subject_once_with_nested_validation(uci_six):
    from neurofm.decoding.cv import subject_folds

    _, data = uci_six
    folds = subject_folds(data, 3)
    assert subject_folds(data, 3) [0].subjects == folds[0].subjects  # deterministic: same folds for every model
    tested = [s for f in folds for s in f.subjects["test"]]
    assert sorted(tested) == sorted(SIX)
    for f in folds:
        tr, va, te = (set(f.subjects[k]) for k in ("train", "val", "test"))
        assert not (tr & va or tr & te or va & te) and tr | va | te == set(SIX)
        assert len(va) >= 1 and {s[3] for s in te} == {"a", "c"}  # stratified: both groups in every test fold
        assert set(np.unique(data.y[f.train]).tolist()) == {0, 1}
        assert set(data.subjects[f.test].tolist()) == te and set(data.subjects[f.val].tolist()) == va


def test_cv_finetune_scores_trials_and_subjects(uci_six, tmp_path):
    from neurofm.decoding.cv import finetune_cv

    _, data = uci_six
    res = finetune_cv("uci-alcohol", "bandpower-lr", folds=3, data=data, out=tmp_path, verbose=False, align="subject")
    assert len(res.folds) == 3 and set(res.per_subject) == set(SIX)
    assert res.summary["test"]["balanced_accuracy"]["n"] == 3
    assert set(res.subject_level["subjects"]) == set(SIX)
    for s, rec in res.subject_level["subjects"].items():
        assert rec["true"] == (0 if s.startswith("co2a") else 1) and abs(sum(rec["prob"]) - 1) < 1e-3
    saved = json.loads((tmp_path / "cv.json").read_text())
    assert saved["align"] == "subject" and len(saved["folds"]) == 3
    dec = json.loads((tmp_path / "fold0" / "decoder" / "decoder.json").read_text())
    assert dec["align"] == "subject" and dec["build"]["kwargs"]["align"] == "subject"


def test_cv_bad_input_is_one_line_with_the_fix(uci_six, tmp_path, task_cache):
    root, _ = uci_six
    common = ["--model", "bandpower-lr", "--root", str(root), "--cache", str(task_cache), "--quiet"]
    proc = run_cli("finetune", "--task", "uci-alcohol", "--cv", "7", "--out", str(tmp_path / "a"), *common)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "--cv 7 is larger than the 6 subjects" in line and "HINT: use --cv 6" in line
    # a fold whose training subjects lack a class: 3 alcoholic + 1 control subject, leave-one-out
    three = _uci_copy(tmp_path / "three", subjects=SIX[:4], n_trials=12)
    proc = run_cli("finetune", "--task", "uci-alcohol", "--cv", "4", "--out", str(tmp_path / "b"), "--model",
                   "bandpower-lr", "--root", str(three), "--cache", str(task_cache), "--quiet")
    (line,) = proc.stderr.strip().splitlines()
    assert "class(es) ['control'] have no training window" in line and "HINT: use fewer folds" in line
    assert not (tmp_path / "b" / "cv.json").exists()


def test_cv_on_a_within_subject_task_says_what_to_use(eegmat_data):
    from neurofm.decoding.cv import subject_folds

    with pytest.raises(ConfigError, match="leave-subjects-out CV needs at least 3.*HINT: use the task's fixed split"):
        subject_folds(type(eegmat_data)(**{**eegmat_data.__dict__, "subjects": np.full(len(eegmat_data.y), "00",
                                                                                       dtype=object)}), 2)


def test_euclidean_alignment_whitens_each_group(eegmat_data):
    from neurofm.decoding.align import SHRINK, euclidean_align

    x, mask, groups = eegmat_data.x, eegmat_data.mask, eegmat_data.subjects
    out = euclidean_align(x, mask, groups)
    n = x.shape[1]
    for g in np.unique(groups):
        xs = out[groups == g].astype(np.float64)
        c = np.einsum("nct,ndt->cd", xs, xs) / (xs.shape[0] * xs.shape[2])
        # the group's mean covariance becomes C (C_shrunk)^-1, whose eigenvalues lie in (0, 1/(1-SHRINK)]
        w = np.linalg.eigvalsh(c)
        assert w.max() <= 1 / (1 - SHRINK) + 1e-3 and np.trace(c) / n > 0.5
    # one subject's statistics never touch another's windows
    one = euclidean_align(x[groups == groups[0]], mask[groups == groups[0]], None)
    assert np.allclose(one, out[groups == groups[0]], atol=1e-4)


@pytest.mark.parametrize("model", ["bandpower-lr", "tangentspace-lr"])
def test_aligned_classical_decoder_reloads_and_predicts_per_group(eegmat_data, model, tmp_path):
    from neurofm.decoding.decoder import Decoder
    from neurofm.decoding.finetune import finetune

    res = finetune(eegmat_data.task, model, data=eegmat_data, align="subject", out=tmp_path, verbose=False)
    dec = Decoder.load(tmp_path)
    assert dec.align == "subject"
    idx = np.flatnonzero(eegmat_data.subjects == "02")
    p = dec.predict(eegmat_data.x[idx], eegmat_data.mask[idx], groups=eegmat_data.subjects[idx])
    assert np.allclose(p, res.predictions["test"][1], atol=1e-6)
    # the unaligned decoder differs: alignment changed what it sees
    plain = finetune(eegmat_data.task, model, data=eegmat_data, verbose=False)
    assert not np.allclose(plain.predictions["test"][1], p, atol=1e-3)


def test_unknown_augmentation_and_alignment_are_config_errors():
    from neurofm.decoding.align import check_unit
    from neurofm.decoding.training import build_augmentations

    with pytest.raises(ConfigError, match="unknown augmentation 'FTSurogate'.*FTSurrogate"):
        build_augmentations({"FTSurogate": {}})
    with pytest.raises(ConfigError, match="rejects its arguments"):
        build_augmentations({"ChannelsDropout": {"p_dorp": 0.2}})
    with pytest.raises(ConfigError, match="unknown alignment unit 'subjects'"):
        check_unit("subjects")
    (t,) = build_augmentations({"SmoothTimeMask": {"probability": 1.0, "mask_len_samples": 50}}, seed=0)
    import torch

    x = torch.ones(2, 3, 200)
    xa, _ = t(x, torch.tensor([0, 1]))
    assert (xa == 0).sum() > 0 and xa.shape == x.shape


def test_aligned_eegnet_with_augmentation_trains_and_reloads(eegmat_data, tmp_path):
    from neurofm.decoding.decoder import Decoder
    from neurofm.decoding.finetune import finetune
    from neurofm.decoding.training import TrainConfig

    cfg = TrainConfig(max_epochs=2, patience=2, augment={"FTSurrogate": {"probability": 0.5}})
    res = finetune(eegmat_data.task, "eegnet", data=eegmat_data, align="subject", train=cfg, out=tmp_path,
                   verbose=False)
    dec = Decoder.load(tmp_path)
    assert dec.config["align"] == "subject" and dec.config["train"]["augment"] == {"FTSurrogate": {"probability": 0.5}}
    idx = np.flatnonzero(eegmat_data.subjects == "02")
    p = dec.predict(eegmat_data.x[idx], eegmat_data.mask[idx], groups=eegmat_data.subjects[idx])
    assert np.allclose(p, res.predictions["test"][1], atol=1e-5)


def test_decoder_on_data_without_its_channels_is_one_line(uci_six, tmp_path, task_cache):
    root, _ = uci_six
    run = tmp_path / "run"
    proc = run_cli("finetune", "--task", "uci-alcohol", "--model", "bandpower-lr", "--root", str(root), "--cache",
                   str(task_cache), "--out", str(run), "--quiet", "--cv", "3")
    assert proc.returncode == 0, proc.stderr
    run = run / "fold0"
    cfg_path = run / "decoder" / "decoder.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["ch_names"] = cfg["ch_names"] + ["O9"]  # a montage the data lack
    cfg_path.write_text(json.dumps(cfg))
    proc = run_cli("evaluate", "decoder", "--checkpoint", str(run), "--root", str(root), "--cache", str(task_cache),
                   "--out", str(tmp_path / "eval.json"), "--quiet")
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert proc.returncode != 0 and "channels ['O9'] are absent from the data" in line and "HINT:" in line
    assert not (tmp_path / "eval.json").exists()
