import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.video.tracking import FaceTracker, iou

DATA = Path(__file__).parent / "data"


def test_iou_values():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_tracker_keeps_ids_and_smooths():
    tracker = FaceTracker(smoothing=0.5, max_missing=1)
    a, b = np.eye(3)[0], np.eye(3)[1]
    first = tracker.update(0, [(0, 0, 10, 10), (50, 50, 10, 10)], np.stack([a, b]))
    assert [tid for tid, _ in first] == [1, 2]
    # faces listed in the other order, slightly moved: same ids; probabilities move half-way
    second = tracker.update(1, [(52, 50, 10, 10), (1, 0, 10, 10)], np.stack([a, b]))
    assert [tid for tid, _ in second] == [2, 1]
    np.testing.assert_allclose(second[1][1], [0.5, 0.5, 0])
    # a face far away starts a new track; old tracks expire after max_missing frames
    third = tracker.update(3, [(200, 200, 10, 10)], np.stack([a]))
    assert third[0][0] == 3 and [t.track_id for t in tracker.tracks] == [3]


def _clip(path: Path, frames: int = 12) -> Path:
    photo = cv2.imread(str(DATA / "bbt3.jpg"))
    h, w = 360, 560
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for i in range(frames):  # the camera pans slowly across the group
        writer.write(np.ascontiguousarray(photo[10:10 + h, 2 * i : 2 * i + w]))
    writer.release()
    return path


def test_video_writes_annotated_video_csv_and_plot(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    clip = _clip(tmp_path / "clip.mp4")
    out, table, plot = tmp_path / "out.mp4", tmp_path / "timeline.csv", tmp_path / "timeline.png"
    code = main(["video", str(clip), "--out", str(out), "--csv", str(table), "--plot", str(plot),
                 "--weights", str(trained_run), "--every", "2"])
    assert code == 0, capsys.readouterr().err
    assert "12 frames (0 unreadable skipped)" in capsys.readouterr().out
    rows = list(csv.DictReader(table.open()))
    assert {row["frame"] for row in rows} == {str(i) for i in range(0, 12, 2)}
    per_frame = {}
    for row in rows:
        per_frame.setdefault(row["frame"], set()).add(row["track_id"])
    assert all(len(ids) == 5 for ids in per_frame.values())
    assert len({row["track_id"] for row in rows}) == 5  # the same five people all along
    probs = np.array([[float(row[f"p_{n}"]) for n in ("neutral", "happiness", "surprise", "sadness", "anger",
                                                       "disgust", "fear", "contempt")] for row in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-3)
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    capture.release()
    assert plot.stat().st_size > 10_000


def test_unopenable_video_is_a_clear_error(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is no video")
    assert main(["video", str(bad), "--weights", str(trained_run)]) == 2
    assert "cannot open it as a video" in capsys.readouterr().err
    assert main(["video", str(tmp_path / "missing.mp4"), "--weights", str(trained_run)]) == 2
    assert "no such video file" in capsys.readouterr().err


def test_tracker_assignment_maximises_total_overlap():
    """Greedy matching takes the best single pair (track 1 with the first face, IoU 0.62) and
    strands the second face (new track); the optimal assignment continues both tracks (0.5 + 0.5)."""
    tracker = FaceTracker(smoothing=0.0, min_iou=0.2)
    p = np.eye(2)
    assert [tid for tid, _ in tracker.update(0, [(0, 0, 30, 30), (17, 0, 30, 30)], p)] == [1, 2]
    matched = tracker.update(1, [(7, 0, 30, 30), (-10, 0, 30, 30)], p)
    assert [tid for tid, _ in matched] == [2, 1]


def test_video_length_cap_stops_early(trained_run: Path, tmp_path: Path):
    import ferkit
    from ferkit.video.process import run_video

    clip = _clip(tmp_path / "clip.mp4")  # 12 frames at 10 frames/s
    table = tmp_path / "t.csv"
    summary = run_video(ferkit.load(trained_run), str(clip), out_csv=table, max_seconds=0.5, progress=False)
    assert summary.frames == 5 and summary.truncated
    assert {row["frame"] for row in csv.DictReader(table.open())} == {str(i) for i in range(5)}
    assert not run_video(ferkit.load(trained_run), str(clip), max_seconds=60, progress=False).truncated
