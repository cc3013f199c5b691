"""Shipped pretrained weights: found by name offline, sha256-checked, listed without torch, and faithful."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from neurofm._errors import StoreError
from neurofm.models import _pretrained
from tests.conftest import REPO, copy_eegmat, run_cli
from tests.models.conftest import exported_tokenizer

TOKENIZER, LBM = "neurorvq-tiny.eeg", "lbm-tiny.eeg"


def test_release_weights_ship_in_the_package_with_card_and_budget():
    found = _pretrained.shipped()
    assert {TOKENIZER, LBM} <= set(found)
    total = 0
    for name in (TOKENIZER, LBM):
        d = found[name]
        assert (d / "model.safetensors").is_file() and (d / "config.json").is_file()
        card = (d / "MODEL_CARD.md").read_text()
        assert "sha256" in card and "Held out" in card and "steps" in card
        total += (d / "model.safetensors").stat().st_size
    assert total <= 25e6


def test_the_shipped_lbm_names_the_shipped_tokenizer_and_predicts_its_codes():
    """The LBM's contract names its tokenizer by the shipped name (a release trained into another --dest and copied
    in once carried that machine's absolute path), and its code head matches that tokenizer's code layout."""
    import json

    found = _pretrained.shipped()
    config = json.loads((found[LBM] / "config.json").read_text())
    assert config["contract"]["extra"]["tokenizer"] == TOKENIZER
    tok = json.loads((found[TOKENIZER] / "config.json").read_text())["kwargs"]
    lbm = config["kwargs"]
    assert (lbm["n_levels"], lbm["codebook_size"]) == (tok["n_levels"], tok["codebook_size"])


def test_list_models_pretrained_names_the_weights_without_importing_torch():
    code = ("import sys; from neurofm.cli import main; main(['list', 'models', '--pretrained']); "
            "assert 'torch' not in sys.modules, 'heavy import'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert TOKENIZER in proc.stdout and LBM in proc.stdout and "MODEL_CARD.md" in proc.stdout


def test_from_pretrained_by_name_and_an_unknown_name_gets_a_hint():
    from neurofm.models import from_pretrained

    model = from_pretrained(TOKENIZER)
    assert model.n_scales == 4 and model.contract.sfreq == 200.0 and model.contract.n_times == 800
    with pytest.raises(StoreError, match=r"neurorvq-tiny\.egg.*no shipped weights.*HINT: Did you mean 'neurorvq-tiny\.eeg'"):
        from_pretrained("neurorvq-tiny.egg")
    proc = run_cli("evaluate", "tokenizer", "--checkpoint", "nope.eeg", "--store", "nowhere", "--out", "x")
    assert proc.returncode != 0 and "HINT" in proc.stderr and "Traceback" not in proc.stderr


def test_a_shipped_name_is_sha256_checked(tmp_path, monkeypatch, eegmat_store):
    """A tampered copy under a shipped name is refused (the name resolves through the same checked loader)."""
    from neurofm.models import from_pretrained

    _, _, path = exported_tokenizer(tmp_path, eegmat_store)
    root = tmp_path / "weights"
    shutil.copytree(path, root / "tiny.eeg")
    monkeypatch.setattr(_pretrained, "WEIGHTS_ROOT", root)
    assert from_pretrained("tiny.eeg").n_levels == 3
    data = bytearray((root / "tiny.eeg" / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (root / "tiny.eeg" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(StoreError, match="sha256 mismatch"):
        from_pretrained("tiny.eeg")


@pytest.fixture(scope="module")
def held_out_store(tmp_path_factory):
    """eeg-200hz store of EEGMAT subject 20, held out from the release training."""
    from neurofm.datasets import get_dataset
    from neurofm.preprocessing.recipe import resolve_recipe
    from neurofm.preprocessing.run import preprocess

    root = copy_eegmat(tmp_path_factory.mktemp("eegmat20"), ("20",))
    out = tmp_path_factory.mktemp("store") / "eegmat20"
    res = preprocess(get_dataset("eegmat", str(root)), resolve_recipe("eeg-200hz"), out, report=False, verbose=False)
    assert not res.failed, res.failed
    return out


def test_shipped_tokenizer_rebuilds_held_out_eeg(held_out_store):
    """Fidelity check on 8 windows of a held-out subject (MODEL_CARD.md: z-MSE 0.33 at 1 level and 0.006 at 10
    levels over subjects 18-23; the bounds leave a 4x margin); a broken load or decoder gives ~1 or more."""
    import torch

    from neurofm.data.dataset import WindowDataset, WindowStore, collate
    from neurofm.models import from_pretrained

    model = from_pretrained(TOKENIZER)
    store = WindowStore(held_out_store)
    batch = collate([WindowDataset(store)[i] for i in np.linspace(0, len(store) - 1, 8).astype(int)])
    kw = dict(pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])
    with torch.inference_mode():
        enc = model.encode(batch["x"], **kw)
        errs = []
        for n in (1, model.n_levels):
            rec = model.decode(enc["codes"], enc["mean"], enc["std"], n_levels=n, **kw)
            errs.append((((rec - batch["x"]) / enc["std"]) ** 2).mean().item())
    assert errs[1] < 0.1 and errs[1] < 0.3 * errs[0], errs


def test_shipped_tokenizer_is_never_re_initialised_by_a_newer_config_default(held_out_store):
    """Loading trained weights marks the PCA-initialised patch path as initialised (whether or not they were trained
    with it), so fine-tuning them never overwrites the trained weights with a PCA fit on its first batch."""
    import torch

    from neurofm.data.dataset import WindowDataset, WindowStore, collate
    from neurofm.models import from_pretrained

    model = from_pretrained(TOKENIZER, pca_init=True)
    assert bool(model.linear_initted)
    before = model.patch_to_code.weight.detach().clone()
    store = WindowStore(held_out_store)
    batch = collate([WindowDataset(store)[i] for i in range(4)])
    model.train()
    with torch.no_grad():
        model(batch["x"], pos=batch["pos"], mask=batch["mask"], ch_names=batch["ch_names"])
    assert torch.equal(model.patch_to_code.weight, before)


def test_the_release_script_builds_the_same_initial_weights_in_every_process():
    """Regression: release.py built its models before seeding, and this torch seeds its default generator differently
    in every process, so two release runs trained from other initial weights (the 2026-12-07 weights differ by run)."""
    code = (
        "import hashlib, importlib.util, torch\n"
        f"spec = importlib.util.spec_from_file_location('release', r'{REPO / 'scripts/release/release.py'}')\n"
        "rel = importlib.util.module_from_spec(spec); spec.loader.exec_module(rel)\n"
        "from neurofm.training.tokenizer import TokenizerModule\n"
        "rel.seed_all(0)\n"
        "m = TokenizerModule('neurorvq-tiny', max_chans=rel.MAX_CHANS, model_kwargs={})\n"
        "h = hashlib.sha256()\n"
        "for v in m.state_dict().values(): h.update(v.detach().float().numpy().tobytes())\n"
        "print('HASH', h.hexdigest())\n")
    hashes = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        hashes.append([ln for ln in out.stdout.splitlines() if ln.startswith("HASH")][0])
    assert hashes[0] == hashes[1]
