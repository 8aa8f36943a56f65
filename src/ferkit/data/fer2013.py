"""Reader for Kaggle's fer2013.csv, alone (7 FER-2013 classes) or with Microsoft's fer2013new.csv (FER+ votes)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ferkit.data.dataset import FaceData, RawSplit
from ferkit.errors import DataError
from ferkit.labels import EMOTIONS, FER2013_CODES, VOTE_COLUMNS
from ferkit.preprocessing import FACE_SIZE

USAGES: dict[str, str] = {"Training": "train", "PublicTest": "valid", "PrivateTest": "test"}
#: FER-2013's 7 classes in ferkit (FER+) order: everything but contempt.
FER2013_CLASSES: tuple[str, ...] = tuple(name for name in EMOTIONS if name in FER2013_CODES)


def _open_csv(path: Path) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.reader(handle))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a CSV text file ({exc})") from exc


def _header_index(header: list[str], names: tuple[str, ...], path: Path) -> list[int]:
    lowered = [cell.strip().lower() for cell in header]
    missing = [name for name in names if name.lower() not in lowered]
    if missing:
        raise DataError(f"{path}, line 1: header lacks column(s) {', '.join(missing)}; found {', '.join(header)}")
    return [lowered.index(name.lower()) for name in names]


def _parse_pixels(text: str, path: Path, line_no: int) -> np.ndarray:
    try:
        pixels = np.array(text.split(), dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"{path}, line {line_no}: pixels must be space-separated integers") from exc
    if pixels.size != FACE_SIZE * FACE_SIZE or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
        raise DataError(f"{path}, line {line_no}: expected {FACE_SIZE * FACE_SIZE} pixel values in 0..255, "
                        f"got {pixels.size}")
    return pixels.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE)


def _read_votes(votes_csv: Path, rows: int, path: Path) -> tuple[list[list[str]], list[int]]:
    """fer2013new.csv's rows and its (Usage, Image name, 10 vote) column indices."""
    vote_rows = _open_csv(votes_csv)
    if not vote_rows:
        raise DataError(f"{votes_csv}: empty file")
    vote_cols = _header_index(vote_rows[0], ("Usage", "Image name") + VOTE_COLUMNS, votes_csv)
    if len(vote_rows) != rows:
        raise DataError(
            f"{votes_csv} has {len(vote_rows) - 1} rows but {path} has {rows - 1}: "
            "they must come from the same FER-2013 release, row for row"
        )
    return vote_rows, vote_cols


def _vote_target(vrow: list[str], cols: list[int], usage: str, where: str, path: Path) -> tuple[str, np.ndarray] | None:
    """(image name, the 10 FER+ vote counts) of one fer2013new.csv row; None where Microsoft dropped the face."""
    if len(vrow) <= max(cols):
        raise DataError(f"{where}: expected {len(cols)} fields or more, got {len(vrow)}")
    if vrow[cols[0]].strip() != usage:
        raise DataError(f"{where}: Usage '{vrow[cols[0]]}' does not match '{usage}' in {path}: "
                        "the files are not row-aligned")
    name = vrow[cols[1]].strip()
    if not name:
        return None
    try:
        return name, np.array([int(float(vrow[c])) for c in cols[2:]], dtype=np.int16)
    except ValueError as exc:
        raise DataError(f"{where}: vote counts must be numbers") from exc


def _code_target(code_text: str, where: str) -> np.ndarray:
    """The FER2013_CLASSES index of a fer2013.csv emotion code (0=Angry ... 6=Neutral)."""
    try:
        code = int(code_text)
    except ValueError as exc:
        raise DataError(f"{where}: emotion must be an integer 0-6") from exc
    if not 0 <= code < len(FER2013_CODES):
        raise DataError(f"{where}: emotion {code} is outside 0-6")
    return np.array(FER2013_CLASSES.index(FER2013_CODES[code]), dtype=np.int64)


def read_fer2013_csv(path: Path, votes_csv: Path | None = None, progress: bool = True) -> FaceData:
    """Read fer2013.csv; with ``votes_csv`` (fer2013new.csv) the faces carry FER+ votes.

    Without votes the labels are FER-2013's 7 classes, in FER+ order (FER2013_CLASSES).
    With votes, rows whose FER+ "Image name" is empty (dropped by Microsoft) are skipped, and
    the two files must agree row by row on Usage.
    """
    rows = _open_csv(path)
    if not rows:
        raise DataError(f"{path}: empty file")
    emotion_col, pixels_col, usage_col = _header_index(rows[0], ("emotion", "pixels", "Usage"), path)
    votes = _read_votes(votes_csv, len(rows), path) if votes_csv is not None else None
    per_split: dict[str, tuple[list[str], list[np.ndarray], list[np.ndarray]]] = {}
    for i in tqdm(range(1, len(rows)), desc=f"reading {path.name}", disable=not progress, unit="row"):
        row, where = rows[i], f"{path}, line {i + 1}"
        if not row:
            continue
        if len(row) <= max(emotion_col, pixels_col, usage_col):
            raise DataError(f"{where}: expected {len(rows[0])} fields, got {len(row)}")
        usage = row[usage_col].strip()
        if usage not in USAGES:
            raise DataError(f"{where}: unknown Usage '{usage}' (expected {', '.join(USAGES)})")
        if votes is not None:
            found = _vote_target(votes[0][i], votes[1], usage, f"{votes_csv}, line {i + 1}", path)
            if found is None:
                continue
            name, target = found
        else:
            name, target = f"row{i - 1:07d}", _code_target(row[emotion_col], where)
        names, faces, targets = per_split.setdefault(USAGES[usage], ([], [], []))
        names.append(name)
        faces.append(_parse_pixels(row[pixels_col], path, i + 1))
        targets.append(target)
    if not per_split:
        raise DataError(f"{path}: no faces found")
    return _face_data(per_split, path, with_votes=votes is not None)


def _face_data(per_split: dict[str, tuple[list[str], list[np.ndarray], list[np.ndarray]]], path: Path,
               with_votes: bool) -> FaceData:
    splits: dict[str, RawSplit] = {}
    for split in ("train", "valid", "test"):
        if split in per_split:
            names, faces, targets = per_split[split]
            stacked = np.stack(targets)
            splits[split] = RawSplit(names=tuple(names), images=np.stack(faces), votes=stacked if with_votes else None,
                                     labels=None if with_votes else stacked)
    if with_votes:
        return FaceData(splits=splits, classes=EMOTIONS, source=str(path), kind="fer2013+ferplus")
    return FaceData(splits=splits, classes=FER2013_CLASSES, source=str(path), kind="fer2013")
