"""Region-of-interest face following: detect in a small region around each face's last box, and in
the whole frame only now and then (new faces), when a face is lost, or when the picture changes
away from the faces (a face coming in, a scene cut)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferkit.detection import Face, FaceDetector
from ferkit.video.tracking import iou

#: Seconds of video between full-frame detections (new faces are found within this, well under 0.5 s).
FULL_DETECTION_SECONDS = 0.25
#: The region searched around a face: this many times the face's longer side, centred on it.
REGION_SCALE = 2.0
#: Regions are scaled down to this longer side for detection: a face of ~80 px, where the
#: detector is accurate and a region costs about 1/12 of a 640x480 frame.
REGION_SIDE = 160
#: Least overlap between a face's last box and what the region finds to count as the same face.
MIN_FOLLOW_IOU = 0.2
#: Frames are compared at this width (gray, area-averaged: camera noise and compression fade)...
CHANGE_WIDTH = 80
#: ...and a pixel outside the faces' regions that moved by this many gray levels since the last
#: frame counts as changed; CHANGE_PIXELS of them (a 40 px face coming in, at 640 px wide) call
#: for a full detection, at most every CHANGE_GAP of full_every.
CHANGE_LEVEL = 24
CHANGE_PIXELS = 4
CHANGE_GAP = 0.25


def region_around(box: tuple[int, int, int, int], scale: float = REGION_SCALE) -> tuple[int, int, int, int]:
    """The square (x0, y0, x1, y1) of ``scale`` times the box's longer side, centred on the box."""
    x, y, w, h = box
    half = max(w, h) * scale / 2.0
    cx, cy = x + w / 2.0, y + h / 2.0
    return round(cx - half), round(cy - half), round(cx + half), round(cy + half)


@dataclass
class FaceFollower:
    """The faces of each frame of a stream, by full detection every ``full_every`` seconds (0: on
    every frame) and by region detection around the previous faces in between.

    Attributes:
        detector: the detector used for both kinds of detection (its options apply to both).
        full_every: seconds of stream time between full-frame detections; 0 detects every frame fully.
        full_detections: how many frames were detected fully (periodic, first, or after a loss).
    """

    detector: FaceDetector
    full_every: float = FULL_DETECTION_SECONDS
    full_detections: int = 0
    _faces: list[Face] = field(default_factory=list)
    _last_full: float | None = None
    _small: np.ndarray | None = None
    _changed: bool = False

    def faces(self, image_rgb: np.ndarray, seconds: float) -> list[Face]:
        """Faces in one RGB uint8 frame at ``seconds`` of stream time, largest first."""
        self._changed = self._changed_elsewhere(image_rgb) or self._changed  # until the next full detection
        since = np.inf if self._last_full is None else seconds - self._last_full
        due = self.full_every <= 0 or since >= self.full_every or (self._changed and since >= CHANGE_GAP * self.full_every)
        followed = None if due else self._follow(image_rgb)
        if followed is None:  # periodic, or a face was lost: look at the whole frame
            followed = self.detector.detect(image_rgb)
            self._last_full, self._changed = seconds, False
            self.full_detections += 1
        self._faces = followed
        return followed

    def _follow(self, image_rgb: np.ndarray) -> list[Face] | None:
        """Each previous face found again in its region, or None if any is lost."""
        found: list[Face] = []
        for face in self._faces:
            candidates = self.detector.detect_region(image_rgb, region_around(face.box), REGION_SIDE)
            overlaps = [iou(face.box, c.box) for c in candidates]
            if not overlaps or max(overlaps) < MIN_FOLLOW_IOU:
                return None
            best = candidates[int(np.argmax(overlaps))]
            if all(iou(best.box, other.box) < 0.5 for other in found):  # two regions, one face: keep it once
                found.append(best)
        found.sort(key=lambda f: f.area, reverse=True)
        return found

    def _changed_elsewhere(self, image_rgb: np.ndarray) -> bool:
        """Whether the frame changed since the last one outside the regions of the faces followed."""
        import cv2

        h, w = image_rgb.shape[:2]
        factor = CHANGE_WIDTH / w
        small = cv2.cvtColor(cv2.resize(image_rgb, (CHANGE_WIDTH, max(1, round(h * factor))),
                                        interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        previous, self._small = self._small, small
        if previous is None or previous.shape != small.shape:
            return True
        moved = cv2.absdiff(small, previous) >= CHANGE_LEVEL
        for face in self._faces:
            x0, y0, x1, y1 = (round(v * factor) for v in region_around(face.box))
            moved[max(0, y0) : max(0, y1 + 1), max(0, x0) : max(0, x1 + 1)] = False
        return int(moved.sum()) >= CHANGE_PIXELS
