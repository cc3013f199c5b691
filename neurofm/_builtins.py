"""Built-in registry entries. Lazy import strings only: importing this module imports nothing heavy."""

from __future__ import annotations

from neurofm._resources import shipped_dir, yaml_files
from neurofm.registry import register_dataset, register_model, register_pipeline, register_task

_DATASETS = {
    "eegmat": ("neurofm.datasets.scalp:EEGMAT", "PhysioNet EEGMAT: 24 subjects, 19-ch EEG at 500 Hz, rest vs mental arithmetic",
               dict(licence="ODC-By 1.0", sfreq=500.0, labels=["rest", "arithmetic"], modality="eeg")),
    "eegmmidb": ("neurofm.datasets.scalp:EEGMMIDB", "PhysioNet Motor Movement/Imagery S001 (14 runs) + S002-S004 (fist runs): 64-ch EEG at 160 Hz, T0/T1/T2 per run",
                 dict(licence="ODC-By 1.0", sfreq=160.0, labels=["rest", "left_fist", "right_fist", "both_fists", "both_feet"],
                      modality="eeg")),
    "uci-alcohol": ("neurofm.datasets.uci:UCIAlcohol", "UCI EEG Database: 16 subjects (8 alcoholic, 8 control), 30 1-s trials, 61 EEG + X/Y/nd at 256 Hz",
                    dict(licence="CC BY 4.0", sfreq=256.0, labels=["alcoholic", "control"], modality="eeg")),
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
    "folder": ("neurofm.datasets.generic:Folder", "folder:PATH — every recording MNE reads below PATH, plus Muse/OpenBCI tables", dict(licence="yours")),
    "bids": ("neurofm.datasets.generic:BIDS", "bids:PATH — any BIDS EEG/iEEG tree through mne-bids", dict(licence="yours")),
}
for _name, (_target, _desc, _meta) in _DATASETS.items():
    register_dataset(_name, _target, _desc, **_meta)

# Preprocessing recipes: every YAML file in $NEUROFM_PIPELINES folders, then the shipped pipelines/ (checkout
# or package data); a user recipe shadows a shipped one of the same name.
PIPELINE_DIR = shipped_dir("pipelines")
for _path in yaml_files("pipelines"):
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
# Under braindecode's contract, from spd-learn: the neural counterpart of re-centred tangent space.
register_model("tsmnet", "neurofm.models.spd:TSMNet",
               "TSMNet (Kobler et al. 2022): conv → covariance → SPDNet → SPD batch norm → tangent space; spd-learn",
               family="braindecode")

# neurofm tokenizers (multi-scale RVQ and the single-codebook baseline).
_TOKENIZERS = {
    "neurorvq-tiny": ("neurorvq:neurorvq_tiny", "NeuroRVQ-style tokenizer, 4 scales × 11 levels × 512 codes; trains on a CPU"),
    "neurorvq-base": ("neurorvq:neurorvq_base", "NeuroRVQ-style tokenizer, reference size: 4 scales × 8 levels × 8192 codes"),
    "labram-vq-tiny": ("labram_vq:labram_vq_tiny", "LaBraM-style single-codebook VQ tokenizer (8192 codes), tiny"),
    "labram-vq-base": ("labram_vq:labram_vq_base", "LaBraM-style single-codebook VQ tokenizer (8192 × 64), base"),
}
for _name, (_target, _desc) in _TOKENIZERS.items():
    register_model(_name, f"neurofm.models.tokenizers.{_target}", _desc, family="neurofm-tokenizer")

# Classical decoding baselines (scikit-learn / pyriemann; saved as arrays + JSON, never pickled).
register_model("bandpower-lr", "neurofm.decoding.classical:BandPowerLR",
               "log band power per channel (Welch) + logistic regression (C chosen on validation)", family="classical")
register_model("tangentspace-lr", "neurofm.decoding.classical:TangentSpaceLR",
               "Riemannian tangent space of covariances (pyriemann) + logistic regression", family="classical")

# Decoding tasks: built-ins (neurofm.tasks.builtin) and every YAML file in configs/tasks/ (no code needed).
_TASKS = {
    "eegmat-arithmetic": ("eegmat", "EEGMAT rest vs mental arithmetic, 4-s windows, by subject: train 00-17, val 18-20, test 21-23"),
    "eegmmidb-imagery-lr": ("eegmmidb", "EEGMMIDB S001 imagined left vs right fist, 4-s cue windows, by run: R04 / R08 / R12"),
    "eegmmidb-imagery-ff": ("eegmmidb", "EEGMMIDB S001 imagined both fists vs both feet, 4-s cue windows, by run: R06 / R10 / R14"),
    "bonn-3class": ("bonn", "Bonn healthy vs interictal vs ictal, 4-s windows, by segment 70/15/15 %"),
    "ecog-seizure-onset": ("epilepsy-ecog", "ECoG pre-ictal vs ictal, 1-s windows, time blocks within each state (AUROC)"),
    "gripforce-regression": ("gripforce", "ECoG + STN-LFP → grip force per 1-s window, time blocks (Pearson r)"),
}
for _name, (_dataset, _desc) in _TASKS.items():
    register_task(_name, f"neurofm.tasks.builtin:{_name.replace('-', '_')}", _desc, dataset=_dataset, builtin=True)
TASK_DIR = shipped_dir("tasks")
for _path in yaml_files("tasks"):
    _first = next((_ln.split(":", 1)[1].strip().strip("\"'") for _ln in _path.read_text().splitlines()
                   if _ln.startswith("description:")), "")
    register_task(_path.stem, "neurofm.tasks.spec:load_task_file", _first, path=str(_path))
register_model("lbm-tiny", "neurofm.models.lbm:lbm_tiny", "Masked-token large brainwave model on tokenizer codes, tiny (4 × 128)",
               family="neurofm-encoder")
register_model("lbm-base", "neurofm.models.lbm:lbm_base", "Masked-token large brainwave model on tokenizer codes, base (12 × 200)",
               family="neurofm-encoder")

# Du-IN-style intracranial models (neurofm.models.duin): VQ-VAE, masked code model, classifier/regressor.
_DUIN = {
    "vqvae": "Du-IN VQ-VAE: per-subject fusion, 100-ms patch tokens, transformer, 1 codebook; reconstructs the waveforms",
    "mcm": "Du-IN masked code model: 50 % + complementary masks, cross-entropy on a frozen Du-IN VQ-VAE's codes",
    "classifier": "Du-IN encoder + classifier (flatten → 128 → n_outputs) or per-token regression head",
}
for _kind, _desc in _DUIN.items():
    register_model(f"duin-{_kind}", f"neurofm.models.duin.model:duin_{_kind}", f"{_desc} (size=base|tiny)",
                   family="neurofm-encoder")
    for _size in ("tiny", "base"):
        register_model(f"duin-{_kind}-{_size}", f"neurofm.models.duin.model:duin_{_kind}_{_size}",
                       f"{_desc} ({_size})", family="neurofm-encoder", size=_size)
register_dataset("duin-release", "neurofm.datasets.speech:DuINRelease",
                 "Du-IN release: per-subject pickled 3-s word epochs, sEEG 1000 Hz (--root PATH; restricted unpickler)",
                 licence="see the release", sfreq=1000.0, modality="seeg")
register_dataset("speech-bids", "neurofm.datasets.speech:SpeechBIDS",
                 "BIDS iEEG with word onsets in events.tsv (SingleWordProductionDutch layout, NWB or MNE formats; --root PATH)",
                 licence="see the dataset", modality="seeg")
