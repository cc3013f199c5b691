"""Bad input through the command line, the kinds tests/test_bad_input.py does not already cover.

Every case is made by the test from the real recordings (never by editing them) and must give: one stderr
line naming the input and the fix (``HINT:``), no traceback, a non-zero exit, no partial output, and, in a
batch, the other recordings processed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import EEGMAT, FORMATS, IEEG, REPO, run_cli

SMALL = dict(dim=32, depth=1, decoder_depth=1, heads=2, codebook_size=16, code_dim=8, n_levels=2)
GRIP = IEEG / "gripforce-ecog-lfp"


def user_error(proc, *fragments: str, code: int = 2) -> str:
    """The one error line of a user mistake; checks exit code, no traceback, and the fragments."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "HINT:" in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def export_tokenizer(directory: Path, store: Path, **contract) -> Path:
    """A tiny neurorvq tokenizer exported with the store's contract, changed by ``contract``."""
    from neurofm.data.dataset import open_manifest
    from neurofm.models._contract import SignalContract
    from neurofm.models._hub import save_pretrained
    from neurofm.registry import create_model

    torch.manual_seed(0)
    model = create_model("neurorvq-tiny", **SMALL)
    overrides = {"positions_required": True, **contract}
    return save_pretrained(model, directory, name="neurorvq-tiny", kwargs=SMALL,
                           contract=SignalContract.from_manifest(open_manifest(store), **overrides))


def evaluate(checkpoint: Path, store: Path, out: Path):
    return run_cli("evaluate", "tokenizer", "--checkpoint", str(checkpoint), "--store", str(store),
                   "--out", str(out), "--no-report")


# -- a model's contract ---------------------------------------------------------------------------------

def test_evaluate_tokenizer_with_more_codes_than_a_token_has(eegmat_store, tmp_path):
    tok = export_tokenizer(tmp_path / "tok", eegmat_store)
    proc = run_cli("evaluate", "tokenizer", "--checkpoint", str(tok), "--store", str(eegmat_store),
                   "--out", str(tmp_path / "eval.json"), "--codes", "9")
    user_error(proc, "neurofm evaluate: error:", str(tok), "--codes 9", "has 8 codes (4 scales × 2 levels)",
               "from 1 to 8")
    assert not (tmp_path / "eval.json").exists()


def test_evaluate_tokenizer_with_a_beam_of_zero(eegmat_store, tmp_path):
    tok = export_tokenizer(tmp_path / "tok", eegmat_store)
    proc = run_cli("evaluate", "tokenizer", "--checkpoint", str(tok), "--store", str(eegmat_store),
                   "--out", str(tmp_path / "eval.json"), "--beam", "0")
    user_error(proc, "neurofm evaluate: error:", str(tok), "--beam 0", "--beam 1 (greedy")
    assert not (tmp_path / "eval.json").exists()


def test_evaluate_tokenizer_at_a_variable_rate_above_what_the_tokenizer_codes(eegmat_store, tmp_path):
    tok = export_tokenizer(tmp_path / "tok", eegmat_store)
    proc = run_cli("evaluate", "tokenizer", "--checkpoint", str(tok), "--store", str(eegmat_store),
                   "--out", str(tmp_path / "eval.json"), "--variable-bits", "900")
    user_error(proc, "neurofm evaluate: error:", str(tok), "--variable-bits 900", "bits per channel-second",
               "give rates above 8")
    assert not (tmp_path / "eval.json").exists()


def test_evaluate_tokenizer_on_a_store_at_another_rate(eegmat_store, tmp_path):
    tok = export_tokenizer(tmp_path / "tok250", eegmat_store, sfreq=250.0, recipe="eeg-250hz")
    proc = evaluate(tok, eegmat_store, tmp_path / "eval.json")
    user_error(proc, "neurofm evaluate: error:", str(eegmat_store), "sampling rate 200 Hz, but the model expects 250 Hz",
               "resample: {sfreq: 250}", "eeg-250hz")
    assert not (tmp_path / "eval.json").exists()


