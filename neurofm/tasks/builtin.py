"""Built-in decoding tasks. Each entry point returns the task mapping; ``get_task`` validates it.

User tasks need no code: a YAML file in ``configs/tasks/`` with the same keys (see ``spec.py``).
"""

from __future__ import annotations

from typing import Any


def eegmat_arithmetic() -> dict[str, Any]:
    return dict(
        name="eegmat-arithmetic", dataset="eegmat", recipe="eeg-200hz",
        description="EEGMAT rest vs mental arithmetic, 4-s windows, split by subject (train 00-17, val 18-20, test 21-23)",
        labels=["rest", "arithmetic"],
        split=dict(by="subject", train=[f"{i:02d}" for i in range(18)], val=["18", "19", "20"],
                   test=["21", "22", "23"]),
        metric="balanced_accuracy")


def _mmidb(name: str, runs: tuple[str, str, str], labels: list[str], what: str) -> dict[str, Any]:
    return dict(
        name=name, dataset="eegmmidb", recipe="eeg-200hz-events",
        description=f"EEGMMIDB S001 imagined {what}, 4-s cue-locked windows, split by run "
                    f"(train R{runs[0]}, val R{runs[1]}, test R{runs[2]})",
        recordings=dict(subject=["S001"], run=list(runs)), labels=labels,
        split=dict(by="run", train=[runs[0]], val=[runs[1]], test=[runs[2]]), metric="balanced_accuracy")


def eegmmidb_imagery_lr() -> dict[str, Any]:
    return _mmidb("eegmmidb-imagery-lr", ("04", "08", "12"), ["left_fist", "right_fist"], "left vs right fist")


def eegmmidb_imagery_ff() -> dict[str, Any]:
    return _mmidb("eegmmidb-imagery-ff", ("06", "10", "14"), ["both_fists", "both_feet"], "both fists vs both feet")


def bonn_3class() -> dict[str, Any]:
    return dict(
        name="bonn-3class", dataset="bonn", recipe="single-channel-200hz",
        description="Bonn A/D/E healthy vs interictal vs ictal, 4-s windows, split by segment (70/15/15 %)",
        labels=["healthy", "interictal", "ictal"], split=dict(by="subject", val=0.15, test=0.15, seed=0),
        metric="balanced_accuracy")


def ecog_seizure_onset() -> dict[str, Any]:
    return dict(
        name="ecog-seizure-onset", dataset="epilepsy-ecog", recipe="ieeg-250hz-1s",
        description="ECoG pre-ictal vs ictal, 1-s windows every 0.5 s, time-blocked split inside each state",
        labels=["preictal", "ictal"], split=dict(by="time", val=0.2, test=0.2), metric="auroc")


def gripforce_regression() -> dict[str, Any]:
    return dict(
        name="gripforce-regression", dataset="gripforce", recipe="ieeg-250hz-1s",
        description="ECoG + STN-LFP → mean grip force per 1-s window (every 0.25 s), time-blocked split, Pearson r",
        window=dict(stride_s=0.25), kind="regression", target="mean",
        split=dict(by="time", val=0.2, test=0.2), metric="pearson_r")
