"""LightningDataModule over one or more stores, with subject-wise splits and training-split normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler, RandomSampler

from neurofm._errors import StoreError
from neurofm.data.dataset import WindowDataset, WindowStore, channel_stats, collate, split_by_subject


class EpochSeededSampler(RandomSampler):
    """Shuffles with a generator seeded by (seed, epoch): the order of epoch k is the same in a resumed run.

    Lightning calls ``set_epoch`` before every epoch (and replaces this sampler by a
    ``DistributedSampler``, also seeded per epoch, under DDP).
    """

    def __init__(self, data_source, seed: int = 0):
        super().__init__(data_source)
        self.seed, self.epoch = seed, 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, n_samples: int) -> None:
        """The next pass over ``epoch`` starts after its first ``n_samples`` (consumed before a checkpoint)."""
        self._resume = (int(epoch), int(n_samples))

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.data_source), generator=g).tolist()
        resume, self._resume = self._resume, None
        if resume is not None and resume[0] == self.epoch:
            order = order[resume[1]:]
        yield from order


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (this rank's share, shuffled by seed + epoch) that can resume mid-epoch exactly.

    Used under DDP instead of the plain one Lightning would put in (it leaves DistributedSamplers alone):
    found by the SLURM requeue run, where a resumed job replayed the epoch's first batches and ended with
    other weights than an uninterrupted run.
    """

    def __init__(self, dataset, seed: int = 0, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, n_samples: int) -> None:
        """The next pass over ``epoch`` starts after this rank's first ``n_samples``."""
        self._resume = (int(epoch), int(n_samples))

    def __iter__(self):
        order = list(super().__iter__())
        resume, self._resume = self._resume, None
        if resume is not None and resume[0] == self.epoch:
            order = order[resume[1]:]
        return iter(order)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


