"""Reader for the FER+ layout: FER2013{Train,Valid,Test}/label.csv + PNGs, as a folder or a tar.gz."""

from __future__ import annotations

import csv
import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ferkit.data.dataset import FaceData, RawSplit
from ferkit.data.images import decode_face
from ferkit.errors import DataError
from ferkit.labels import EMOTIONS

FOLDERS: dict[str, str] = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}


def is_ferplus_folder(path: Path) -> bool:
    """True if ``path`` is a folder holding at least one FER2013*/label.csv."""
    return path.is_dir() and any((path / folder / "label.csv").is_file() for folder in FOLDERS.values())


def parse_label_csv(text: str, where: str) -> list[tuple[str, np.ndarray]]:
    """Parse a FER+ label.csv into (file name, 10 vote counts) rows; errors name the file and line."""
    rows: list[tuple[str, np.ndarray]] = []
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 12:
            raise DataError(
                f"{where}, line {line_no}: expected 12 fields (file, box, 10 vote counts), got {len(row)}"
            )
        name = row[0].strip()
        if not name:
            raise DataError(f"{where}, line {line_no}: empty file name")
        try:
            votes = np.array([int(cell) for cell in row[2:]], dtype=np.int16)
        except ValueError as exc:
            raise DataError(f"{where}, line {line_no}: vote counts must be integers ({exc})") from exc
        if (votes < 0).any():
            raise DataError(f"{where}, line {line_no}: negative vote count")
        rows.append((name, votes))
    return rows


def _build_split(
    rows: list[tuple[str, np.ndarray]], images: dict[str, bytes] | Path, where: str, progress: bool
) -> RawSplit:
    faces = np.empty((len(rows), 48, 48), dtype=np.uint8)
    for i, (name, _) in enumerate(tqdm(rows, desc=f"decoding {where}", disable=not progress, unit="img")):
        if isinstance(images, Path):
            path = images / name
            if not path.is_file():
                raise DataError(f"{images / 'label.csv'} lists {name}, but {path} does not exist")
            data = path.read_bytes()
        else:
            if name not in images:
                raise DataError(f"{where}/label.csv lists {name}, but the archive has no {where}/{name}")
            data = images[name]
        faces[i] = decode_face(data, f"{where}/{name}", resize=False)
    return RawSplit(
        names=tuple(name for name, _ in rows),
        images=faces,
        votes=np.stack([votes for _, votes in rows]) if rows else np.zeros((0, 10), np.int16),
    )


def read_ferplus_folder(root: Path, progress: bool = True) -> FaceData:
    """Read an extracted FER+ folder (any subset of FER2013Train/Valid/Test)."""
    splits: dict[str, RawSplit] = {}
    for split, folder in FOLDERS.items():
        label_csv = root / folder / "label.csv"
        if not label_csv.is_file():
            continue
        rows = parse_label_csv(label_csv.read_text(encoding="utf-8"), str(label_csv))
        if not rows:
            raise DataError(f"{label_csv} lists no images")
        splits[split] = _build_split(rows, root / folder, folder, progress)
    if not splits:
        raise DataError(f"{root}: no FER2013Train/Valid/Test/label.csv found")
    return FaceData(splits=splits, classes=EMOTIONS, source=str(root), kind="ferplus")


def _members(archive: tarfile.TarFile) -> Iterable[tuple[str, bytes]]:
    for member in archive:
        if member.isfile():
            handle = archive.extractfile(member)
            if handle is not None:
                yield member.name.lstrip("./"), handle.read()


def read_ferplus_tar(path: Path, progress: bool = True) -> FaceData:
    """Read the FER+ layout straight from a .tar/.tar.gz in one sequential pass."""
    labels: dict[str, str] = {}
    files: dict[str, dict[str, bytes]] = {folder: {} for folder in FOLDERS.values()}
    try:
        with tarfile.open(path, "r|*") as archive:
            for name, data in tqdm(_members(archive), desc=f"reading {path.name}", disable=not progress, unit="file"):
                parts = name.split("/")
                # Accept both "FER2013Train/x.png" and "<top>/FER2013Train/x.png".
                if len(parts) >= 2 and parts[-2] in files:
                    folder, base = parts[-2], parts[-1]
                    if base == "label.csv":
                        labels[folder] = data.decode("utf-8")
                    else:
                        files[folder][base] = data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable tar archive ({exc})") from exc
    splits: dict[str, RawSplit] = {}
    for split, folder in FOLDERS.items():
        if folder not in labels:
            continue
        rows = parse_label_csv(labels[folder], f"{path}:{folder}/label.csv")
        if not rows:
            raise DataError(f"{path}:{folder}/label.csv lists no images")
        splits[split] = _build_split(rows, files[folder], folder, progress)
    if not splits:
        raise DataError(f"{path}: the archive holds no FER2013Train/Valid/Test/label.csv")
    return FaceData(splits=splits, classes=EMOTIONS, source=str(path), kind="ferplus")