def test_evaluate_a_fixed_montage_model_on_data_missing_one_of_its_channels(eegmat_store, tmp_path):
    from neurofm.data.dataset import open_manifest

    names = [ch["name"] for ch in open_manifest(eegmat_store)["recordings"][0]["channels"]]
    assert "Oz" not in names
    tok = export_tokenizer(tmp_path / "tok", eegmat_store, positions_required=False, ch_names=[*names, "Oz"])
    proc = evaluate(tok, eegmat_store, tmp_path / "eval.json")
    user_error(proc, str(eegmat_store), "channels ['Oz'] of the model's montage are missing", "19 of its 20",
               "interpolate the missing channels")
    assert not (tmp_path / "eval.json").exists()

    # the same refusal where the contract is used from Python, after from_pretrained
    from neurofm._errors import ContractError
    from neurofm.models import from_pretrained

    contract = from_pretrained(tok).contract
    with pytest.raises(ContractError, match=r"\['Oz'\] of the model's montage are missing.*HINT"):
        contract.check(sfreq=200.0, n_times=800, ch_names=names)
    assert contract.check(sfreq=200.0, n_times=800, ch_names=[*names, "Oz"]) == []   # the full montage is fine


# -- weights --------------------------------------------------------------------------------------------

def test_evaluate_tokenizer_refuses_weights_whose_sha256_differs(eegmat_store, tmp_path):
    tok = export_tokenizer(tmp_path / "tok", eegmat_store)
    weights = tok / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    proc = evaluate(tok, eegmat_store, tmp_path / "eval.json")
    user_error(proc, str(weights), "sha256 mismatch", "copy the weights again")
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.parametrize("edit", ["drop-contract", "not-a-mapping", "no-model"])
def test_a_damaged_config_json_is_refused_without_a_traceback(eegmat_store, tmp_path, edit):
    from neurofm._errors import StoreError
    from neurofm.models import from_pretrained

    tok = export_tokenizer(tmp_path / "tok", eegmat_store)
    cfg = json.loads((tok / "config.json").read_text())
    if edit == "drop-contract":
        del cfg["contract"]
    elif edit == "no-model":
        cfg["model"] = None
    else:
        cfg = ["neurorvq-tiny"]
    (tok / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(StoreError, match="config.json lacks the model name.*HINT: export the model again"):
        from_pretrained(tok)


class Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_evaluate_tokenizer_refuses_a_pickle_instead_of_safetensors(eegmat_store, tmp_path):
    evil = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": Boom()}, evil)
    proc = evaluate(evil, eegmat_store, tmp_path / "eval.json")
    user_error(proc, str(evil), "pickled checkpoint", "neurofm export --checkpoint")
    assert "pwned" not in proc.stdout + proc.stderr
    assert not (tmp_path / "eval.json").exists()


# -- stores and configs ---------------------------------------------------------------------------------

def test_manifest_path_escaping_the_store(eegmat_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(eegmat_store, store)
    outside = tmp_path / "outside.npy"
    outside.write_bytes((store / "shards" / "sub-00_rest.npy").read_bytes())
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["recordings"][0]["file"] = "../../outside.npy"
    (store / "manifest.json").write_text(json.dumps(manifest))
    user_error(run_cli("info", str(store)), "neurofm info: error:", "path '../../outside.npy' escapes the store",
               "rebuild the store")


def _pretrain_config(tmp_path: Path, store: Path | None = None, **trainer) -> Path:
    import yaml

    cfg = yaml.safe_load((REPO / "configs/pretrain/neurorvq-tiny.yaml").read_text())
    cfg["model"]["init_args"]["model_kwargs"] = SMALL
    cfg["data"]["init_args"]["store"] = str(store or tmp_path / "no-store")
    cfg["trainer"].update(max_steps=1, logger=False, default_root_dir=str(tmp_path / "run"), **trainer)
    cfg["trainer"]["callbacks"] = []
    path = tmp_path / "pretrain.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_pretrain_config_with_an_unknown_key(tmp_path):
    path = _pretrain_config(tmp_path, max_epochz=3)
    proc = run_cli("pretrain", "--config", str(path), "--config", str(REPO / "configs/trainer/cpu.yaml"))
    user_error(proc, "neurofm pretrain: error:", str(path), "unknown key 'trainer.max_epochz'",
               "Did you mean 'max_epochs'")
    assert not (tmp_path / "run").exists()


def test_pretrain_config_error_names_a_model_argument():
    """The jsonargparse message for a wrong LightningModule argument, turned into one line with a suggestion."""
    from neurofm.training.cli import _config_error

    message = ('Parser key "model":\n  Does not validate against any of the Union subtypes\n  Errors:\n'
               "    - Problem with given class_path 'neurofm.training.tokenizer.TokenizerModule':\n"
               "        Option 'max_chanz' is not accepted\n    - Expected a <class 'NoneType'>")
    err = _config_error(message, ["fit", "--config", "a.yaml", "--config", "b.yaml"])
    assert str(err) == ("a.yaml, b.yaml: unknown key 'model.init_args.max_chanz'. Did you mean 'max_chans'? "
                        "HINT: fix the key in the YAML (see `neurofm pretrain --help` for the valid ones).")


def test_pretrain_refuses_a_pickle_or_a_truncated_checkpoint_to_resume_from(eegmat_store, tmp_path):
    cfg = _pretrain_config(tmp_path, eegmat_store)
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": Boom()}, evil)
    proc = run_cli("pretrain", "--config", str(cfg), "--ckpt_path", str(evil))
    user_error(proc, str(evil), "refused to load", "Unsupported global", "never load untrusted pickles")
    assert "pwned" not in proc.stdout + proc.stderr

    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, good)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[:2000])       # what a kill during the write of a checkpoint leaves
    proc = run_cli("pretrain", "--config", str(cfg), "--ckpt_path", str(cut))
    user_error(proc, str(cut), "cannot read the checkpoint", "truncated", "resume from an earlier checkpoint")