class ResumableLoader(DataLoader):
    """A DataLoader that resumes mid-epoch exactly: Lightning saves its ``state_dict`` in checkpoints.

    Lightning restarts a plain DataLoader from the start of the epoch after a mid-epoch checkpoint
    (replaying batches already trained on). This one records (epoch, batches consumed) and, on
    ``load_state_dict``, makes its :class:`EpochSeededSampler` skip them, so the rest of the epoch's
    order is the one an uninterrupted run would have seen.

    Parameters
    ----------
    position : callable
        Returns (epoch, batches consumed in that epoch) at checkpoint time (the trainer's progress).
    """

    def __init__(self, *args, position=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.position = position

    def state_dict(self) -> dict:
        epoch, batches = self.position() if self.position is not None else (0, 0)
        return {"epoch": int(epoch), "batches": int(batches)}

    def load_state_dict(self, state: dict) -> None:
        batches = int(state.get("batches", 0))
        if not batches or batches >= len(self):  # saved at an epoch boundary: the next epoch starts fresh
            return
        if hasattr(self.sampler, "resume_at"):
            self.sampler.resume_at(int(state.get("epoch", 0)), batches * (self.batch_size or 1))
        else:  # e.g. a DistributedSampler put in by Lightning under DDP
            import warnings

            warnings.warn("resuming mid-epoch with a sampler that cannot skip consumed samples: the rest of the "
                          "epoch replays its first batches.", stacklevel=2)


def _train_position(module: L.LightningDataModule) -> tuple[int, int]:
    """(epoch, training batches consumed in it) for a checkpoint written now."""
    trainer = getattr(module, "trainer", None)
    if trainer is None:
        return 0, 0
    return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed


def store_loader(module: L.LightningDataModule, data, *, shuffle: bool, drop_last: bool = False) -> DataLoader:
    """The loader of a neurofm DataModule (``batch_size``, ``num_workers``, ``seed`` in its hparams).

    Training loaders shuffle with an (seed, epoch)-seeded sampler and resume mid-epoch exactly.
    """
    hp = module.hparams
    kw = dict(batch_size=hp.batch_size, num_workers=hp.num_workers, collate_fn=collate,
              persistent_workers=hp.num_workers > 0)
    if shuffle:
        sampler = ResumableDistributedSampler(data, hp.seed) if _distributed() else EpochSeededSampler(data, hp.seed)
        return ResumableLoader(data, sampler=sampler, drop_last=drop_last,
                               position=lambda: _train_position(module), **kw)
    return DataLoader(data, **kw)


class StoreDataModule(L.LightningDataModule):
    """Train/val/test loaders over stores made by ``neurofm preprocess``.

    Parameters
    ----------
    store : str | list of str
        Store directory, or several stores with the same rate and window length (e.g. two datasets).
        With several stores, subjects are named ``<dataset>:<subject>`` so they never collide.
    batch_size, num_workers : int
        DataLoader settings.
    val_subjects, test_subjects : list of str | float
        Explicit subject ids, or fractions of subjects (per store).
    split_by : str
        ``"subject"`` (default) or ``"recording"`` (for single-subject stores).
    normalize : bool
        z-score each channel with statistics of the *training* split only.
    seed : int
        Seed of the subject shuffle.
    """

    def __init__(self, store: str | list[str], batch_size: int = 32, num_workers: int = 0,
                 val_subjects: Sequence[str] | float = 0.15, test_subjects: Sequence[str] | float = 0.15,
                 split_by: str = "subject", normalize: bool = False, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict = {}
        self.stats = None

    @property
    def store_paths(self) -> list[str]:
        s = self.hparams.store
        return [s] if isinstance(s, str) else list(s)

    @property
    def manifest(self) -> dict:
        """The (first) store's manifest, after ``setup``."""
        self.setup()
        return self.stores_[0].manifest

    @property
    def manifests(self) -> list[dict]:
        """Every store's manifest, after ``setup``."""
        self.setup()
        return [s.manifest for s in self.stores_]

    def _split(self, store: WindowStore) -> dict:
        hp = self.hparams
        groups = None
        if hp.split_by == "recording":
            groups = [store.recordings[r]["id"] for r in store.rec_index]
        multi = len(self.store_paths) > 1

        def own(spec):  # explicit ids may be given as "dataset:subject" when several stores are used
            if isinstance(spec, float) or not multi:
                return spec
            name = store.manifest["dataset"].get("name", "")
            return [s.split(":", 1)[1] for s in spec if s.startswith(f"{name}:")]

        return split_by_subject(store.subjects, val=own(hp.val_subjects), test=own(hp.test_subjects), seed=hp.seed,
                                groups=groups)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.stores_ = [WindowStore(p) for p in self.store_paths]
        first = self.stores_[0]
        for other in self.stores_[1:]:
            a, b = first.recordings[0], other.recordings[0]
            if (a["sfreq"], a["n_times"], a.get("units")) != (b["sfreq"], b["n_times"], b.get("units")):
                raise StoreError(f"store has sfreq/n_times/units {b['sfreq'], b['n_times'], b.get('units')} but "
                                 f"{first.root} has {a['sfreq'], a['n_times'], a.get('units')}.", source=other.root,
                                 hint="preprocess every store with the same recipe (same resample and window_s).")
        self.store_ = first
        per_store = [self._split(s) for s in self.stores_]
        if self.hparams.normalize:
            stats: dict = {}
            for s, idx in zip(self.stores_, per_store, strict=True):
                stats.update(channel_stats(s, idx["train"]))
            self.stats = stats
        label_names = sorted({str(v) for s in self.stores_ for v in s.labels if v})
        label_map = {lab: k for k, lab in enumerate(label_names)}
        self.label_map = label_map
        self.splits = {}
        for split in ("train", "val", "test"):
            parts = [WindowDataset(s, idx[split], label_map=label_map, stats=self.stats)
                     for s, idx in zip(self.stores_, per_store, strict=True)]
            self.splits[split] = parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return store_loader(self, self.splits[split], shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
