"""Lightning DataModule: owns the splits, the label protocol and the samplers."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from ferkit.data.dataset import FaceData, RawSplit
from ferkit.data.protocols import LabelledSplit, apply_protocol
from ferkit.errors import DataError

VALID_FRACTION = 0.1


def holdout(split: RawSplit, fraction: float, seed: int) -> tuple[RawSplit, RawSplit]:
    """Split a raw split in two at random (for sources without a validation split)."""
    order = np.random.default_rng(seed).permutation(len(split))
    cut = max(1, int(round(len(split) * fraction)))

    def take(index: np.ndarray) -> RawSplit:
        index = np.sort(index)
        return RawSplit(
            names=tuple(split.names[i] for i in index),
            images=split.images[index],
            votes=None if split.votes is None else split.votes[index],
            labels=None if split.labels is None else split.labels[index],
        )

    return take(order[cut:]), take(order[:cut])


class EpochSampler(Sampler[int]):
    """A shuffled (or, with ``weights``, class-balanced) order of the training faces drawn from a
    generator seeded by (seed, epoch). Lightning calls ``set_epoch`` before each epoch, so a
    resumed run sees the same order as an uninterrupted one (a DataLoader's own generator
    would restart from the seed, repeating the first epoch's order)."""

    def __init__(self, size: int, seed: int, weights: np.ndarray | None = None) -> None:
        self.size = size
        self.seed = seed
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.size, replacement=True, generator=generator)
        return iter(order.tolist())


def _tensors(split: LabelledSplit) -> TensorDataset:
    return TensorDataset(torch.from_numpy(split.images), torch.from_numpy(split.targets))


class FerDataModule(L.LightningDataModule):
    """Train with ``label_mode`` targets; validate and test on the majority protocol.

    Batches are (uint8 faces (N, 48, 48), float targets (N, C)); the LightningModule converts and
    augments them on the device.
    """

    def __init__(
        self,
        data: FaceData,
        label_mode: str = "majority",
        batch_size: int = 128,
        balanced_sampling: bool = False,
        seed: int = 42,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.data = data
        self.label_mode = label_mode
        self.batch_size = batch_size
        self.balanced_sampling = balanced_sampling
        self.seed = seed
        self.num_workers = num_workers
        num_classes = len(data.classes)
        train_raw = data.split("train")
        if "valid" in data.splits:
            valid_raw = data.split("valid")
        else:
            train_raw, valid_raw = holdout(train_raw, VALID_FRACTION, seed)
        self.train = apply_protocol(train_raw, label_mode, num_classes)
        self.valid = apply_protocol(valid_raw, "majority", num_classes)
        self.test = apply_protocol(data.splits["test"], "majority", num_classes) if "test" in data.splits else None
        if len(self.train) == 0 or len(self.valid) == 0:
            raise DataError(f"{data.source}: the train or validation split has no usable faces")

    @property
    def num_classes(self) -> int:
        return len(self.data.classes)

    def class_prior(self) -> np.ndarray:
        """Fraction of training targets per class (soft targets counted fractionally)."""
        totals = self.train.targets.sum(axis=0).astype(np.float64)
        return np.maximum(totals, 1.0) / max(totals.sum(), 1.0)

    def train_dataloader(self) -> DataLoader:
        drop_last = len(self.train) > self.batch_size  # avoid a 1-face batch in BatchNorm
        weights = 1.0 / self.class_prior()[self.train.labels] if self.balanced_sampling else None
        sampler = EpochSampler(len(self.train), self.seed, weights)
        # A generator of its own: without one, making each epoch's iterator draws from torch's global
        # generator, which the training step's dropout uses, so a resumed run would drift.
        return DataLoader(_tensors(self.train), self.batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=self.num_workers, generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_tensors(self.valid), 512, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        if self.test is None:
            raise DataError(f"{self.data.source} has no test split")
        return DataLoader(_tensors(self.test), 512, num_workers=self.num_workers)