# -- BIDS -----------------------------------------------------------------------------------------------

def _bids_two_runs(root: Path) -> Path:
    """The gripforce BIDS tree with its run duplicated as run-1 (all sidecars), so a batch has two recordings."""
    shutil.copytree(GRIP, root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    folder = root / "sub-testsub" / "ses-EphysMedOff" / "ieeg"
    for p in sorted(folder.glob("*run-0*")):
        target = folder / p.name.replace("run-0", "run-1")
        if p.suffix in (".vhdr", ".vmrk"):
            target.write_text(p.read_text().replace("run-0", "run-1"))
        else:
            shutil.copy(p, target)
    return folder


@pytest.mark.parametrize("sidecar", ["channels.tsv", "ieeg.json"])
def test_bids_tree_with_a_missing_sidecar(tmp_path, sidecar):
    folder = _bids_two_runs(tmp_path / "bids")
    base = "sub-testsub_ses-EphysMedOff_task-gripforce_run-0"
    (folder / f"{base}_{sidecar}").unlink()
    recipe = (REPO / "pipelines" / "seeg-1000hz.yaml").read_text().replace(
        "  - amplitude_check", "  - rescale: {factor: 1.0e-6}\n  - amplitude_check")  # the tree's 10^6 unit error
    (tmp_path / "recipe.yaml").write_text(recipe)
    out = tmp_path / "store"
    proc = run_cli("preprocess", "--dataset", f"bids:{tmp_path / 'bids'}", "--config", str(tmp_path / "recipe.yaml"),
                   "--out", str(out), "--no-report")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert "1 processed" in proc.stderr and "1 failed" in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("- ")]
    assert f"{base}_ieeg.vhdr:" in line and f"BIDS sidecar(s) missing: {base}_{sidecar}" in line
    assert "HINT: add" in line
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["id"] for r in manifest["recordings"]] == [f"{base.replace('run-0', 'run-1')}"]
    assert sorted(p.name for p in (out / "shards").iterdir() if "run-0" in p.name) == []   # nothing partial


# -- store ownership (issue 13, case 1) ---------------------------------------------------------------

