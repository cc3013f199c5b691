"""LightningDataModule over a store, with subject-wise splits and training-split normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from torch.utils.data import DataLoader

from neurofm.data.dataset import WindowDataset, WindowStore, channel_stats, collate, split_by_subject


class StoreDataModule(L.LightningDataModule):
    """Train/val/test loaders over a store made by ``neurofm preprocess``.

    Parameters
    ----------
    store : str
        Store directory.
    batch_size, num_workers : int
        DataLoader settings.
    val_subjects, test_subjects : list of str | float
        Explicit subject ids, or fractions of subjects.
    split_by : str
        ``"subject"`` (default) or ``"recording"`` (for single-subject stores).
    normalize : bool
        z-score each channel with statistics of the *training* split only.
    seed : int
        Seed of the subject shuffle.
    """

    def __init__(self, store: str, batch_size: int = 32, num_workers: int = 0,
                 val_subjects: Sequence[str] | float = 0.15, test_subjects: Sequence[str] | float = 0.15,
                 split_by: str = "subject", normalize: bool = False, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict = {}
        self.stats = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        self.store_ = WindowStore(hp.store)
        groups = None
        if hp.split_by == "recording":
            groups = [self.store_.recordings[r]["id"] for r in self.store_.rec_index]
        idx = split_by_subject(self.store_.subjects, val=hp.val_subjects, test=hp.test_subjects, seed=hp.seed,
                               groups=groups)
        self.stats = channel_stats(self.store_, idx["train"]) if hp.normalize else None
        full = WindowDataset(self.store_)
        self.splits = {k: WindowDataset(self.store_, v, label_map=full.label_map, stats=self.stats)
                       for k, v in idx.items()}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=self.hparams.num_workers, collate_fn=collate,
                          persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
