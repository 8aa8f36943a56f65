"""Track faces across frames (optimal IoU assignment, ended by a change of face) and smooth their
probabilities (EMA)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferkit.video.assignment import max_weight_matching

#: Side of the thumbnail compared between frames to tell that a box still holds the same face.
APPEARANCE_SIDE = 16
#: Least correlation between a track's look (its recent face thumbnails, averaged) and a new face's
#: thumbnail to continue the track. The same face, its box moved by a few pixels, scores 0.83-0.93
#: against one earlier frame; different people in the same place 0.52 at most (the close-ups in
#: shared/data/photos); the average keeps the detector's box jitter from ending a track.
MIN_SIMILARITY = 0.5
#: Weight of the past in a track's look (see _remembered).
LOOK_MEMORY = 0.8


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def appearance(crops: np.ndarray) -> np.ndarray:
    """Unit-norm, zero-mean thumbnails (N, APPEARANCE_SIDE**2) of gray face crops (N, H, W): their
    dot product is the crops' correlation, 1 for the same picture, lower for another face."""
    import cv2

    if len(crops) == 0:
        return np.zeros((0, APPEARANCE_SIDE**2), np.float32)
    small = np.stack([cv2.resize(c, (APPEARANCE_SIDE, APPEARANCE_SIDE), interpolation=cv2.INTER_AREA)
                      for c in crops]).reshape(len(crops), -1).astype(np.float32)
    small -= small.mean(axis=1, keepdims=True)
    return small / np.maximum(np.linalg.norm(small, axis=1, keepdims=True), 1e-6)


@dataclass
class Track:
    """A face followed over frames."""

    track_id: int
    box: tuple[int, int, int, int]
    probabilities: np.ndarray
    last_frame: int
    hits: int = 1
    looks: np.ndarray | None = None


@dataclass
class FaceTracker:
    """Assign a stable id to each face and smooth its probabilities over time.

    Attributes:
        smoothing: EMA weight of the past (0 = no smoothing; 0.6 keeps 60% of the previous estimate).
        min_iou: least overlap with a track's last box to continue it.
        max_missing: frames a track survives without a matching face.
        min_similarity: least appearance correlation (see appearance()) to continue a track; a
            face that changed more (a scene cut, another person) starts a new track.
    """

    smoothing: float = 0.6
    min_iou: float = 0.3
    max_missing: int = 10
    min_similarity: float = MIN_SIMILARITY
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 1

    def _assign(self, boxes: list[tuple[int, int, int, int]], looks: np.ndarray | None) -> dict[int, int]:
        """Face index -> track index, maximising the total overlap (the Hungarian method);
        pairs overlapping less than min_iou, or looking too different, stay apart."""
        if not self.tracks or not boxes:
            return {}
        overlap = np.array([[iou(t.box, b) for b in boxes] for t in self.tracks])
        if looks is not None:
            for ti, track in enumerate(self.tracks):
                if track.looks is not None:
                    overlap[ti, looks @ track.looks < self.min_similarity] = 0.0
        return {bi: ti for ti, bi in max_weight_matching(overlap) if overlap[ti, bi] >= self.min_iou}

    def update(self, frame: int, boxes: list[tuple[int, int, int, int]], probs: np.ndarray,
               looks: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
        """Match this frame's faces to tracks; returns (track id, smoothed probabilities) per face, in input order.

        ``looks``: the faces' appearance() rows; without them tracks follow the boxes alone.
        """
        assigned = self._assign(boxes, looks)
        out: list[tuple[int, np.ndarray]] = []
        for bi, box in enumerate(boxes):
            if bi in assigned:
                track = self.tracks[assigned[bi]]
                track.probabilities = self.smoothing * track.probabilities + (1 - self.smoothing) * probs[bi]
                track.box, track.last_frame, track.hits = box, frame, track.hits + 1
            else:
                track = Track(self._next_id, box, probs[bi].astype(np.float64), frame)
                self._next_id += 1
                self.tracks.append(track)
            track.looks = None if looks is None else _remembered(track.looks if bi in assigned else None, looks[bi])
            out.append((track.track_id, track.probabilities.copy()))
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_missing]
        return out


def _remembered(past: np.ndarray | None, now: np.ndarray) -> np.ndarray:
    """A track's look: a moving average of its faces' appearance() rows (LOOK_MEMORY of the past),
    steadier than any one frame's against the detector's box jitter."""
    if past is None:
        return now
    mixed = LOOK_MEMORY * past + (1 - LOOK_MEMORY) * now
    return mixed / max(float(np.linalg.norm(mixed)), 1e-6)
