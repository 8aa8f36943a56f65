"""`ferkit dataset build`: labelled photos -> face crops made exactly as at inference, split by
subject (or stratified by emotion), written as an image folder ``OUT/<split>/<emotion>/*.png``."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from ferkit.data.dataset import SPLITS
from ferkit.data.images import IMAGE_SUFFIXES, read_face
from ferkit.detection import CROP_SCALE, FaceDetector, create_detector, crop_faces
from ferkit.errors import DataError
from ferkit.labels import ALIASES, EMOTIONS, canonical_emotion
from ferkit.preprocessing import FACE_SIZE, Preprocessing

#: Fewest faces of an emotion a data set may hold (a few for each split, a few to learn from).
MIN_FACES_PER_EMOTION = 5
#: Share of the faces (or subjects) in train, valid and test.
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.7, "valid": 0.15, "test": 0.15}
#: Subject splits tried (seeded); the one closest to SPLIT_FRACTIONS with every emotion in every split wins.
SUBJECT_SPLIT_TRIALS = 200
DATASET_FILE = "dataset.json"
FACES_FILE = "faces.csv"
REJECTED_FILE = "rejected.csv"
SUMMARY_FILE = "summary.txt"
CONTACT_SHEET_FILE = "contact_sheet.png"
CONTACT_SHEET_FACES = 8
CONTACT_SHEET_SIDE = 96

NO_FACE = "no face found"
UNREADABLE = "unreadable"
NOT_AN_IMAGE = "not an image file"


@dataclass(frozen=True)
class LabelledPhoto:
    """One input photo: its file, ferkit's emotion name and the person it shows (None if unknown)."""

    path: Path
    emotion: str
    subject: str | None = None