def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (or of ``root`` itself), keyed by relative path: "nothing modified"."""
    import hashlib

    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root) if p != root else p.name): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


def _one_file_folder(folder: Path, name: str = "Subject00_1_first62s.edf") -> Path:
    folder.mkdir(parents=True)
    shutil.copy(EEGMAT / "rest" / name, folder / name)
    return folder


def _preprocess(dataset: str, out: Path, *extra: str):
    return run_cli("preprocess", "--dataset", dataset, "--pipeline", "eeg-200hz", "--out", str(out), "--no-report",
                   *extra)


@pytest.fixture(scope="module")
def owned_store(tmp_path_factory) -> tuple[Path, Path]:
    """A store made from folder A (one EEGMAT recording) with eeg-200hz."""
    base = tmp_path_factory.mktemp("owned")
    a = _one_file_folder(base / "A")
    out = base / "store"
    proc = _preprocess(f"folder:{a}", out)
    assert proc.returncode == 0, proc.stderr
    return a, out


def test_store_of_another_dataset_is_refused_and_untouched(owned_store, tmp_path):
    _, out = owned_store
    b = _one_file_folder(tmp_path / "B", "Subject01_1_first62s.edf")
    before = tree_digest(out)
    proc = _preprocess(f"folder:{b}", out)
    user_error(proc, "neurofm preprocess: error:", str(out), "is a store of dataset 'folder'", str(b),
               "a store holds one dataset", "--out a new folder", "--force")
    assert tree_digest(out) == before


def test_store_made_with_another_recipe_is_refused_unless_force(owned_store, tmp_path):
    a, original = owned_store
    out = tmp_path / "store"
    shutil.copytree(original, out)
    recipe = (REPO / "pipelines" / "eeg-200hz.yaml").read_text().replace("window_s: 4.0", "window_s: 2.0")
    assert "window_s: 2.0" in recipe
    (tmp_path / "r.yaml").write_text(recipe)
    before = tree_digest(out)
    args = ("preprocess", "--dataset", f"folder:{a}", "--config", str(tmp_path / "r.yaml"), "--out", str(out),
            "--no-report")
    user_error(run_cli(*args), "made with recipe 'eeg-200hz'", "this run's recipe", "--force")
    assert tree_digest(out) == before
    proc = run_cli(*args, "--force")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stale"] == [] and manifest["recordings"][0]["shape"][2] == 400   # rebuilt, 2-s windows


@pytest.mark.parametrize("kind", ["folder-of-other-files", "regular-file"])
def test_out_that_is_not_a_store_is_refused(owned_store, tmp_path, kind):
    a, _ = owned_store
    if kind == "regular-file":
        out = tmp_path / "notes.txt"
        out.write_text("my notes\n")
        fragments = ("--out is an existing file",)
    else:
        out = tmp_path / "mine"
        out.mkdir()
        (out / "thesis.docx").write_bytes(b"PK\x03\x04 not mine to touch")
        fragments = ("non-empty folder that is not a neurofm store", "thesis.docx")
    before = tree_digest(out)
    user_error(_preprocess(f"folder:{a}", out, "--force"), str(out), *fragments, "HINT: pass --out a new")
    assert tree_digest(out) == before


def test_damaged_safetensors_with_a_matching_digest(eegmat_store, tmp_path):
    """Issue 13, case 5: the header length of model.safetensors overwritten and config.json's sha256 updated."""
    import hashlib

    tok = export_tokenizer(tmp_path / "tok", eegmat_store)
    weights = tok / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[:8] = (2 ** 40).to_bytes(8, "little")          # "header too large"
    weights.write_bytes(bytes(data))
    cfg = json.loads((tok / "config.json").read_text())
    cfg["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (tok / "config.json").write_text(json.dumps(cfg))
    before = tree_digest(tok)
    proc = evaluate(tok, eegmat_store, tmp_path / "eval.json")
    line = user_error(proc, "neurofm evaluate: error:", str(weights), "is damaged and cannot be read",
                      "copy or download the weights again")
    assert "SafetensorError" in line and "header too large" in line.lower()
    assert not (tmp_path / "eval.json").exists() and tree_digest(tok) == before


# -- power-line frequency (issue 13, case 4) ----------------------------------------------------------

def test_folder_without_line_frequency_warns_once_and_line_freq_applies_the_notch(tmp_path):
    two = tmp_path / "two"
    two.mkdir()
    for name in ("Subject00_1_first62s.edf", "Subject01_1_first62s.edf"):
        shutil.copy(EEGMAT / "rest" / name, two / name)
    source = tree_digest(two)
    proc = _preprocess(f"folder:{two}", tmp_path / "s")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    warnings = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "power-line frequency" in ln]
    assert len(warnings) == 1, proc.stdout                       # once per run, not once per recording
    assert warnings[0].startswith("WARNING: no power-line frequency is known for 2 recording(s)")
    assert "HINT: pass --line-freq 50" in warnings[0] and "--line-freq 60" in warnings[0]
    recs = json.loads((tmp_path / "s" / "manifest.json").read_text())["recordings"]
    assert {r["line_freq"] for r in recs} == {None} and all("notch skipped" in " ".join(r["notes"]) for r in recs)

    proc = _preprocess(f"folder:{two}", tmp_path / "s", "--line-freq", "50")   # same store: redone, not "up to date"
    assert proc.returncode == 0, proc.stderr
    assert "2 processed" in proc.stdout and "power-line" not in proc.stdout + proc.stderr
    recs = json.loads((tmp_path / "s" / "manifest.json").read_text())["recordings"]
    assert {r["line_freq"] for r in recs} == {50.0} and not any("notch skipped" in " ".join(r["notes"]) for r in recs)
    assert tree_digest(two) == source                            # the recordings are never modified

    proc = _preprocess(f"folder:{two}", tmp_path / "t", "--line-freq", "55")
    assert proc.returncode == 2 and "--line-freq" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "t").exists()


