"""Data sets: readers for FER+ / FER-2013 / image folders, label protocols, augmentation."""

from ferkit.data.dataset import SPLITS, FaceData, RawSplit
from ferkit.data.load import load_dataset
from ferkit.data.protocols import LABEL_MODES, LabelledSplit, apply_protocol, majority_labels, soft_targets

__all__ = [
    "LABEL_MODES",
    "SPLITS",
    "FaceData",
    "LabelledSplit",
    "RawSplit",
    "apply_protocol",
    "load_dataset",
    "majority_labels",
    "soft_targets",
]
