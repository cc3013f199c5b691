"""A tiny encoder that follows the neurofm encoder protocol, registered for the heads tests."""

from __future__ import annotations

import pytest
from einops import rearrange, repeat
from torch import nn

from neurofm import registry


class DummyEncoder(nn.Module):
    """1-s patches per channel → Linear → GELU → Linear: one token per (channel, patch).

    The encoder protocol: ``num_features``; ``forward_features(x, *, pos, mask, ch_names)`` →
    ``(tokens (B, C·P, D), token_mask (B, C·P))``; ``layer_groups()`` input → output.
    """

    def __init__(self, patch_size: int = 200, dim: int = 16, sfreq: float | None = None):
        super().__init__()
        self.patch_size, self.num_features = patch_size, dim
        self.embed = nn.Linear(patch_size, dim)
        self.block = nn.Sequential(nn.GELU(), nn.Linear(dim, dim))
        self.calls: list[dict] = []

    def forward_features(self, x, *, pos=None, mask=None, ch_names=None):
        self.calls.append(dict(pos=pos, mask=mask, ch_names=ch_names))
        p = x.shape[-1] // self.patch_size
        tokens = self.block(self.embed(rearrange(x[..., :p * self.patch_size], "b c (p s) -> b (c p) s",
                                                 s=self.patch_size)))
        token_mask = None if mask is None else repeat(mask, "b c -> b (c p)", p=p)
        return tokens, token_mask

    def layer_groups(self):
        return [list(self.embed.parameters()), list(self.block.parameters())]


@pytest.fixture(scope="session")
def dummy_encoder_name():
    name = "dummy-encoder-test"
    registry.register_model(name, DummyEncoder, "protocol-following test encoder", family="neurofm-encoder")
    yield name
    registry.unregister("models", name)


@pytest.fixture(scope="session")
def eegmat_data(eegmat_three, task_cache):
    from neurofm.tasks.data import load_task
    from neurofm.tasks.spec import parse_task

    task = parse_task(dict(name="eegmat-3", dataset="eegmat", recipe="eeg-200hz", labels=["rest", "arithmetic"],
                           split=dict(by="subject", train=["00"], val=["01"], test=["02"])))
    return load_task(task, root=eegmat_three, cache=task_cache, verbose=False)
