"""Under DDP a mid-epoch resume continues each rank's share exactly (was: the epoch's first batches replayed)."""

from __future__ import annotations

from torch.utils.data import DistributedSampler

from neurofm.data.datamodule import ResumableDistributedSampler


def test_distributed_sampler_resumes_mid_epoch_exactly():
    data = list(range(45))
    for rank in (0, 1):
        full = ResumableDistributedSampler(data, seed=3, num_replicas=2, rank=rank)
        full.set_epoch(2)
        order = list(full)
        # the same share as torch's own DistributedSampler with that seed (what Lightning would have used)
        ref = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=3)
        ref.set_epoch(2)
        assert order == list(ref)
        resumed = ResumableDistributedSampler(data, seed=3, num_replicas=2, rank=rank)
        resumed.resume_at(2, 8)
        resumed.set_epoch(2)
        assert list(resumed) == order[8:]
        assert list(resumed) == order  # only the first pass after the resume skips
    shares = [set(ResumableDistributedSampler(data, num_replicas=2, rank=r)) for r in (0, 1)]
    assert shares[0] | shares[1] == set(data)
    assert isinstance(ResumableDistributedSampler(data, num_replicas=2, rank=0), DistributedSampler)  # Lightning keeps it
