"""Frames/s of `ferkit video` with face following (the default) against full detection on every
frame, in the same run, on synthetic clips of real faces (40-200 px) moving, entering and leaving:
640x480 with 1 face and 1280x720 with 5 faces. Also how well the followed faces agree with full
detection on every frame: the share of its boxes found (IoU >= 0.5) and the longest time a face it
sees goes unfound.

    python benchmarks/video_tracking.py [--seconds 10] [--photos ../shared/data/photos] [--model fast]

Both runs read the same MJPEG .avi and time the whole loop of `ferkit video` (decode, detection,
crops, classification, tracking, smoothing), without writing outputs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import ferkit
from ferkit.video.follow import FULL_DETECTION_SECONDS
from ferkit.video.process import VideoSummary, frames, open_capture
from ferkit.video.tracking import iou

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
FPS = 30
MIN_FACE, MAX_FACE = 40, 200


@dataclass(frozen=True)
class Clip:
    width: int
    height: int
    faces: int


CLIPS = {"640x480, 1 face": Clip(640, 480, 1), "1280x720, 5 faces": Clip(1280, 720, 5)}


def close_ups(folder: Path) -> list[np.ndarray]:
    """The face close-ups (BGR) of a folder: its PNG files, else the test data's amy1.png."""
    paths = sorted(folder.glob("*.png")) or [ROOT / "tests" / "data" / "amy1.png"]
    return [cv2.imread(str(p)) for p in paths]


def face_square(clip: Clip, k: int, t: float) -> tuple[int, int, int] | None:
    """Where face k is at time t: (x, y, side) of its pasted square, or None while it is away.
    Each face crosses its lane in 4-6 s from outside to outside, then stays away for 1 s; its side
    swings between MIN_FACE and MAX_FACE."""
    cross, away = 4.0 + k * 0.5, 1.0
    phase = (t + 0.7 * k) % (cross + away)
    if phase >= cross:
        return None
    side = round(MIN_FACE + (MAX_FACE - MIN_FACE) * (0.5 + 0.5 * np.sin(2 * np.pi * t / (3.0 + k))))
    progress = phase / cross
    if clip.faces == 1:  # left to right, bobbing up and down
        x = round(-side + progress * (clip.width + side))
        y = round((clip.height - side) * (0.5 + 0.3 * np.sin(2 * np.pi * t / 2.5)))
    else:  # top to bottom, each in its own column
        column = clip.width // clip.faces
        x = k * column + (column - side) // 2
        y = round(-side + progress * (clip.height + side))
    return x, y, side


def write_clip(path: Path, clip: Clip, seconds: float, faces: list[np.ndarray]) -> list[list[tuple[int, int, int]]]:
    """Write the clip; returns each frame's face squares."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(40, 200, (clip.height, clip.width, 3), dtype=np.uint8), (0, 0), 6)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (clip.width, clip.height))
    truth = []
    for i in range(round(seconds * FPS)):
        frame, squares = background.copy(), []
        for k in range(clip.faces):
            square = face_square(clip, k, i / FPS)
            if square is None:
                continue
            x, y, side = square
            face = cv2.resize(faces[k % len(faces)], (side, side), interpolation=cv2.INTER_AREA)
            x0, y0, x1, y1 = max(0, x), max(0, y), min(clip.width, x + side), min(clip.height, y + side)
            if x1 > x0 and y1 > y0:
                frame[y0:y1, x0:x1] = face[y0 - y : y1 - y, x0 - x : x1 - x]
                squares.append(square)
        writer.write(frame)
        truth.append(squares)
    writer.release()
    return truth


def run(rec: ferkit.Recognizer, path: Path, full_every: float) -> tuple[list[list[tuple[int, int, int, int]]], float, int]:
    """Each frame's face boxes, the frames/s and the number of full-frame detections."""
    capture, summary = open_capture(str(path)), VideoSummary()
    boxes = []
    started = time.perf_counter()
    for _, _, _, tracked in frames(rec, capture, summary=summary, full_every=full_every):
        boxes.append([t.result.box for t in tracked])
    seconds = time.perf_counter() - started
    capture.release()
    return boxes, len(boxes) / seconds, summary.full_detections


def agreement(reference: list[list[tuple]], followed: list[list[tuple]], truth: list[list[tuple[int, int, int]]]
              ) -> tuple[float, float, int]:
    """Share of the reference boxes that a followed box overlaps (IoU >= 0.5), the longest run (in
    seconds) of frames where a face the reference finds has no followed box, and the followed boxes
    that overlap no reference box."""
    found = total = extra = 0
    missing: dict[int, int] = {}
    longest = 0
    for ref, ours, squares in zip(reference, followed, truth):
        hit = [any(iou(r, o) >= 0.5 for o in ours) for r in ref]
        found, total = found + sum(hit), total + len(ref)
        extra += sum(not any(iou(r, o) >= 0.5 for r in ref) for o in ours)
        for k, (x, y, side) in enumerate(squares):  # which pasted face each reference box is
            mine = [h for r, h in zip(ref, hit) if x <= r[0] + r[2] / 2 <= x + side and y <= r[1] + r[3] / 2 <= y + side]
            missing[k] = missing.get(k, 0) + 1 if mine and not any(mine) else 0
            longest = max(longest, missing[k])
    return found / max(1, total), longest / FPS, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="folder of face close-ups (PNG)")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    rec = ferkit.load(args.model)
    faces = close_ups(args.photos)
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in CLIPS.items():
            path = Path(tmp) / "clip.avi"
            truth = write_clip(path, clip, args.seconds, faces)
            reference, full_fps, _ = run(rec, path, 0.0)
            followed, fps, full = run(rec, path, FULL_DETECTION_SECONDS)
            share, longest, extra = agreement(reference, followed, truth)
            print(f"{name} ({len(truth)} frames, {sum(map(len, reference))} faces found by full detection): "
                  f"full detection every frame {full_fps:.1f} frames/s; following {fps:.1f} frames/s "
                  f"({fps / full_fps:.1f}x, {full} full-frame detections); boxes agreeing {100 * share:.1f}%, "
                  f"longest miss {longest:.2f} s, {extra} extra boxes")


if __name__ == "__main__":
    main()
