import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import face_pixels, tar_folder, write_ferplus
from PIL import Image

from ferkit.data import load as load_module
from ferkit.data import load_dataset
from ferkit.data.fer2013 import FER2013_CLASSES
from ferkit.errors import DataError
from ferkit.labels import EMOTIONS, VOTE_COLUMNS


def test_ferplus_folder_reads_faces_and_votes(ferplus_dir: Path):
    data = load_dataset(ferplus_dir, progress=False)
    assert data.classes == EMOTIONS
    assert {s: len(r) for s, r in data.splits.items()} == {"train": 24, "valid": 8, "test": 8}
    train = data.split("train")
    assert train.images.dtype == np.uint8 and train.images.shape == (24, 48, 48)
    first = np.asarray(Image.open(ferplus_dir / "FER2013Train" / train.names[0]))
    np.testing.assert_array_equal(train.images[0], first)
    rows = list(csv.reader((ferplus_dir / "FER2013Train" / "label.csv").open()))
    assert train.votes[3].tolist() == [int(v) for v in rows[3][2:]]


def test_tar_gz_gives_the_same_data_as_the_folder(ferplus_dir: Path, tmp_path: Path):
    archive = tar_folder(ferplus_dir, tmp_path / "ferplus.tar.gz")
    folder, packed = load_dataset(ferplus_dir, use_cache=False), load_dataset(archive, use_cache=False)
    for split in ("train", "valid", "test"):
        assert folder.split(split).names == packed.split(split).names
        np.testing.assert_array_equal(folder.split(split).images, packed.split(split).images)
        np.testing.assert_array_equal(folder.split(split).votes, packed.split(split).votes)


def test_cache_is_used_when_the_source_is_unchanged(ferplus_dir: Path, monkeypatch: pytest.MonkeyPatch):
    first = load_dataset(ferplus_dir)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(load_module, "read_dataset", no_decoding)
    cached = load_dataset(ferplus_dir)
    assert cached.fingerprint == first.fingerprint
    np.testing.assert_array_equal(cached.split("valid").images, first.split("valid").images)
    np.testing.assert_array_equal(cached.split("valid").votes, first.split("valid").votes)


def test_cache_is_rebuilt_when_the_labels_change(ferplus_dir: Path):
    first = load_dataset(ferplus_dir)
    label_csv = ferplus_dir / "FER2013Test" / "label.csv"
    label_csv.write_text(label_csv.read_text().replace(",7,", ",8,", 1))
    assert load_dataset(ferplus_dir).fingerprint != first.fingerprint


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("fer0000099.png,\"(0, 0, 48, 48)\",1,2,3\n", r"label.csv, line 9: expected 12 fields"),
        ("fer0000099.png,\"(0, 0, 48, 48)\",1,2,3,x,0,0,0,0,0,0\n", r"label.csv, line 9: vote counts must be integers"),
    ],
)
def test_malformed_label_row_names_file_and_line(ferplus_dir: Path, line: str, message: str):
    with (ferplus_dir / "FER2013Test" / "label.csv").open("a") as handle:
        handle.write(line)
    with pytest.raises(DataError, match=message):
        load_dataset(ferplus_dir, use_cache=False)


def test_missing_image_and_wrong_size_are_clear_errors(ferplus_dir: Path):
    test_dir = ferplus_dir / "FER2013Test"
    victim = sorted(test_dir.glob("*.png"))[0]
    victim.unlink()
    with pytest.raises(DataError, match=f"lists {victim.name}, but .* does not exist"):
        load_dataset(ferplus_dir, use_cache=False)
    Image.new("L", (64, 64)).save(victim)
    with pytest.raises(DataError, match="expected a 48x48 face, got 64x64"):
        load_dataset(ferplus_dir, use_cache=False)
    victim.write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"{victim.name}: not an image file in an accepted format"):
        load_dataset(ferplus_dir, use_cache=False)


def _write_fer2013(path: Path, codes: list[int], usages: list[str]) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    faces = [face_pixels(rng, code) for code in codes]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for code, usage, face in zip(codes, usages, faces):
            writer.writerow([code, " ".join(str(v) for v in face.ravel()), usage])
    return faces


USAGES = ["Training"] * 4 + ["PublicTest"] * 2 + ["PrivateTest"] * 2


def test_fer2013_csv_alone_gives_the_seven_original_classes(tmp_path: Path):
    codes = [0, 1, 2, 3, 4, 5, 6, 3]  # Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral, Happy
    faces = _write_fer2013(tmp_path / "fer2013.csv", codes, USAGES)
    data = load_dataset(tmp_path / "fer2013.csv")
    assert data.classes == FER2013_CLASSES and "contempt" not in data.classes and len(data.classes) == 7
    names = [data.classes[i] for i in data.split("train").labels]
    assert names == ["anger", "disgust", "fear", "happiness"]
    assert [data.classes[i] for i in data.split("test").labels] == ["neutral", "happiness"]
    np.testing.assert_array_equal(data.split("valid").images[1], faces[5])


