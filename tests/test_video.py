import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.video.tracking import MIN_SIMILARITY, FaceTracker, iou

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


def _face(path: Path, side: int) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), (side, side), interpolation=cv2.INTER_AREA)


def _other_person(side: int) -> np.ndarray:
    """A close-up of the largest face of the group photo (not Amy), RGB."""
    from ferkit.detection import create_detector

    group = cv2.cvtColor(cv2.imread(str(DATA / "bbt3.jpg")), cv2.COLOR_BGR2RGB)
    x, y, w, h = create_detector().detect(group)[0].box
    cx, cy, half = x + w // 2, y + h // 2, round(0.8 * max(w, h))
    return cv2.resize(group[max(0, cy - half) : cy + half, max(0, cx - half) : cx + half], (side, side))


def _moving_frames(count: int, face: np.ndarray, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """RGB frames (W, H = size) with the face drifting 3 px right per frame on a gray background."""
    out = []
    for i in range(count):
        frame = np.full((size[1], size[0], 3), 90, np.uint8)
        frame[40 : 40 + face.shape[0], 30 + 3 * i : 30 + 3 * i + face.shape[1]] = face
        out.append(frame)
    return out


def test_follower_finds_the_faces_full_detection_finds_and_detects_fully_only_now_and_then():
    from ferkit.detection import create_detector
    from ferkit.video.follow import FaceFollower

    detector = create_detector()
    follower = FaceFollower(detector, full_every=0.25)
    clip = _moving_frames(20, _face(DATA / "amy1.png", 120))
    for i, frame in enumerate(clip):  # 30 frames/s: full detections at frames 0, 8 and 16
        followed, full = follower.faces(frame, i / 30), detector.detect(frame)
        assert len(followed) == len(full) == 1 and iou(followed[0].box, full[0].box) >= 0.7
    # the face moving on a still background changes nothing outside its region
    assert (follower.full_detections, follower.change_detections) == (3, 0)
    # the face is gone: the follower loses it and looks at the whole frame at once
    blank = np.full_like(clip[0], 90)
    assert follower.faces(blank, 20 / 30) == [] and follower.full_detections == 4
    # a face comes in: found in the same frame, by detection where the picture changed
    assert len(follower.faces(clip[0], 21 / 30)) == 1
    assert (follower.full_detections, follower.change_detections) == (4, 1)
    # full_every=0: the whole frame every frame
    every = FaceFollower(detector, full_every=0.0)
    for i, frame in enumerate(clip[:4]):
        every.faces(frame, i / 30)
    assert every.full_detections == 4


def test_a_scene_cut_calls_for_a_full_detection():
    from ferkit.detection import create_detector
    from ferkit.video.follow import FaceFollower

    follower = FaceFollower(create_detector(), full_every=0.4)
    amy = _moving_frames(3, _face(DATA / "amy1.png", 120))
    for i, frame in enumerate(amy):
        follower.faces(frame, i / 30)
    assert follower.full_detections == 1
    cut = np.full_like(amy[0], 200)  # another picture everywhere: another person elsewhere, another background
    cut[100:200, 180:280] = _other_person(100)
    followed = follower.faces(cut, 4 / 30)
    assert follower.full_detections == 2 and follower.change_detections == 0
    assert len(followed) == 1 and followed[0].box[0] > 170


def test_region_detection_reports_boxes_in_frame_pixels():
    from ferkit.detection import create_detector

    detector = create_detector()
    frame = _moving_frames(1, _face(DATA / "amy1.png", 200), (640, 480))[0]
    full = detector.detect(frame)[0]
    region = detector.detect_region(frame, (0, 0, 400, 400), 160)  # scaled down 2.5x for detection
    assert len(region) == 1 and iou(region[0].box, full.box) >= 0.8
    assert region[0].landmarks is not None and abs(region[0].landmarks[0][0] - full.landmarks[0][0]) < 6
    assert detector.detect_region(frame, (400, 0, 640, 480), 160) == []  # no face there


def test_a_cut_to_another_person_in_the_same_place_ends_the_track(trained_run: Path):
    import ferkit
    from ferkit.video.process import TrackingSession
    from ferkit.video.tracking import appearance

    rec = ferkit.load(trained_run)
    amy, other = _face(DATA / "amy1.png", 120), _other_person(120)
    clip = _moving_frames(6, amy)[:3] + _moving_frames(6, other)[3:]  # a cut at frame 3, same place
    smoothed, raw = TrackingSession(rec, smoothing=0.9), TrackingSession(rec, smoothing=0.0)
    tracked = [(smoothed.step(i, frame, i / 30), raw.step(i, frame, i / 30)) for i, frame in enumerate(clip)]
    assert all(len(s) == len(r) == 1 for s, r in tracked)
    assert [s[0].track_id for s, _ in tracked] == [1, 1, 1, 2, 2, 2]
    # the new track starts from the second person's own probabilities, none of the first person's
    first, own = tracked[3][0][0].result.probabilities, tracked[3][1][0].result.probabilities
    assert first == pytest.approx(own, abs=1e-6)
    later, own_later = tracked[4][0][0].result.probabilities, tracked[4][1][0].result.probabilities
    assert later != pytest.approx(own_later, abs=1e-6)  # from then on smoothed within the new track
    # without the cut, the same person moving keeps one track
    session = TrackingSession(rec)
    assert {session.step(i, f, i / 30)[0].track_id for i, f in enumerate(_moving_frames(6, amy))} == {1}
    # the appearance check itself: the same face moved scores high, another face low
    crops = rec.crops(clip[0], rec.detector.detect(clip[0])), rec.crops(clip[2], rec.detector.detect(clip[2]))
    looks = appearance(np.concatenate([*crops, rec.crops(clip[3], rec.detector.detect(clip[3]))]))
    assert looks[0] @ looks[1] > 0.8 > MIN_SIMILARITY > looks[0] @ looks[2]


def test_one_face_moving_on_a_changing_background_keeps_one_track(trained_run: Path):
    """The detector's box jitters by up to 20% on this close-up: the track's averaged look keeps it."""
    import ferkit
    from ferkit.video.process import TrackingSession

    session, face, ids = TrackingSession(ferkit.load(trained_run)), _face(DATA / "amy1.png", 160), set()
    for i in range(150):  # as benchmarks/video_memory.py: the background's colour moves, and jumps at frame 120
        frame = np.full((480, 640, 3), (140, 90, 60 + i % 120), np.uint8)
        x, y = int(240 + 200 * np.sin(i / 50)), int(160 + 120 * np.cos(i / 70))
        frame[y : y + 160, x : x + 160] = face
        ids.update(t.track_id for t in session.step(i, frame, i / 30))
    assert ids == {1}
