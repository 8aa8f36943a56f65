"""Run the Recognizer over video files or webcams: tracks, smoothing, annotated video, CSV, plot."""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ferkit.errors import ConfigError, VideoError
from ferkit.inference.recognizer import FaceResult, Recognizer
from ferkit.video.follow import FULL_DETECTION_SECONDS, FaceFollower
from ferkit.video.tracking import FaceTracker, appearance

if TYPE_CHECKING:
    import cv2

logger = logging.getLogger(__name__)
MAX_CONSECUTIVE_FAILURES = 25


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame: its track id and its result with smoothed probabilities."""

    track_id: int
    result: FaceResult


@dataclass
class VideoSummary:
    """Counts from one pass over a video."""

    frames: int = 0
    analysed: int = 0
    unreadable: int = 0
    faces: int = 0
    tracks: set[int] = field(default_factory=set)
    seconds: float = 0.0
    truncated: bool = False
    full_detections: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def open_capture(source: str | int) -> cv2.VideoCapture:
    """Open a video file or a webcam index (an int, or a string of digits)."""
    import cv2

    if isinstance(source, str) and source.isdigit():
        source = int(source)
    if isinstance(source, str) and not Path(source).exists():
        raise VideoError(f"{source}: no such video file")
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise VideoError(f"{source}: cannot open it as a video (unsupported format, or no such camera)")
    return capture


class TrackingSession:
    """One stream's state: find faces by following them (see FaceFollower), keep stable ids, end a
    track when its box holds another face, and smooth each track's probabilities.

    Args:
        recognizer: its detector finds the faces, its classifier classifies each frame's faces in one batch.
        smoothing: EMA weight of the past.
        full_every: seconds of stream time between full-frame detections (0: every frame).
    """

    def __init__(self, recognizer: Recognizer, smoothing: float = 0.6,
                 full_every: float = FULL_DETECTION_SECONDS) -> None:
        self.recognizer = recognizer
        self.follower = FaceFollower(recognizer.detector, full_every)
        self.tracker = FaceTracker(smoothing=smoothing)

    def step(self, frame_index: int, image_rgb: np.ndarray, seconds: float) -> list[TrackedFace]:
        """Tracked faces of one RGB frame at ``seconds`` of stream time, results carrying the
        smoothed probabilities."""
        rec = self.recognizer
        faces = self.follower.faces(image_rgb, seconds)
        crops = rec.crops(image_rgb, faces)
        results = rec.results(faces, rec.classify(crops))
        probs = np.array([[r.probabilities[n] for n in rec.labels] for r in results]).reshape(-1, len(rec.labels))
        matched = self.tracker.update(frame_index, [r.box for r in results], probs, appearance(crops))
        smoothed = rec.results_from_probs(results, np.array([p for _, p in matched]).reshape(-1, len(rec.labels)))
        return [TrackedFace(track_id, result) for (track_id, _), result in zip(matched, smoothed)]


def frames(recognizer: Recognizer, capture: cv2.VideoCapture, every: int = 1, smoothing: float = 0.6,
           summary: VideoSummary | None = None, full_every: float = FULL_DETECTION_SECONDS,
           ) -> Iterator[tuple[int, float, np.ndarray, list[TrackedFace]]]:
    """Yield (frame index, time in s, RGB frame, tracked faces) for every readable frame.

    Faces are found on every ``every``-th frame (full detection every ``full_every`` seconds,
    following them in between); frames in between repeat the last faces.
    """
    import cv2

    summary = summary or VideoSummary()
    session = TrackingSession(recognizer, smoothing, full_every)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    index, failures, last = -1, 0, []
    while True:
        index += 1
        ok, bgr = capture.read()
        if not ok or bgr is None:
            if total and index < total and failures < MAX_CONSECUTIVE_FAILURES:
                failures += 1
                summary.unreadable += 1
                continue
            break
        failures = 0
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        summary.frames += 1
        if index % every == 0:
            last = session.step(index, rgb, index / fps)
            summary.analysed += 1
            summary.faces += len(last)
            summary.tracks.update(t.track_id for t in last)
            summary.full_detections = session.follower.full_detections
        yield index, index / fps, rgb, last


class _AnnotatedWriter:
    """Writes annotated frames to an MP4 file, opened at the first frame (whose size it takes)."""

    def __init__(self, path: str | Path | None, fps: float) -> None:
        self.path, self.fps = path, fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray, tracked: list[TrackedFace]) -> None:
        import cv2

        from ferkit.inference.annotate import annotate

        if self.path is None:
            return
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps,
                                           (rgb.shape[1], rgb.shape[0]))
            if not self._writer.isOpened():
                raise VideoError(f"{self.path}: cannot write a video there")
        drawn = annotate(rgb, [t.result for t in tracked], [t.track_id for t in tracked])
        self._writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def _timeline_rows(index: int, seconds: float, tracked: list[TrackedFace], labels: tuple[str, ...]) -> list[list[float | str]]:
    return [[index, round(seconds, 3), t.track_id, *t.result.box, t.result.emotion, round(t.result.confidence, 4),
             *(round(t.result.probabilities[n], 4) for n in labels)] for t in tracked]


def _write_timeline(rows: list[list[float | str]], labels: tuple[str, ...], out_csv: str | Path | None,
                    out_plot: str | Path | None) -> None:
    if out_csv is not None:
        with Path(out_csv).open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["frame", "time_s", "track_id", "x", "y", "w", "h", "emotion", "confidence",
                          *(f"p_{n}" for n in labels)])
            out.writerows(rows)
    if out_plot is not None:
        from ferkit.video.timeline import timeline_figure

        timeline_figure(rows, labels).savefig(out_plot, dpi=100)


def run_video(recognizer: Recognizer, source: str | int, out_video: str | Path | None = None,
              out_csv: str | Path | None = None, out_plot: str | Path | None = None, every: int = 1,
              smoothing: float = 0.6, max_frames: int | None = None, progress: bool = True,
              on_frame: Callable[[int, int | None], None] | None = None,
              max_seconds: float | None = None, full_every: float = FULL_DETECTION_SECONDS) -> VideoSummary:
    """Process a video file or webcam and write the annotated video, the CSV timeline and the plot.

    Faces are detected in the whole frame every ``full_every`` seconds of video (0: every frame)
    and followed in small regions in between (see FaceFollower).

    ``on_frame(frames done, total or None)`` is called after each frame (e.g. for a progress bar).
    ``max_frames`` and ``max_seconds`` (of video time) stop early; ``summary.truncated`` says so.
    """
    import cv2
    from tqdm import tqdm

    if every < 1:
        raise ConfigError("--every must be at least 1")
    if full_every < 0:
        raise ConfigError("--full-every must be 0 (full detection on every frame) or more seconds")
    capture = open_capture(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
    if max_seconds is not None:
        limit = max(1, int(max_seconds * fps))
        max_frames = limit if max_frames is None else min(max_frames, limit)
    summary, writer, rows = VideoSummary(), _AnnotatedWriter(out_video, fps), []
    started = time.perf_counter()
    bar = tqdm(total=total if max_frames is None else min(total or max_frames, max_frames), unit="frame",
               disable=not progress, desc="video")
    try:
        for index, seconds, rgb, tracked in frames(recognizer, capture, every, smoothing, summary, full_every):
            writer.write(rgb, tracked)
            if index % every == 0:
                rows.extend(_timeline_rows(index, seconds, tracked, recognizer.labels))
            bar.update(1)
            bar.set_postfix(fps=f"{summary.frames / max(time.perf_counter() - started, 1e-9):.1f}")
            if on_frame is not None:
                on_frame(summary.frames, total)
            if max_frames is not None and summary.frames >= max_frames:
                summary.truncated = total is None or summary.frames < total
                break
    finally:
        bar.close()
        capture.release()
        writer.close()
    summary.seconds = time.perf_counter() - started
    _write_timeline(rows, recognizer.labels, out_csv, out_plot)
    return summary
