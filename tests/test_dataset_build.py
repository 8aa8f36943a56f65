"""`ferkit dataset build`: inference crops, rejections with reasons, subject and stratified splits, bad input."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.cli import main
from ferkit.data.images import read_face
from ferkit.errors import DataError
from ferkit.finetune.dataset import (
    CONTACT_SHEET_FILE,
    FACES_FILE,
    MIN_FACES_PER_EMOTION,
    NO_FACE,
    REJECTED_FILE,
    SUMMARY_FILE,
    assign_splits,
    build_dataset,
)
from ferkit.inference.recognizer import load

DATA = Path(__file__).parent / "data"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _close_ups(folder: Path, count: int) -> list[Path]:
    """``count`` photos of one face: amy1.png shifted inside larger canvases, some mirrored."""
    face = Image.open(DATA / "amy1.png").convert("RGB")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        canvas = Image.new("RGB", (220 + 10 * i, 200), (90 + 20 * i, 100, 110))
        canvas.paste(face.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else face, (10 + 12 * i, 20 + 4 * i))
        paths.append(folder / f"amy_{i}.jpg")
        canvas.save(paths[-1], quality=95)
    return paths


def _photo_folder(root: Path) -> Path:
    _close_ups(root / "happy", MIN_FACES_PER_EMOTION)
    neutral = root / "neutral"
    neutral.mkdir()
    (neutral / "group.jpg").write_bytes((DATA / "bbt3.jpg").read_bytes())
    Image.new("RGB", (160, 120), (128, 140, 150)).save(neutral / "wall.png")
    (neutral / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (neutral / "notes.txt").write_text("not a photo")
    return root


def test_photos_become_inference_crops_and_rejections_carry_reasons(tmp_path: Path):
    photos = _photo_folder(tmp_path / "photos")
    summary = build_dataset(photos, tmp_path / "ds", progress=False)
    rows = _rows(tmp_path / "ds" / FACES_FILE)
    assert len(rows) == MIN_FACES_PER_EMOTION and {r["emotion"] for r in rows} == {"happiness"}
    recognizer = load()
    for row in rows:  # the stored crop is, pixel for pixel, what ferkit.load() classifies
        stored = np.asarray(Image.open(tmp_path / "ds" / row["file"]))
        analysis = recognizer.analyze_image(row["photo"])
        assert len(analysis.crops) == 1
        np.testing.assert_array_equal(stored, analysis.crops[0])
        assert [int(row[k]) for k in "xywh"] == list(analysis.faces[0].box)
    reasons = {Path(r["photo"]).name: r["reason"] for r in _rows(tmp_path / "ds" / REJECTED_FILE)}
    assert reasons["wall.png"] == NO_FACE
    assert reasons["group.jpg"].startswith("5 faces") and "--all-faces" in reasons["group.jpg"]
    assert reasons["broken.jpg"].startswith("unreadable")
    assert reasons["notes.txt"] == "not an image file (.txt)"
    assert len(summary.rejections) == 4
    assert summary.counts == {"train": {"happiness": 3}, "valid": {"happiness": 1}, "test": {"happiness": 1}}
    text = (tmp_path / "ds" / SUMMARY_FILE).read_text()
    assert "photos rejected: 4" in text and "(never fine-tuned on): neutral, surprise" in text
    sheet = Image.open(tmp_path / "ds" / CONTACT_SHEET_FILE)
    assert sheet.size[1] == 100  # one row: happiness
    record = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert record["crop"]["detector"] == "yunet" and record["faces"] == 5 and record["rejected"] == 4


def test_all_faces_keeps_every_face_of_a_group_photo(tmp_path: Path):
    photos = _photo_folder(tmp_path / "photos")
    summary = build_dataset(photos, tmp_path / "ds", all_faces=True, progress=False)
    neutral = sum(row.get("neutral", 0) for row in summary.counts.values())
    assert neutral == 5
    names = [Path(r["file"]).name for r in _rows(tmp_path / "ds" / FACES_FILE) if r["emotion"] == "neutral"]
    assert sorted(n.rsplit("_", 1)[1] for n in names) == [f"face{k}.png" for k in range(1, 6)]


def _crops_csv(folder: Path, subjects: int, emotions: tuple[str, ...], per_subject: int = 2) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    table = folder / "faces.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "emotion", "subject"])
        for s in range(subjects):
            for emotion in emotions:
                for k in range(per_subject):
                    name = f"s{s}_{emotion}_{k}.png"
                    Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(folder / name)
                    writer.writerow([name, emotion, f"subject{s}"])
    return table


def test_subject_splits_put_each_person_in_one_split(tmp_path: Path):
    table = _crops_csv(tmp_path / "crops", subjects=20, emotions=("happy", "sad", "angry"))
    summary = build_dataset(table, tmp_path / "ds", crops=True, seed=3, progress=False)
    rows = _rows(tmp_path / "ds" / FACES_FILE)
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row["subject"], set()).add(row["split"])
        # --crops: a 48x48 crop is stored as it is
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ds" / row["file"])),
                                      read_face(Path(row["photo"]), resize=False))
    assert all(len(splits) == 1 for splits in split_of.values())
    people = Counter(next(iter(s)) for s in split_of.values())
    assert people == {"train": 14, "valid": 3, "test": 3}
    assert all(n == people[split] * 2 for split, row in summary.counts.items() for n in row.values())
    assert summary.split_by == "subject" and not summary.warnings


def test_stratified_splits_cut_each_emotion_and_follow_the_seed():
    emotions = ["happiness"] * 20 + ["sadness"] * 7
    splits = assign_splits(emotions, None, seed=0)
    counts = Counter(zip(emotions, splits))
    assert counts == {("happiness", "train"): 14, ("happiness", "valid"): 3, ("happiness", "test"): 3,
                      ("sadness", "train"): 5, ("sadness", "valid"): 1, ("sadness", "test"): 1}
    assert assign_splits(emotions, None, seed=0) == splits
    assert assign_splits(emotions, None, seed=1) != splits


@pytest.mark.parametrize("case, message", [
    ("unknown_folder", "unknown emotion folder(s) feliz"),
    ("unknown_csv_emotion", "unknown emotion(s) joyful"),
    ("too_few", "too few faces of sadness (3)"),
    ("mixed_subjects", "have no subject while others do"),
    ("not_empty", "already exists and is not empty"),
    ("few_subjects", "2 subject(s); splitting by subject needs at least 3"),
    ("nothing_usable", "no usable face in 2 photo(s) (1 x unreadable, 1 x no face found)"),
])
def test_bad_input_gives_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str):
    out = tmp_path / "ds"
    crops = ["--crops"]
    if case == "unknown_folder":
        source = _photo_folder(tmp_path / "photos")
        (source / "feliz").mkdir()
        crops = []
    elif case == "unknown_csv_emotion":
        source = _crops_csv(tmp_path / "c", 4, ("happy",))
        source.write_text(source.read_text() + "s0_happy_0.png,joyful,subject0\n")
    elif case == "too_few":
        source = _crops_csv(tmp_path / "c", 5, ("happy",))
        source.write_text(source.read_text() + "".join(f"s0_happy_0.png,sad,subject{i}\n" for i in range(3)))
    elif case == "mixed_subjects":
        source = _crops_csv(tmp_path / "c", 4, ("happy",))
        source.write_text(source.read_text() + "s0_happy_0.png,happy\n")
    elif case == "not_empty":
        source = _crops_csv(tmp_path / "c", 4, ("happy",))
        out.mkdir()
        (out / "old.txt").write_text("keep me")
    elif case == "few_subjects":
        source = _crops_csv(tmp_path / "c", 2, ("happy",), per_subject=3)
    else:
        source = tmp_path / "photos"
        (source / "happy").mkdir(parents=True)
        Image.new("RGB", (160, 120), (128, 140, 150)).save(source / "happy" / "wall.png")
        (source / "happy" / "broken.png").write_bytes(b"\x89PNG broken")
        crops = []
    assert main(["dataset", "build", str(source), str(out), "--no-progress", *crops]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ferkit: error:") and message in err and "Traceback" not in err
    if case == "not_empty":
        assert (out / "old.txt").read_text() == "keep me"
    else:
        assert not out.exists()  # nothing written when the input is refused


def test_missing_csv_or_folder_is_an_error(tmp_path: Path):
    with pytest.raises(DataError, match="no such file or folder"):
        build_dataset(tmp_path / "nowhere", tmp_path / "ds", progress=False)
