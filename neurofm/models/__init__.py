"""Models: tokenizers (multi-scale RVQ, single VQ), the LBM masked-token model, Du-IN; weights I/O in ``_hub``."""

from neurofm.models._contract import SignalContract

__all__ = ["SignalContract", "from_pretrained"]


def from_pretrained(directory, **overrides):
    """Load an exported model directory (safetensors + config.json, sha256-checked) or shipped weights by name.

    ``from_pretrained("neurorvq-tiny.eeg")`` loads the weights in ``neurofm/weights/neurorvq-tiny.eeg/``
    offline; ``neurofm list models --pretrained`` lists the names.
    """
    from neurofm.models._hub import from_pretrained as _load

    return _load(directory, **overrides)