@dataclass(frozen=True)
class Rejection:
    """A photo that gave no face for the data set, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class BuiltFace:
    """One 48x48 gray crop and where it came from."""

    crop: np.ndarray
    photo: LabelledPhoto
    face: int = 0
    box: tuple[int, int, int, int] | None = None


@dataclass
class BuildSummary:
    """What build_dataset wrote: faces per split and emotion, rejections, the files."""

    out: Path
    counts: dict[str, dict[str, int]]
    rejections: list[Rejection]
    split_by: str
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The summary as a plain-text table."""
        emotions = [e for e in EMOTIONS if any(self.counts[s].get(e) for s in self.counts)]
        lines = [f"faces per emotion and split (split by {self.split_by}):",
                 f"{'split':<8}" + "".join(f"{e[:9]:>10}" for e in emotions) + f"{'total':>8}"]
        for split, row in self.counts.items():
            lines.append(f"{split:<8}" + "".join(f"{row.get(e, 0):>10}" for e in emotions) + f"{sum(row.values()):>8}")
        missing = [e for e in EMOTIONS if e not in emotions]
        if missing:
            lines.append(f"emotions without faces (never fine-tuned on): {', '.join(missing)}")
        lines.append(f"photos rejected: {len(self.rejections)}" + (f" ({_reasons(self.rejections)})"
                                                                        if self.rejections else ""))
        for rejection in self.rejections[:10]:
            lines.append(f"  {rejection.path}: {rejection.reason}")
        if len(self.rejections) > 10:
            lines.append(f"  ... every rejection is in {self.out / REJECTED_FILE}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        lines.append(f"wrote {self.out} (see {CONTACT_SHEET_FILE} for what the model will see)")
        return "\n".join(lines)


def _emotion(name: str, where: str) -> str:
    emotion = canonical_emotion(name)
    if emotion is None:
        raise DataError(f"{where}: unknown emotion '{name}'; use one of {', '.join(sorted(ALIASES))}")
    return emotion


def read_photo_list(photos: Path) -> list[LabelledPhoto]:
    """The labelled photos of ``PHOTOS/<emotion>/*`` or of a CSV ``path,emotion[,subject]`` (paths
    relative to the CSV's folder; a header row is optional). Unknown emotion names are an error
    naming every one of them."""
    photos = Path(photos).expanduser()
    if not photos.exists():
        raise DataError(f"{photos}: no such file or folder")
    if photos.is_file():
        if photos.suffix.lower() != ".csv":
            raise DataError(f"{photos}: give a folder of <emotion>/ folders or a CSV of path,emotion[,subject]")
        return _read_csv(photos)
    unknown = sorted(p.name for p in photos.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and canonical_emotion(p.name) is None)
    if unknown:
        raise DataError(f"{photos}: unknown emotion folder(s) {', '.join(unknown)}; rename them to one of "
                        f"{', '.join(sorted(ALIASES))} (or move them out)")
    listed = [LabelledPhoto(file, _emotion(folder.name, str(folder)))
              for folder in sorted(p for p in photos.iterdir() if p.is_dir() and not p.name.startswith("."))
              for file in sorted(folder.rglob("*")) if file.is_file() and not file.name.startswith(".")]
    if not listed:
        raise DataError(f"{photos}: no photos; expected {photos}/<emotion>/*.jpg (e.g. {photos}/happy/001.jpg)")
    return listed


def _read_csv(file: Path) -> list[LabelledPhoto]:
    try:
        rows = list(csv.reader(file.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: cannot read ({exc})") from exc
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if rows and canonical_emotion(rows[0][1] if len(rows[0]) > 1 else "") is None and rows[0][0].strip().lower() == "path":
        rows = rows[1:]
    if not rows:
        raise DataError(f"{file}: no rows; expected path,emotion[,subject] per line")
    bad_width = [i + 1 for i, row in enumerate(rows) if len(row) not in (2, 3)]
    if bad_width:
        raise DataError(f"{file}: rows {bad_width[:5]} do not have 2 or 3 columns (path,emotion[,subject])")
    unknown = sorted({row[1].strip() for row in rows if canonical_emotion(row[1]) is None})
    if unknown:
        raise DataError(f"{file}: unknown emotion(s) {', '.join(unknown)}; use one of {', '.join(sorted(ALIASES))}")
    with_subject = [len(row) == 3 and bool(row[2].strip()) for row in rows]
    if any(with_subject) and not all(with_subject):
        missing = [i + 1 for i, has in enumerate(with_subject) if not has]
        raise DataError(f"{file}: rows {missing[:5]} have no subject while others do; give every row a subject or none")
    return [LabelledPhoto((file.parent / row[0].strip()).resolve() if not Path(row[0].strip()).is_absolute()
                          else Path(row[0].strip()), _emotion(row[1], str(file)),
                          row[2].strip() if len(row) == 3 else None) for row in rows]


def extract_faces(photos: list[LabelledPhoto], crops: bool = False, all_faces: bool = False,
                  detector: FaceDetector | None = None, progress: bool = True) -> tuple[list[BuiltFace], list[Rejection]]:
    """Detect and crop each photo as ferkit.load() does at inference (same decoder, detector and
    crop_faces), keeping one face per photo: a photo with several faces is rejected unless
    ``all_faces``. With ``crops``, each image already is a face crop and is only brought to 48x48
    gray as ``Recognizer.classify`` expects."""
    from ferkit.inference.images import load_image_scaled

    detector = None if crops else (detector or create_detector())
    faces: list[BuiltFace] = []
    rejections: list[Rejection] = []
    for photo in tqdm(photos, desc="detecting faces" if not crops else "reading crops", disable=not progress,
                      unit="photo"):
        if photo.path.suffix.lower() not in IMAGE_SUFFIXES:
            rejections.append(Rejection(photo.path, f"{NOT_AN_IMAGE} ({photo.path.suffix or 'no suffix'})"))
            continue
        try:
            if crops:
                faces.append(BuiltFace(read_face(photo.path, resize=True), photo))
                continue
            rgb, _ = load_image_scaled(photo.path)
        except DataError as exc:
            rejections.append(Rejection(photo.path, f"{UNREADABLE}: {str(exc).removeprefix(f'{photo.path}: ')}"))
            continue
        assert detector is not None
        found = detector.detect(rgb)
        if not found:
            rejections.append(Rejection(photo.path, NO_FACE))
        elif len(found) > 1 and not all_faces:
            rejections.append(Rejection(photo.path, f"{len(found)} faces (crop the photo to one person, or pass "
                                                    "--all-faces to keep each face with this label)"))
        else:
            for k, (face, crop) in enumerate(zip(found, crop_faces(rgb, found, FACE_SIZE))):
                faces.append(BuiltFace(crop, photo, k, face.box))
    return faces, rejections


def _fraction_error(counts: np.ndarray) -> float:
    target = np.array(list(SPLIT_FRACTIONS.values())) * counts.sum()
    return float(np.abs(counts - target).sum() / max(counts.sum(), 1))


def assign_splits(emotions: list[str], subjects: list[str] | None, seed: int = 0) -> list[str]:
    """A split name per face: whole subjects to one split each when ``subjects`` are given (the
    seeded draw closest to SPLIT_FRACTIONS, preferring draws with every emotion in every split),
    else stratified by emotion (each emotion's faces shuffled and cut by SPLIT_FRACTIONS, at
    least one face in valid and in test)."""
    names = list(SPLIT_FRACTIONS)
    rng = np.random.default_rng(seed)
    if subjects is None:
        out = [""] * len(emotions)
        for emotion in sorted(set(emotions)):
            index = rng.permutation([i for i, e in enumerate(emotions) if e == emotion])
            n_valid = max(1, round(len(index) * SPLIT_FRACTIONS["valid"]))
            n_test = max(1, round(len(index) * SPLIT_FRACTIONS["test"]))
            for position, i in enumerate(index):
                out[i] = "valid" if position < n_valid else "test" if position < n_valid + n_test else "train"
        return out
    people = sorted(set(subjects))
    if len(people) < len(names):
        raise DataError(f"{len(people)} subject(s); splitting by subject needs at least {len(names)} "
                        "(one per split): add people, or leave the subject column out to split by emotion")
    faces_of = {p: [i for i, s in enumerate(subjects) if s == p] for p in people}
    best: tuple[tuple[int, float], dict[str, str]] | None = None
    for _ in range(SUBJECT_SPLIT_TRIALS):
        order = rng.permutation(len(people))
        cumulative = np.cumsum([len(faces_of[people[i]]) for i in order]) / len(subjects)
        cut_valid = max(1, int(np.searchsorted(cumulative, SPLIT_FRACTIONS["train"] + 1e-9, side="right")))
        cut_test = max(cut_valid + 1, int(np.searchsorted(cumulative, 1 - SPLIT_FRACTIONS["test"] + 1e-9, side="right")))
        cut_test = min(cut_test, len(people) - 1)
        cut_valid = min(cut_valid, cut_test - 1)
        split_of = {people[i]: names[0] if k < cut_valid else names[1] if k < cut_test else names[2]
                    for k, i in enumerate(order)}
        counts = np.array([sum(len(faces_of[p]) for p in people if split_of[p] == n) for n in names])
        present = {(split_of[s], e) for s, e in zip(subjects, emotions)}
        missing = sum((n, e) not in present for n in names for e in set(emotions))
        score = (missing, _fraction_error(counts))
        if best is None or score < best[0]:
            best = (score, split_of)
    assert best is not None
    return [best[1][s] for s in subjects]


def _file_name(index: int, face: BuiltFace, several: bool) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in face.photo.path.stem)[:60]
    return f"{index:05d}_{stem}" + (f"_face{face.face + 1}" if several else "") + ".png"


def contact_sheet(faces: list[BuiltFace], seed: int = 0) -> "Image.Image":
    """A gray PIL image: one row per emotion with up to CONTACT_SHEET_FACES random crops, enlarged."""
    emotions = [e for e in EMOTIONS if any(f.photo.emotion == e for f in faces)]
    label_width, side, gap = 110, CONTACT_SHEET_SIDE, 4
    sheet = Image.new("L", (label_width + CONTACT_SHEET_FACES * (side + gap), max(1, len(emotions)) * (side + gap)), 255)
    draw = ImageDraw.Draw(sheet)
    rng = np.random.default_rng(seed)
    for row, emotion in enumerate(emotions):
        members = [f for f in faces if f.photo.emotion == emotion]
        chosen = rng.permutation(len(members))[:CONTACT_SHEET_FACES]
        top = row * (side + gap)
        count = len(members)
        draw.text((4, top + side // 2 - 12), f"{emotion}\n{count} face{'s' if count != 1 else ''}", fill=0)
        for column, i in enumerate(sorted(chosen)):
            tile = Image.fromarray(members[i].crop).resize((side, side), Image.Resampling.NEAREST)
            sheet.paste(tile, (label_width + column * (side + gap), top))
    return sheet


def _reasons(rejections: list[Rejection]) -> str:
    counts = Counter(r.reason.split(":")[0].split(" (")[0] for r in rejections)
    return ", ".join(f"{n} x {reason}" for reason, n in counts.most_common())


def _check_counts(faces: list[BuiltFace], rejections: list[Rejection], photos: Path) -> None:
    per_emotion = Counter(f.photo.emotion for f in faces)
    if not faces:
        raise DataError(f"{photos}: no usable face in {len(rejections)} photo(s) ({_reasons(rejections)})")
    few = {e: n for e, n in per_emotion.items() if n < MIN_FACES_PER_EMOTION}
    if few:
        rejected = f" ({len(rejections)} photos gave no face: {_reasons(rejections)})" if rejections else ""
        raise DataError(f"{photos}: too few faces of " + ", ".join(f"{e} ({n})" for e, n in sorted(few.items()))
                        + f"{rejected}; each emotion needs at least {MIN_FACES_PER_EMOTION} faces (some go to valid "
                        "and test): add photos of it, or remove its folder or rows")


def build_dataset(photos: str | Path, out: str | Path, crops: bool = False, all_faces: bool = False,
                  seed: int = 0, detector: str = "yunet", progress: bool = True) -> BuildSummary:
    """Build a fine-tuning data set from labelled photos.

    Args:
        photos: a folder ``<emotion>/*`` (ferkit's names or their aliases) or a CSV
            ``path,emotion[,subject]``.
        out: a new (or empty) folder for ``<split>/<emotion>/*.png``, faces.csv, rejected.csv,
            summary.txt, dataset.json and contact_sheet.png.
        crops: the images already are face crops (no detection).
        all_faces: keep every face of a photo with several (default: reject such photos).
        seed: the split draw's seed.
        detector: "yunet" or "haar", as for ferkit.load().
        progress: show a progress bar.
    """
    photos, out = Path(photos).expanduser(), Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already exists and is not empty; give a new folder")
    listed = read_photo_list(photos)
    faces, rejections = extract_faces(listed, crops, all_faces, None if crops else create_detector(detector),
                                      progress)
    _check_counts(faces, rejections, photos)
    has_subjects = listed[0].subject is not None
    splits = assign_splits([f.photo.emotion for f in faces],
                           [str(f.photo.subject) for f in faces] if has_subjects else None, seed)
    counts = {s: {e: 0 for e in EMOTIONS if any(f.photo.emotion == e for f in faces)} for s in SPLITS}
    several = Counter(f.photo.path for f in faces)
    out.mkdir(parents=True, exist_ok=True)
    with (out / FACES_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "split", "emotion", "subject", "photo", "face", "x", "y", "w", "h"])
        for index, (face, split) in enumerate(zip(faces, splits)):
            relative = Path(split) / face.photo.emotion / _file_name(index, face, several[face.photo.path] > 1)
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face.crop).save(out / relative)
            counts[split][face.photo.emotion] += 1
            writer.writerow([relative.as_posix(), split, face.photo.emotion, face.photo.subject or "",
                             str(face.photo.path), face.face, *(face.box or ("", "", "", ""))])
    with (out / REJECTED_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["photo", "reason"])
        writer.writerows([str(r.path), r.reason] for r in rejections)
    summary = BuildSummary(out, counts, rejections, "subject" if has_subjects else "emotion (stratified)")
    summary.warnings = [f"{split} has no {emotion} faces" for split in SPLITS for emotion, n in counts[split].items()
                        if n == 0]
    contact_sheet(faces, seed).save(out / CONTACT_SHEET_FILE)
    record = {
        "format": "ferkit-faces", "source": str(photos), "faces": len(faces), "photos": len(listed),
        "rejected": len(rejections), "split_by": summary.split_by, "seed": seed, "counts": counts,
        "crop": {"input": "face crops (--crops)" if crops else "photos", "detector": None if crops else detector,
                 "scale": CROP_SCALE, "size": FACE_SIZE, "levelled_by_eyes": not crops, "all_faces": all_faces},
        "preprocessing": Preprocessing().to_dict(),
    }
    (out / DATASET_FILE).write_text(json.dumps(record, indent=2) + "\n")
    (out / SUMMARY_FILE).write_text(summary.text() + "\n")
    return summary
