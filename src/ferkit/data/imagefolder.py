"""Reader for ``root/<split>/<emotion>/*.png|jpg`` folders (users' data, Kaggle's FER-2013 images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ferkit.data.dataset import FaceData, RawSplit
from ferkit.data.images import IMAGE_SUFFIXES, read_face
from ferkit.errors import DataError
from ferkit.labels import ALIASES, EMOTIONS, canonical_emotion

SPLIT_NAMES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "publictest": "valid",
    "test": "test",
    "privatetest": "test",
}


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan_image_folder(root: Path) -> dict[str, dict[str, list[Path]]]:
    """Return split -> emotion -> image files, checking split and emotion folder names."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    layout: dict[str, dict[str, list[Path]]] = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        split = SPLIT_NAMES.get(split_dir.name.lower())
        if split is None:
            raise DataError(
                f"{split_dir}: unknown split folder; expected one of {', '.join(sorted(SPLIT_NAMES))}"
            )
        if split in layout:
            raise DataError(f"{split_dir}: a second folder for the '{split}' split")
        emotions: dict[str, list[Path]] = {}
        for emotion_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            emotion = canonical_emotion(emotion_dir.name)
            if emotion is None:
                raise DataError(
                    f"{emotion_dir}: unknown emotion folder '{emotion_dir.name}'; "
                    f"use one of {', '.join(sorted(ALIASES))}"
                )
            emotions.setdefault(emotion, []).extend(_image_files(emotion_dir))
        if not any(emotions.values()):
            raise DataError(f"{split_dir}: no images in any emotion folder")
        layout[split] = emotions
    if not layout:
        raise DataError(f"{root}: no split folders (expected e.g. train/<emotion>/*.png and test/<emotion>/*.png)")
    return layout


def read_image_folder(root: Path, progress: bool = True) -> FaceData:
    """Read an image-folder data set; any size or colour mode is converted to 48x48 gray."""
    layout = scan_image_folder(root)
    found = {emotion for emotions in layout.values() for emotion, files in emotions.items() if files}
    classes = tuple(name for name in EMOTIONS if name in found)
    splits: dict[str, RawSplit] = {}
    for split, emotions in layout.items():
        files = [(path, classes.index(emotion)) for emotion, paths in emotions.items() for path in paths]
        faces = np.empty((len(files), 48, 48), dtype=np.uint8)
        for i, (path, _) in enumerate(tqdm(files, desc=f"reading {split}", disable=not progress, unit="img")):
            faces[i] = read_face(path, resize=True)
        splits[split] = RawSplit(
            names=tuple(str(path.relative_to(root)) for path, _ in files),
            images=faces,
            labels=np.array([label for _, label in files], dtype=np.int64),
        )
    return FaceData(splits=splits, classes=classes, source=str(root), kind="imagefolder")