def _write_votes(path: Path, usages: list[str], names: list[str]) -> list[list[int]]:
    votes = [[i % 8 + 2, 8 - i % 8, 0, 0, 0, 0, 0, 0, 0, 0] for i in range(len(usages))]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Usage", "Image name", *VOTE_COLUMNS])
        for usage, name, row in zip(usages, names, votes):
            writer.writerow([usage, name, *row])
    return votes


def test_fer2013_csv_with_ferplus_votes(tmp_path: Path):
    _write_fer2013(tmp_path / "fer2013.csv", [0] * 8, USAGES)
    names = [f"fer{i:07d}.png" for i in range(8)]
    names[2] = ""  # a face Microsoft dropped from FER+
    votes = _write_votes(tmp_path / "fer2013new.csv", USAGES, names)
    data = load_dataset(tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv")
    assert data.classes == EMOTIONS
    assert data.split("train").names == ("fer0000000.png", "fer0000001.png", "fer0000003.png")
    assert data.split("train").votes[2].tolist() == votes[3]


def test_fer2013_votes_that_do_not_match_are_rejected(tmp_path: Path):
    _write_fer2013(tmp_path / "fer2013.csv", [0] * 8, USAGES)
    _write_votes(tmp_path / "short.csv", USAGES[:7], ["x.png"] * 7)
    with pytest.raises(DataError, match="has 7 rows but .* has 8"):
        load_dataset(tmp_path / "fer2013.csv", tmp_path / "short.csv")
    shuffled = USAGES[4:] + USAGES[:4]
    _write_votes(tmp_path / "shuffled.csv", shuffled, ["x.png"] * 8)
    with pytest.raises(DataError, match="shuffled.csv, line 2: Usage 'PublicTest' does not match 'Training'"):
        load_dataset(tmp_path / "fer2013.csv", tmp_path / "shuffled.csv")


def test_fer2013_bad_pixels_name_the_line(tmp_path: Path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(DataError, match="fer2013.csv, line 2: expected 2304 pixel values"):
        load_dataset(path)


def test_image_folder_maps_kaggle_spellings_and_converts_any_image(tmp_path: Path):
    root = tmp_path / "images"
    for split in ("train", "test"):
        for emotion in ("angry", "happy", "Neutral", "sad"):
            (root / split / emotion).mkdir(parents=True)
    Image.new("RGB", (120, 90), (200, 10, 10)).save(root / "train" / "angry" / "a.jpg")
    Image.new("RGBA", (48, 48), (0, 255, 0, 255)).save(root / "train" / "happy" / "b.png")
    Image.new("I;16", (60, 60), 65535).save(root / "train" / "Neutral" / "c.png")
    Image.new("P", (30, 30)).save(root / "train" / "sad" / "d.png")
    Image.new("L", (48, 48), 128).save(root / "test" / "happy" / "e.png")
    data = load_dataset(root)
    assert data.classes == ("neutral", "happiness", "sadness", "anger")
    assert "valid" not in data.splits
    train = data.split("train")
    assert train.images.shape == (4, 48, 48)
    by_name = {name: data.classes[label] for name, label in zip(train.names, train.labels)}
    assert by_name == {
        "train/angry/a.jpg": "anger", "train/happy/b.png": "happiness",
        "train/Neutral/c.png": "neutral", "train/sad/d.png": "sadness",
    }
    assert train.images[train.names.index("train/Neutral/c.png")].min() == 255  # 16-bit white stays white
    assert data.split("test").images[0, 0, 0] == 128


def test_image_folder_errors(tmp_path: Path):
    (tmp_path / "a" / "train" / "grumpy").mkdir(parents=True)
    with pytest.raises(DataError, match="unknown emotion folder 'grumpy'"):
        load_dataset(tmp_path / "a")
    (tmp_path / "b" / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="no images in any emotion folder"):
        load_dataset(tmp_path / "b")
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match="no split folders"):
        load_dataset(tmp_path / "c")
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported data format"):
        load_dataset(tmp_path / "notes.txt")


def test_unknown_split_request_lists_the_splits(ferplus_dir: Path):
    data = load_dataset(ferplus_dir)
    with pytest.raises(DataError, match="has no 'holdout' split; it has: train, valid, test"):
        data.split("holdout")


def test_small_ferplus_fixture_round_trip(tmp_path: Path):
    root = write_ferplus(tmp_path / "only_test", {"test": 5})
    data = load_dataset(root)
    assert list(data.splits) == ["test"]
