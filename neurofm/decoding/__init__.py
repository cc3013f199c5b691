"""Decoders: heads on encoder tokens, braindecode models and classical baselines, fine-tuned on tasks.

Importing this package is cheap; ``finetune``, ``evaluate_decoder`` and ``run_benchmark`` load torch
when called.
"""

__all__ = ["finetune", "evaluate_decoder", "run_benchmark", "Decoder"]


def __getattr__(name: str):
    if name == "finetune":
        from neurofm.decoding.finetune import finetune

        return finetune
    if name == "evaluate_decoder":
        from neurofm.decoding.evaluate import evaluate_decoder

        return evaluate_decoder
    if name == "run_benchmark":
        from neurofm.decoding.benchmark import run_benchmark

        return run_benchmark
    if name == "Decoder":
        from neurofm.decoding.decoder import Decoder

        return Decoder
    raise AttributeError(name)
