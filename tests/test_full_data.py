"""Checks on the full FER+ data set; skipped with a reason when it is not on this machine."""

import pytest
from conftest import full_ferplus_path

from ferkit.data import FaceData, apply_protocol, load_dataset

DATA = full_ferplus_path()
pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(DATA is None, reason="FER+ not found: set FERKIT_DATA or put ../shared/data/ferplus/ferplus.tar.gz"),
]

# Microsoft's majority protocol (../shared/data/README.md)
EXPECTED = {
    "train": (28_558, [8733, 7284, 3136, 3022, 2098, 116, 536, 120]),
    "valid": (3_579, [1180, 862, 411, 348, 289, 25, 60, 16]),
    "test": (3_573, [1083, 892, 394, 382, 269, 16, 86, 15]),
}


@pytest.fixture(scope="module")
def ferplus(tmp_path_factory: pytest.TempPathFactory) -> FaceData:
    return load_dataset(DATA, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.mark.parametrize("split", list(EXPECTED))
def test_majority_counts_per_split(ferplus: FaceData, split: str):
    raw = ferplus.split(split)
    labelled = apply_protocol(raw, "majority", 8)
    total, per_class = EXPECTED[split]
    assert len(raw) == total
    assert labelled.class_counts(8).tolist() == per_class
    assert len(labelled) == sum(per_class)