# -- positions you can trust (issue 13, case 2) -------------------------------------------------------

def test_biosemi_labels_refused_without_positions_and_placed_by_a_montage_step(tmp_path):
    from neurofm.io.montage import montage_positions
    from tests.test_bad_input import biosemi_edf

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "cap.edf").write_bytes(biosemi_edf((EEGMAT / "rest" / "Subject00_1_first62s.edf").read_bytes()))
    source = tree_digest(folder)
    proc = _preprocess(f"folder:{folder}", tmp_path / "refused")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("- ")]
    assert "cap.edf: 19 channel label(s) (A1, A2, A3, …, A19) are BioSemi cap labels, not 10-05 electrodes" in line
    assert "HINT: give the cap's positions: add '- montage: {name: biosemi128}'" in line
    assert not list((tmp_path / "refused" / "shards").glob("*.npy"))

    recipe = (REPO / "pipelines" / "eeg-200hz.yaml").read_text().replace(
        "steps:\n", "steps:\n  - montage: {name: biosemi128}\n", 1)
    (tmp_path / "r.yaml").write_text(recipe)
    proc = run_cli("preprocess", "--dataset", f"folder:{folder}", "--config", str(tmp_path / "r.yaml"),
                   "--out", str(tmp_path / "s"), "--no-report")
    assert proc.returncode == 0, proc.stderr
    (rec,) = json.loads((tmp_path / "s" / "manifest.json").read_text())["recordings"]
    chans = {c["name"]: c for c in rec["channels"]}
    assert sorted(chans, key=lambda n: int(n[1:])) == [f"A{k}" for k in range(1, 20)]
    cap = montage_positions({"name": "biosemi128"})
    for name in ("A1", "A7", "A19"):          # the cap's sites, not the 10-05 A1 (ear) or any template namesake
        assert np.allclose(chans[name]["pos"], cap[name], atol=1e-6)
    # every dropped channel is on the console, not only in the report
    assert "  dropped 1 channel(s) (misc): EEG A2-A1 — in 1 recording(s): cap\n" in proc.stdout
    assert "  dropped 1 channel(s) (ecg): ECG ECG — in 1 recording(s): cap\n" in proc.stdout
    assert tree_digest(folder) == source


def test_unknown_montage_name_is_a_recipe_error(tmp_path):
    recipe = (REPO / "pipelines" / "eeg-200hz.yaml").read_text().replace(
        "steps:\n", "steps:\n  - montage: {name: biosemi127}\n", 1)
    (tmp_path / "r.yaml").write_text(recipe)
    proc = run_cli("preprocess", "--dataset", f"folder:{EEGMAT / 'rest'}", "--config", str(tmp_path / "r.yaml"),
                   "--out", str(tmp_path / "s"))
    user_error(proc, "unknown montage name 'biosemi127'", "Did you mean 'biosemi128'")
    assert not (tmp_path / "s").exists()


# -- every file accounted for (issue 13, case 3) ------------------------------------------------------

