"""Shared fixtures: tiny data sets written in the real on-disk formats."""

from __future__ import annotations

import csv
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.labels import EMOTIONS

REPO = Path(__file__).resolve().parent.parent
FERPLUS_FOLDERS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}


def random_votes(rng: np.random.Generator, label: int) -> list[int]:
    """Ten crowd votes whose majority (after outlier removal) is ``label``."""
    votes = [0] * 10
    votes[label] = 7
    votes[int(rng.integers(0, 10))] += 3
    return votes


def face_pixels(rng: np.random.Generator, label: int) -> np.ndarray:
    """A 48x48 uint8 face-like image whose brightness pattern depends on the label (learnable)."""
    image = rng.integers(0, 60, (48, 48)).astype(np.uint8)
    image[label * 5 : label * 5 + 8, :] = 220
    return image


def write_ferplus(root: Path, sizes: dict[str, int], seed: int = 0, neutral_share: float = 0.0) -> Path:
    """Write a FER+ folder (FER2013*/label.csv + PNGs) with ``sizes[split]`` faces per split; the
    first ``neutral_share`` of each split is neutral (a skewed class prior), the rest cycles the emotions."""
    rng = np.random.default_rng(seed)
    index = 0
    for split, count in sizes.items():
        folder = root / FERPLUS_FOLDERS[split]
        folder.mkdir(parents=True)
        with (folder / "label.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            for i in range(count):
                label = 0 if i < neutral_share * count else i % len(EMOTIONS)
                name = f"fer{index:07d}.png"
                Image.fromarray(face_pixels(rng, label)).save(folder / name)
                writer.writerow([name, "(0, 0, 48, 48)", *random_votes(rng, label)])
                index += 1
    return root


def tar_folder(folder: Path, archive: Path) -> Path:
    """Pack the FER2013* folders of ``folder`` into a .tar.gz the way Microsoft's layout is shipped."""
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted(folder.iterdir()):
            tar.add(child, arcname=child.name)
    return archive


@pytest.fixture()
def ferplus_dir(tmp_path: Path) -> Path:
    return write_ferplus(tmp_path / "ferplus", {"train": 24, "valid": 8, "test": 8})


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data cache folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FERKIT_CACHE", str(cache))
    return cache


def full_ferplus_path() -> Path | None:
    """The full FER+ archive or folder: $FERKIT_DATA, else ../shared/data/ferplus/ferplus.tar.gz."""
    env = os.environ.get("FERKIT_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "ferplus" / "ferplus.tar.gz")
    return next((p for p in candidates if p.exists()), None)


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred synthetic faces in the FER+ layout."""
    return write_ferplus(tmp_path_factory.mktemp("data"), {"train": 256, "valid": 64, "test": 64})


@pytest.fixture(scope="session")
def skewed_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic faces in the FER+ layout, 60% of them neutral: a class prior far from uniform."""
    return write_ferplus(tmp_path_factory.mktemp("skewed"), {"train": 320, "valid": 96, "test": 64}, seed=1,
                         neutral_share=0.6)


@pytest.fixture(scope="session")
def trained_run(smoke_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder from a short real training run on ``smoke_data`` (fernet, 3 epochs)."""
    return _train(smoke_data, tmp_path_factory, "tiny")


@pytest.fixture(scope="session")
def skewed_run(skewed_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained on ``skewed_data``: its stored logit biases are far from zero."""
    return _train(skewed_data, tmp_path_factory, "skewed")


def _train(data: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    from ferkit.training import build_config, fit

    out = tmp_path_factory.mktemp("runs")
    config = build_config(overrides={
        "data": str(data), "out": str(out), "name": name, "model": "fernet", "epochs": 3,
        "batch_size": 32, "lr": 0.003, "progress": False, "seed": 3,
    })
    old = os.environ.get("FERKIT_CACHE")
    os.environ["FERKIT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return fit(config)
    finally:
        if old is None:
            os.environ.pop("FERKIT_CACHE")
        else:
            os.environ["FERKIT_CACHE"] = old


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: enough to test the size guard without the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")
