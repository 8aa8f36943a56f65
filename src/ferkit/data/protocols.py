"""Label protocols that turn FER+ vote counts into training and evaluation targets.

``majority`` is Microsoft's FER+ reference protocol (Barsoum et al., ICMI 2016): drop single
votes as outliers, keep a face only when one emotion has more than half of the remaining votes.
``soft`` keeps the vote distribution over the 8 emotions after outlier removal (the paper's
cross-entropy mode); ``probability`` uses the same distribution but the training loop draws one
label from it per face and epoch. Both keep a face when its most-voted class (after outlier
removal) is an emotion, not "unknown" or "not a face".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferkit.data.dataset import RawSplit
from ferkit.errors import DataError

LABEL_MODES: tuple[str, ...] = ("majority", "soft", "probability")
NUM_EMOTION_VOTES = 8


@dataclass(frozen=True)
class LabelledSplit:
    """Faces with targets ready for training or evaluation.

    Attributes:
        images: uint8 (N, 48, 48) gray faces.
        targets: float32 (N, C) label distributions (one-hot under ``majority``).
        labels: int64 (N,) the argmax class of each target.
        names: an identifier per face.
    """

    images: np.ndarray
    targets: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Return the number of faces per class (by argmax label)."""
        return np.bincount(self.labels, minlength=num_classes)


def remove_outliers(votes: np.ndarray) -> np.ndarray:
    """Return a copy of (N, 10) vote counts with every count of 1 set to 0."""
    cleaned = np.asarray(votes, dtype=np.int64).copy()
    cleaned[cleaned == 1] = 0
    return cleaned


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """Return the FER+ majority label per row, or -1 where the row is dropped."""
    cleaned = remove_outliers(votes)
    top = cleaned.argmax(axis=1)
    top_count = cleaned.max(axis=1)
    keep = (top_count * 2 > cleaned.sum(axis=1)) & (top < NUM_EMOTION_VOTES)
    return np.where(keep, top, -1)


def soft_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (distributions over the 8 emotions, keep mask) after outlier removal."""
    cleaned = remove_outliers(votes)
    emotion_votes = cleaned[:, :NUM_EMOTION_VOTES].astype(np.float64)
    total = emotion_votes.sum(axis=1)
    top_is_emotion = cleaned.argmax(axis=1) < NUM_EMOTION_VOTES
    keep = top_is_emotion & (total > 0)
    dist = np.divide(emotion_votes, total[:, None], out=np.zeros_like(emotion_votes), where=total[:, None] > 0)
    return dist.astype(np.float32), keep


def apply_protocol(split: RawSplit, mode: str, num_classes: int) -> LabelledSplit:
    """Turn a raw split into a LabelledSplit under a label mode.

    Hard-labelled sources (FER-2013 codes, image folders) give one-hot targets in every mode.
    """
    if mode not in LABEL_MODES:
        raise DataError(f"unknown label mode '{mode}'; choose one of: {', '.join(LABEL_MODES)}")
    if split.labels is not None:
        labels = split.labels.astype(np.int64)
        targets = np.eye(num_classes, dtype=np.float32)[labels]
        return LabelledSplit(split.images, targets, labels, split.names)
    assert split.votes is not None
    if num_classes != NUM_EMOTION_VOTES:
        raise DataError(f"FER+ votes cover 8 emotions; a {num_classes}-class model cannot use them")
    if mode == "majority":
        labels = majority_labels(split.votes)
        keep = labels >= 0
        targets = np.eye(num_classes, dtype=np.float32)[labels[keep]]
    else:
        targets, keep = soft_targets(split.votes)
        targets = targets[keep]
    index = np.flatnonzero(keep)
    return LabelledSplit(
        images=split.images[index],
        targets=targets,
        labels=targets.argmax(axis=1).astype(np.int64),
        names=tuple(split.names[i] for i in index),
    )