def test_folder_of_unknown_tables_lists_each_file_with_a_hint(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(EEGMAT / "subject-info.csv", folder / "subject-info.csv")
    (folder / "export.csv").write_text("time;value\n0;1\n")
    source = tree_digest(folder)
    proc = _preprocess(f"folder:{folder}", tmp_path / "s")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "no recordings found" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("- ")]
    assert len(lines) == 2 and all("not a Muse (eeg-notebooks, Mind Monitor) or OpenBCI GUI export" in ln
                                   and "HINT: neurofm reads Muse" in ln for ln in lines), proc.stderr
    assert tree_digest(folder) == source and not list((tmp_path / "s" / "shards").glob("*.npy"))


def test_consumer_tables_companions_and_a_hypnogram_beside_its_psg(tmp_path):
    from tests.io.test_tabular import write_mind_monitor, write_muse
    from tests.test_bad_input import hypnogram_edf

    folder = tmp_path / "in"
    (folder / "muse").mkdir(parents=True)
    write_muse(folder / "muse" / "Subject01_rest.csv", markers={1000: 1})
    write_mind_monitor(folder / "muse" / "Subject01_task.csv")
    for ext in ("vhdr", "eeg", "vmrk"):
        shutil.copy(FORMATS / "brainvision" / f"test_CA_208.{ext}", folder / f"test_CA_208.{ext}")
    shutil.copy(FORMATS / "brainvision" / "test_CA_208.vmrk", folder / "test_CA_208.amrk")   # V-Amp marker file
    psg = (EEGMAT / "rest" / "Subject00_1_first62s.edf").read_bytes()
    (folder / "SC4001E0-PSG.edf").write_bytes(psg)
    (folder / "SC4001EC-Hypnogram.edf").write_bytes(hypnogram_edf(psg, ["Sleep stage W", "Sleep stage 2", "Sleep stage R"]))
    source = tree_digest(folder)
    proc = _preprocess(f"folder:{folder}", tmp_path / "s", "--line-freq", "50")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "4 processed" in proc.stdout
    recs = {r["id"]: r for r in json.loads((tmp_path / "s" / "manifest.json").read_text())["recordings"]}
    assert sorted(recs) == ["SC4001E0-PSG", "muse_Subject01_rest", "muse_Subject01_task", "test_CA_208"]
    # one person's rest and task tables are one subject; Sleep-EDF SC4001 is subject SC400
    assert recs["muse_Subject01_rest"]["subject"] == recs["muse_Subject01_task"]["subject"] == "01"
    assert recs["SC4001E0-PSG"]["subject"] == "SC400"
    assert recs["muse_Subject01_rest"]["sfreq"] == 200.0 and [c["name"] for c in recs["muse_Subject01_rest"]["channels"]] \
        == ["TP9", "AF7", "AF8", "TP10"]
    assert {e["label"] for e in recs["muse_Subject01_rest"]["events"]} == {"1"}
    assert {e["label"] for e in recs["muse_Subject01_task"]["events"]} == {"/Marker/1", "/Marker/2"}
    # the hypnogram's stages are the PSG's window labels (4-s windows: 30 s of W, 30 s of stage 2)
    labels = recs["SC4001E0-PSG"]["labels"]
    assert labels[:7] == ["Sleep stage W"] * 7 and labels[8:15] == ["Sleep stage 2"] * 7
    assert recs["SC4001E0-PSG"]["info"]["annotations"].endswith("SC4001EC-Hypnogram.edf")
    assert tree_digest(folder) == source

    # the hypnogram read on its own: a clear error naming the PSG it belongs with
    from neurofm.io import read_raw

    with pytest.raises(Exception, match=r"annotation-only EDF.*belongs with the PSG recording SC4001E0-PSG.edf.*HINT"):
        read_raw(folder / "SC4001EC-Hypnogram.edf")


