"""One entry point for every data format, with an on-disk cache keyed by a hash of the source."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from ferkit.data.dataset import FaceData, RawSplit
from ferkit.data.fer2013 import read_fer2013_csv
from ferkit.data.ferplus import FOLDERS, is_ferplus_folder, read_ferplus_folder, read_ferplus_tar
from ferkit.data.imagefolder import read_image_folder
from ferkit.errors import DataError

logger = logging.getLogger(__name__)

CACHE_VERSION = "1"
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def default_cache_dir() -> Path:
    """The cache folder: $FERKIT_CACHE, else ~/.cache/ferkit."""
    return Path(os.environ.get("FERKIT_CACHE", Path.home() / ".cache" / "ferkit"))


def _hash_file(digest: "hashlib._Hash", path: Path) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def fingerprint(path: Path, votes_csv: Path | None = None) -> str:
    """A sha256 of the source: file contents, or a folder's label files and image names/sizes/times."""
    digest = hashlib.sha256(f"ferkit-data-{CACHE_VERSION}".encode())
    for source in (path, votes_csv):
        if source is None:
            continue
        if source.is_file():
            _hash_file(digest, source)
            continue
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(source)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            if file.name == "label.csv":
                _hash_file(digest, file)
    return digest.hexdigest()


def read_dataset(path: Path, votes_csv: Path | None = None, progress: bool = True) -> FaceData:
    """Read a data set in any supported format, without the cache."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    name = path.name.lower()
    if path.is_file() and name.endswith(TAR_SUFFIXES):
        return read_ferplus_tar(path, progress)
    if path.is_file() and name.endswith(".csv"):
        return read_fer2013_csv(path, votes_csv, progress)
    if is_ferplus_folder(path):
        return read_ferplus_folder(path, progress)
    if path.is_dir():
        return read_image_folder(path, progress)
    raise DataError(
        f"{path}: unsupported data format; give a FER+ folder or .tar.gz ({', '.join(FOLDERS.values())}), "
        "fer2013.csv, or an image folder root/<split>/<emotion>/*.png"
    )


def _save_cache(data: FaceData, file: Path) -> None:
    arrays: dict[str, np.ndarray] = {"classes": np.array(data.classes), "meta": np.array([data.source, data.kind])}
    for split, raw in data.splits.items():
        arrays[f"{split}/names"] = np.array(raw.names)
        arrays[f"{split}/images"] = raw.images
        if raw.votes is not None:
            arrays[f"{split}/votes"] = raw.votes
        if raw.labels is not None:
            arrays[f"{split}/labels"] = raw.labels
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(f".{os.getpid()}.partial.npz")  # one per process (DDP ranks)
    np.savez(partial, allow_pickle=True, **arrays)
    partial.replace(file)  # atomic: an interrupted write never leaves a broken cache


def _load_cache(file: Path, fingerprint_: str) -> FaceData:
    with np.load(file, allow_pickle=False) as stored:
        keys = set(stored.files)
        splits = {
            split: RawSplit(
                names=tuple(str(n) for n in stored[f"{split}/names"]),
                images=stored[f"{split}/images"],
                votes=stored[f"{split}/votes"] if f"{split}/votes" in keys else None,
                labels=stored[f"{split}/labels"] if f"{split}/labels" in keys else None,
            )
            for split in ("train", "valid", "test")
            if f"{split}/images" in keys
        }
        source, kind = (str(v) for v in stored["meta"])
        classes = tuple(str(c) for c in stored["classes"])
    return FaceData(splits=splits, classes=classes, source=source, fingerprint=fingerprint_, kind=kind)


def load_dataset(
    path: str | Path,
    votes_csv: str | Path | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> FaceData:
    """Load a data set, from the cache when the source is unchanged.

    Args:
        path: FER+ folder or .tar.gz, fer2013.csv, or image-folder root.
        votes_csv: Microsoft's fer2013new.csv, to read fer2013.csv with FER+ votes.
        cache_dir: where decoded arrays are kept (default: default_cache_dir()).
        use_cache: read and write the cache.
        progress: show progress bars while decoding.
    """
    path = Path(path).expanduser()
    votes = Path(votes_csv).expanduser() if votes_csv is not None else None
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if votes is not None and not votes.is_file():
        raise DataError(f"{votes}: no such file")
    key = fingerprint(path, votes)
    cache_file = Path(cache_dir or default_cache_dir()) / f"data-{key[:24]}.npz"
    if use_cache and cache_file.is_file():
        try:
            return _load_cache(cache_file, key)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("ignoring unreadable cache %s (%s); rebuilding it", cache_file, exc)
    data = read_dataset(path, votes, progress)
    data = FaceData(splits=data.splits, classes=data.classes, source=data.source, fingerprint=key, kind=data.kind)
    if use_cache:
        try:
            _save_cache(data, cache_file)
        except OSError as exc:
            logger.warning("could not write the data cache %s (%s); continuing without it", cache_file, exc)
    return data
