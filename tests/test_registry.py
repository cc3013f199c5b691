import subprocess
import sys

import pytest

from neurofm import registry
from neurofm._errors import RegistryError
from tests.conftest import run_cli


def test_builtin_datasets_cover_every_shared_folder():
    names = set(registry.list_datasets())
    assert {"eegmat", "eegmmidb", "epilepsy-seeg", "epilepsy-ecog", "bonn", "gripforce", "motor-ecog",
            "folder", "bids"} <= names


def test_glob_patterns_and_pipelines():
    assert registry.list_datasets("epilepsy-*") == ["epilepsy-ecog", "epilepsy-seeg"]
    assert {"eeg-200hz", "seeg-1000hz"} <= set(registry.list_pipelines())
    assert "eegnet" in registry.list_models("eeg*")


def test_duplicate_name_is_an_error():
    registry.register_dataset("tmp-dup-test", "neurofm.datasets.scalp:EEGMAT", "x")
    try:
        with pytest.raises(RegistryError, match="already registered"):
            registry.register_dataset("tmp-dup-test", "neurofm.datasets.scalp:EEGMAT", "y")
    finally:
        registry.unregister("datasets", "tmp-dup-test")


def test_unknown_name_suggests_nearest():
    with pytest.raises(RegistryError, match="Did you mean 'eegmat'"):
        registry.get_entry("datasets", "eegmta")


def test_create_braindecode_model_by_name():
    model = registry.create_model("shallow-fbcspnet", n_chans=19, n_outputs=2, n_times=800, sfreq=200)
    import torch

    assert model(torch.zeros(2, 19, 800)).shape == (2, 2)


def test_list_does_not_import_torch_or_mne():
    code = ("import sys; from neurofm.cli import main; main(['list', 'models']); "
            "assert 'torch' not in sys.modules and 'mne' not in sys.modules, 'heavy import'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "shallow-fbcspnet" in proc.stdout


def test_cli_list_prints_table_with_descriptions():
    proc = run_cli("list", "datasets", "eeg*")
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["eegmat", "eegmmidb"]
    assert all(len(ln.split(None, 1)) == 2 for ln in lines)