def test_openbci_without_positions_refused_with_the_rename_fix_then_named_by_the_recipe(tmp_path):
    from tests.io.test_tabular import write_openbci

    folder = tmp_path / "in"
    folder.mkdir()
    write_openbci(folder / "OpenBCI-RAW-2024.txt", rate_line=False, timestamps=False)
    source = tree_digest(folder)
    proc = _preprocess(f"folder:{folder}", tmp_path / "a")
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("- ")]
    assert proc.returncode == 1 and "sampling rate is unknown" in line and "HINT: pass --sfreq" in line
    proc = _preprocess(f"folder:{folder}", tmp_path / "b", "--sfreq", "500")
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("- ")]
    assert proc.returncode == 1 and "EXG Channel 0" in line and "rename:" in line
    recipe = (REPO / "pipelines" / "eeg-200hz.yaml").read_text().replace("steps:\n", "steps:\n  - montage: {rename: "
                                                                          "{EXG Channel 0: Fp1, EXG Channel 1: Fp2, "
                                                                          "EXG Channel 2: C3, EXG Channel 3: C4}}\n", 1)
    (tmp_path / "r.yaml").write_text(recipe)
    proc = run_cli("preprocess", "--dataset", f"folder:{folder}", "--config", str(tmp_path / "r.yaml"), "--out",
                   str(tmp_path / "c"), "--no-report", "--sfreq", "500", "--line-freq", "60")
    assert proc.returncode == 0, proc.stderr
    (rec,) = json.loads((tmp_path / "c" / "manifest.json").read_text())["recordings"]
    assert [c["name"] for c in rec["channels"]] == ["Fp1", "Fp2", "C3", "C4"] and all(c["pos"] for c in rec["channels"])
    assert [e["label"] for e in rec["events"]] == ["7"] and rec["line_freq"] == 60.0
    assert tree_digest(folder) == source


def write_egi_raw(path: Path, seconds: float = 20.0) -> None:
    """An EGI simple-binary .raw (float, continuous) holding EEGMAT's 19 scalp channels under EGI labels E1…E19."""
    import mne

    raw = mne.io.read_raw_edf(EEGMAT / "rest" / "Subject00_1_first62s.edf", preload=True, verbose="error")
    sf = int(raw.info["sfreq"])
    x = raw.get_data(picks=[c for c in raw.ch_names if c.startswith("EEG ") and "-" not in c])[:, : int(seconds * sf)]
    with open(path, "wb") as fid:
        np.array([4], ">i4").tofile(fid)                       # version 4: float, unsegmented
        np.array([2024, 3, 1, 10, 0, 0], ">i2").tofile(fid)   # date and time
        np.array([0], ">i4").tofile(fid)
        np.array([sf, len(x), 1, 32, 0], ">i2").tofile(fid)   # rate, channels, gain, bits, range
        np.array([x.shape[1]], ">i4").tofile(fid)
        np.array([0], ">i2").tofile(fid)                      # no event channels
        (x.T * 1e6).astype(">f4").tofile(fid)                 # µV


def test_egi_raw_file_is_read_and_its_labels_need_the_net_positions(tmp_path):
    from neurofm.io.montage import montage_positions

    folder = tmp_path / "in"
    folder.mkdir()
    write_egi_raw(folder / "net.raw")
    source = tree_digest(folder)
    proc = _preprocess(f"folder:{folder}", tmp_path / "a", "--line-freq", "50")
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("- ")]
    assert proc.returncode == 1 and "net.raw: 19 channel label(s) (E1, E2, E3, …, E19) are EGI cap labels" in line
    assert "HINT: give the cap's positions: add '- montage: {name: GSN-HydroCel-32}'" in line
    recipe = (REPO / "pipelines" / "eeg-200hz.yaml").read_text().replace(
        "steps:\n", "steps:\n  - montage: {name: GSN-HydroCel-129}\n", 1)
    (tmp_path / "r.yaml").write_text(recipe)
    proc = run_cli("preprocess", "--dataset", f"folder:{folder}", "--config", str(tmp_path / "r.yaml"), "--out",
                   str(tmp_path / "b"), "--no-report", "--line-freq", "50")
    assert proc.returncode == 0, proc.stderr
    (rec,) = json.loads((tmp_path / "b" / "manifest.json").read_text())["recordings"]
    net = montage_positions({"name": "GSN-HydroCel-129"})
    assert len(rec["channels"]) == 19 and all(np.allclose(c["pos"], net[c["name"]], atol=1e-6) for c in rec["channels"])
    assert tree_digest(folder) == source
