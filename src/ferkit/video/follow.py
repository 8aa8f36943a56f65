"""Region-of-interest face following: detect in a small region around each face's last box, and in
the whole frame only now and then (new faces), when a face is lost, or when the picture changes
away from the faces (a face coming in, a scene cut)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferkit.detection import Face, FaceDetector
from ferkit.video.tracking import iou

#: Seconds of video between full-frame detections: new faces that the change check below does not
#: catch (a busy scene) are found within this, under 0.5 s.
FULL_DETECTION_SECONDS = 0.4
#: The region searched around a face: this many times the face's longer side, centred on it.
REGION_SCALE = 2.0
#: Regions are scaled down to at most this longer side for detection: a face of 40-80 px, where
#: the detector is accurate and a region costs about 1/12 of a 640x480 frame or less.
REGION_SIDE = 160
#: Least overlap between a face's last box and what the region finds to count as the same face.
MIN_FOLLOW_IOU = 0.2
#: Frames are compared at this width (gray, area-averaged: camera noise and compression fade)...
CHANGE_WIDTH = 80
#: ...a pixel outside the faces' regions that moved by this many gray levels since the last frame
#: counts as changed, and CHANGE_PIXELS of them (a 40 px face coming in, at 640 px wide) are
#: searched for new faces, CHANGE_MARGIN compared pixels around them...
CHANGE_LEVEL = 24
CHANGE_PIXELS = 4
CHANGE_MARGIN = 6
#: ...in the whole frame when they spread over more than this share of it (a scene cut, a moving
#: camera), at most every CHANGE_GAP of full_every.
WIDE_CHANGE = 0.5
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
    every frame) and by region detection in between: around the previous faces, and where the
    picture changed away from them (a face coming in).

    Attributes:
        detector: the detector used for every detection (its options apply to all).
        full_every: seconds of stream time between full-frame detections; 0 detects every frame fully.
        full_detections: frames detected fully (periodic, first, after a lost face or a wide change).
        change_detections: detections in a changed area.
    """

    detector: FaceDetector
    full_every: float = FULL_DETECTION_SECONDS
    full_detections: int = 0
    change_detections: int = 0
    _faces: list[Face] = field(default_factory=list)
    _last_full: float | None = None
    _small: np.ndarray | None = None
    _wide_change: bool = False

    def faces(self, image_rgb: np.ndarray, seconds: float) -> list[Face]:
        """Faces in one RGB uint8 frame at ``seconds`` of stream time, largest first."""
        h, w = image_rgb.shape[:2]
        changed = self._changed_area(image_rgb)
        wide = changed is not None and (changed[2] - changed[0]) * (changed[3] - changed[1]) > WIDE_CHANGE * h * w
        self._wide_change = self._wide_change or wide  # until the next full detection
        since = np.inf if self._last_full is None else seconds - self._last_full
        due = (self.full_every <= 0 or since >= self.full_every
               or (self._wide_change and since >= CHANGE_GAP * self.full_every))
        found = None if due else self._follow(image_rgb)
        if found is not None and changed is not None and not wide:  # a face may have come in there
            found = _with_new(found, self.detector.detect_region(image_rgb, changed, self.detector.options.max_side))
            self.change_detections += 1
        if found is None:  # periodic, or a face was lost: look at the whole frame
            found = self.detector.detect(image_rgb)
            self._last_full, self._wide_change = seconds, False
            self.full_detections += 1
        self._faces = found
        return found

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

    def _changed_area(self, image_rgb: np.ndarray) -> tuple[int, int, int, int] | None:
        """The box (x0, y0, x1, y1), in frame pixels, around what changed since the last frame
        outside the regions of the faces followed; None if nothing did."""
        import cv2

        h, w = image_rgb.shape[:2]
        factor = CHANGE_WIDTH / w
        small = cv2.resize(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY), (CHANGE_WIDTH, max(1, round(h * factor))),
                           interpolation=cv2.INTER_AREA)
        previous, self._small = self._small, small
        if previous is None or previous.shape != small.shape:
            return 0, 0, w, h
        moved = cv2.absdiff(small, previous) >= CHANGE_LEVEL
        for face in self._faces:
            x0, y0, x1, y1 = (round(v * factor) for v in region_around(face.box))
            moved[max(0, y0) : max(0, y1 + 1), max(0, x0) : max(0, x1 + 1)] = False
        if int(moved.sum()) < CHANGE_PIXELS:
            return None
        x, y, bw, bh = cv2.boundingRect(moved.astype(np.uint8))
        x0, y0 = (x - CHANGE_MARGIN) / factor, (y - CHANGE_MARGIN) / factor
        x1, y1 = (x + bw + CHANGE_MARGIN) / factor, (y + bh + CHANGE_MARGIN) / factor
        return max(0, round(x0)), max(0, round(y0)), min(w, round(x1)), min(h, round(y1))


def _with_new(faces: list[Face], candidates: list[Face]) -> list[Face]:
    """``faces`` and the candidates that overlap none of them, largest first."""
    new = [c for c in candidates if all(iou(c.box, f.box) < 0.3 for f in faces)]
    return sorted([*faces, *new], key=lambda f: f.area, reverse=True)
