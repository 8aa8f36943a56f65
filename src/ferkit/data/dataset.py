"""The in-memory form every reader returns: uint8 48x48 gray faces with votes or hard labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferkit.errors import DataError
from ferkit.preprocessing import FACE_SIZE

SPLITS: tuple[str, ...] = ("train", "valid", "test")


@dataclass(frozen=True)
class RawSplit:
    """One split as read from disk.

    Attributes:
        names: an identifier per face (file name or CSV row).
        images: uint8 array (N, 48, 48), gray.
        votes: int16 array (N, 10) of FER+ vote counts (8 emotions, unknown, NF), or None.
        labels: int64 array (N,) of hard labels indexing ``FaceData.classes``, or None.
    """

    names: tuple[str, ...]
    images: np.ndarray
    votes: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.images.dtype != np.uint8 or self.images.shape != (n, FACE_SIZE, FACE_SIZE):
            raise DataError(f"images must be uint8 (N, 48, 48); got {self.images.dtype} {self.images.shape}")
        if (self.votes is None) == (self.labels is None):
            raise DataError("a split needs either vote counts or hard labels, not both or neither")
        if self.votes is not None and self.votes.shape != (n, 10):
            raise DataError(f"votes must be (N, 10); got {self.votes.shape}")
        if self.labels is not None and self.labels.shape != (n,):
            raise DataError(f"labels must be (N,); got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class FaceData:
    """A data set: its splits, the class names its labels use, and where it came from.

    Attributes:
        splits: split name ("train", "valid", "test") -> RawSplit.
        classes: emotion names in label order (FER+ order; a subset of EMOTIONS).
        source: the path it was read from.
        fingerprint: a hash of the source, used as cache key and stored with trained weights.
    """

    splits: dict[str, RawSplit]
    classes: tuple[str, ...]
    source: str
    fingerprint: str = ""
    kind: str = field(default="")

    def split(self, name: str) -> RawSplit:
        """Return the split called ``name`` or raise a DataError listing those present."""
        if name not in self.splits:
            raise DataError(
                f"{self.source} has no '{name}' split; it has: {', '.join(self.splits) or 'none'}"
            )
        return self.splits[name]
