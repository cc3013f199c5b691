"""Built-in registry entries. Lazy import strings only: importing this module imports nothing heavy."""

from __future__ import annotations

from pathlib import Path

from neurofm.registry import register_dataset, register_model, register_pipeline

_DATASETS = {
    "eegmat": ("neurofm.datasets.scalp:EEGMAT", "PhysioNet EEGMAT: 24 subjects, 19-ch EEG at 500 Hz, rest vs mental arithmetic",
               dict(licence="ODC-By 1.0", sfreq=500.0, labels=["rest", "arithmetic"], modality="eeg")),
    "eegmmidb": ("neurofm.datasets.scalp:EEGMMIDB", "PhysioNet Motor Movement/Imagery S001: 64-ch EEG at 160 Hz, T0/T1/T2 per run",
                 dict(licence="ODC-By 1.0", sfreq=160.0, labels=["rest", "left_fist", "right_fist", "both_fists", "both_feet"],
                      modality="eeg")),
    "epilepsy-seeg": ("neurofm.datasets.intracranial:EpilepsySEEG", "sEEG, one epilepsy patient: 88 depth contacts on 6 shafts, 1000 Hz, atlas labels",
                      dict(licence="BSD-3 / CC0", sfreq=1000.0, modality="seeg")),
    "epilepsy-ecog": ("neurofm.datasets.intracranial:EpilepsyECoG", "ECoG, one epilepsy patient: 76 contacts, ~1 kHz, seizure onset annotated",
                      dict(licence="BSD-3 / CC0", sfreq=999.4, labels=["preictal", "ictal"], modality="ecog")),
    "bonn": ("neurofm.datasets.intracranial:Bonn", "Bonn epilepsy sets A/D/E: 300 single-channel segments, healthy/interictal/ictal",
             dict(licence="CC BY 4.0", sfreq=173.61, labels=["healthy", "interictal", "ictal"], modality="eeg")),
    "gripforce": ("neurofm.datasets.intracranial:GripForce", "BIDS ECoG + STN-LFP, 1000 Hz, continuous grip force MOV_RIGHT (regression)",
                  dict(licence="MIT", sfreq=1000.0, target_channel="MOV_RIGHT", modality="ecog")),
    "motor-ecog": ("neurofm.datasets.intracranial:MotorECoG", "1 ECoG channel over M1, 1000 Hz, 10 s (NumPy, µV)",
                   dict(licence="Apache-2.0", sfreq=1000.0, modality="ecog")),
    "folder": ("neurofm.datasets.generic:Folder", "folder:PATH — every recording MNE reads below PATH", dict(licence="yours")),
    "bids": ("neurofm.datasets.generic:BIDS", "bids:PATH — any BIDS EEG/iEEG tree through mne-bids", dict(licence="yours")),
}
for _name, (_target, _desc, _meta) in _DATASETS.items():
    register_dataset(_name, _target, _desc, **_meta)

# Preprocessing recipes: every YAML file in pipelines/ at the repository root.
PIPELINE_DIR = Path(__file__).resolve().parents[1] / "pipelines"
for _path in sorted(PIPELINE_DIR.glob("*.yaml")):
    _first = ""
    for _line in _path.read_text().splitlines():
        if _line.startswith("description:"):
            _first = _line.split(":", 1)[1].strip().strip("\"'")
            break
    register_pipeline(_path.stem, "neurofm.preprocessing.recipe:load_recipe_file", _first, path=str(_path))

# braindecode models as baselines (constructed through the braindecode model contract).
_BRAINDECODE = {
    "eegnet": ("EEGNet", "EEGNet (Lawhern et al. 2018), compact CNN; braindecode baseline"),
    "shallow-fbcspnet": ("ShallowFBCSPNet", "Shallow FBCSP ConvNet (Schirrmeister et al. 2017); braindecode baseline"),
    "deep4net": ("Deep4Net", "Deep4Net (Schirrmeister et al. 2017); braindecode baseline"),
    "labram-braindecode": ("Labram", "LaBraM transformer from scratch (Jiang et al. 2024); braindecode implementation"),
}
for _name, (_cls, _desc) in _BRAINDECODE.items():
    register_model(_name, f"braindecode.models:{_cls}", _desc, family="braindecode")
